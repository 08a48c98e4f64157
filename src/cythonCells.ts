/**
 * Cython highlighting for `%%cython` cells.
 *
 * A notebook gives every code cell its kernel's language; a cell whose first
 * line is a `%%cython` magic is Cython, so its editor gets CodeMirror's
 * Cython mode (mime text/x-cython, registered by JupyterLab). The notebook
 * resets cell mime types when the kernel changes, so each cell watches both
 * its source and its mime type and restores the right one.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import { cellMimeType } from './cythonSource';

export function watchCythonCells(panel: NotebookPanel): void {
  const notebook = panel.content;
  const watched = new WeakSet<Cell>();
  const watch = (cell: Cell) => {
    if (!(cell instanceof CodeCell) || watched.has(cell)) {
      return;
    }
    watched.add(cell);
    const model = cell.model;
    const apply = () => {
      const wanted = cellMimeType(
        model.sharedModel.getSource(),
        notebook.codeMimetype
      );
      if (model.mimeType !== wanted) {
        model.mimeType = wanted;
      }
    };
    model.sharedModel.changed.connect(apply);
    model.mimeTypeChanged.connect(apply);
    cell.disposed.connect(() => {
      model.sharedModel.changed.disconnect(apply);
      model.mimeTypeChanged.disconnect(apply);
    });
    apply();
  };
  notebook.widgets.forEach(watch);
  notebook.model?.cells.changed.connect(() => notebook.widgets.forEach(watch));
  notebook.modelChanged.connect(() => notebook.widgets.forEach(watch));
}
