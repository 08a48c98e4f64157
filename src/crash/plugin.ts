/**
 * Crash reports in the notebook: plugin wiring only. Registers the output
 * renderer of `application/vnd.cyscope.crash.v1+json`, brings the report
 * of a crashed kernel into the crashed cell after the restart
 * (CrashDelivery), marks the cell lines of every report in the editors
 * (CrashMarks), and answers the renderer's "go to this cell line".
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { CrashMarks, findCell } from './cellMarks';
import { CrashDelivery } from './delivery';
import {
  CRASH_RENDERER_RANK,
  crashRendererFactory,
  GOTO_CELL_LINE_EVENT,
  ICellLineRequest
} from './renderer';

export const CRASH_PLUGIN_ID = 'jupyterlab-cyscope:crash-reports';

/** Select a cell, scroll to it, and put the cursor on `line` (1-based) if given. */
function reveal(panel: NotebookPanel, cell: CodeCell, line?: number): void {
  const notebook = panel.content;
  const index = notebook.widgets.indexOf(cell);
  if (index < 0) {
    return;
  }
  notebook.activeCellIndex = index;
  void notebook.scrollToCell(cell);
  if (line !== undefined && cell.editor) {
    notebook.mode = 'edit';
    const editor = cell.editor;
    const position = {
      line: Math.min(Math.max(line, 1), editor.lineCount) - 1,
      column: 0
    };
    editor.setCursorPosition(position);
    editor.revealPosition(position);
    editor.focus();
  }
}

function activate(
  _app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  rendermime: IRenderMimeRegistry
): void {
  rendermime.addFactory(crashRendererFactory, CRASH_RENDERER_RANK);
  const marks = new CrashMarks();
  const delivery = new CrashDelivery((panel, cell) => reveal(panel, cell));
  const watch = (panel: NotebookPanel) => {
    marks.watch(panel);
    delivery.watch(panel);
    const onGoto = (event: Event) => {
      const request = (event as CustomEvent<ICellLineRequest>).detail;
      const cell = request
        ? findCell(
            panel.content.widgets,
            request.cellId,
            request.executionCount
          )
        : null;
      if (cell) {
        reveal(panel, cell, request.line);
      }
    };
    panel.content.node.addEventListener(GOTO_CELL_LINE_EVENT, onGoto);
    panel.disposed.connect(() =>
      panel.content.node.removeEventListener(GOTO_CELL_LINE_EVENT, onGoto)
    );
  };
  notebooks.forEach(watch);
  notebooks.widgetAdded.connect((_, panel) => watch(panel));
}

const crashPlugin: JupyterFrontEndPlugin<void> = {
  id: CRASH_PLUGIN_ID,
  description:
    'Crash reports: what killed the kernel, in the crashed cell’s output, with the cell line marked.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  activate
};

export const crashPlugins: JupyterFrontEndPlugin<void>[] = [crashPlugin];
