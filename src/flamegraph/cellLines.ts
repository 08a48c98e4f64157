/**
 * Notebook navigation for flamegraphs: a frame of a cell, clicked, selects
 * that cell and puts the cursor on its line. A rendered output does not
 * know its notebook's cells; whoever listens on the notebook (or on a
 * flamegraph opened beside it) answers the event the view sends.
 */
import { CodeCell } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { CELL_LINE_EVENT, ICellLineRequest } from './events';

/**
 * Select the cell a frame's code is in and put the cursor on its line:
 * found by its notebook id, else by its execution count (the last cell
 * that has it).
 */
export function goToCellLine(
  panel: NotebookPanel,
  request: ICellLineRequest
): boolean {
  const notebook = panel.content;
  const cells = notebook.widgets;
  let index = request.cellId
    ? cells.findIndex(c => c.model.id === request.cellId)
    : -1;
  if (index < 0) {
    for (let i = cells.length - 1; i >= 0; i--) {
      const c = cells[i];
      if (c instanceof CodeCell && c.model.executionCount === request.cell) {
        index = i;
        break;
      }
    }
  }
  const cell = index >= 0 ? cells[index] : null;
  if (!cell || !cell.editor) {
    return false;
  }
  notebook.activeCellIndex = index;
  notebook.mode = 'edit';
  const editor = cell.editor;
  const line = Math.min(Math.max(request.line, 1), editor.lineCount) - 1;
  const position = { line, column: 0 };
  editor.setCursorPosition(position);
  editor.revealPosition(position);
  void notebook.scrollToCell(cell);
  editor.focus();
  return true;
}

/** Answer the flamegraph events that bubble up to `node` with `panel`'s cells. */
export function answerCellLineEvents(
  node: HTMLElement,
  panel: () => NotebookPanel | null
): () => void {
  const listener = (event: Event) => {
    const request = (event as CustomEvent<ICellLineRequest>).detail;
    const target = panel();
    if (request && target && !target.isDisposed) {
      goToCellLine(target, request);
    }
  };
  node.addEventListener(CELL_LINE_EVENT, listener);
  return () => node.removeEventListener(CELL_LINE_EVENT, listener);
}
