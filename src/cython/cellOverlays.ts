/**
 * Connects notebook cells to the editor overlay: a code cell whose outputs
 * hold a `%%cython` diagnostics or annotation payload gets it drawn in its
 * editor. Outputs are the only input, so re-running a cell (which clears
 * them) clears the overlay, and a reopened notebook shows its saved one.
 * Also answers the DOM events the output renderers send (go to a line,
 * show a line's C), since only this layer knows which cell an output is in.
 */
import type { Trans } from '../i18n';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IOutputModel } from '@jupyterlab/rendermime';

import {
  cythonOverlay,
  EMPTY_OVERLAY,
  ICythonOverlay,
  setCythonOverlay
} from './editorOverlay';
import { GOTO_LINE_EVENT, ILineRequest, SHOW_CODE_EVENT } from './events';
import { diagnosticMarks, shadedLines } from './layout';
import {
  ANNOTATION_MIME,
  DIAGNOSTICS_MIME,
  IAnnotation,
  parseAnnotation,
  parseDiagnostics
} from './payload';

/** What the overlay asks of the rest of the extension. */
export interface ICellOverlayHost {
  /** Show the C generated for `line` of `cell` (annotated by `payload`). */
  showCode(cell: CodeCell, payload: IAnnotation, line: number): void;
  /** The user's language for the overlay's strings (default: English). */
  trans?: Trans;
}

interface ICellState {
  diagnostics: IOutputModel | null;
  annotation: IOutputModel | null;
  payload: IAnnotation | null;
}

function findOutput(cell: CodeCell, mime: string): IOutputModel | null {
  const outputs = cell.model.outputs;
  for (let i = outputs.length - 1; i >= 0; i--) {
    const output = outputs.get(i);
    if (mime in output.data) {
      return output;
    }
  }
  return null;
}

export class CellOverlays {
  constructor(private readonly host: ICellOverlayHost) {}

  /** Follow every code cell of a notebook, now and later. */
  watch(panel: NotebookPanel): void {
    const notebook = panel.content;
    const watchAll = () => notebook.widgets.forEach(cell => this._watch(cell));
    watchAll();
    notebook.model?.cells.changed.connect(watchAll);
    notebook.modelChanged.connect(watchAll);
    const onGoto = (event: Event) => this._onGoto(panel, event);
    const onShow = (event: Event) => this._onShow(panel, event);
    notebook.node.addEventListener(GOTO_LINE_EVENT, onGoto);
    notebook.node.addEventListener(SHOW_CODE_EVENT, onShow);
    panel.disposed.connect(() => {
      notebook.node.removeEventListener(GOTO_LINE_EVENT, onGoto);
      notebook.node.removeEventListener(SHOW_CODE_EVENT, onShow);
    });
  }

  /** The annotation drawn from a cell's outputs, if any. */
  annotationOf(cell: Cell): IAnnotation | null {
    return cell instanceof CodeCell
      ? (this._cells.get(cell)?.payload ?? null)
      : null;
  }

  private _watch(cell: Cell): void {
    if (!(cell instanceof CodeCell) || this._cells.has(cell)) {
      return;
    }
    const state: ICellState = {
      diagnostics: null,
      annotation: null,
      payload: null
    };
    this._cells.set(cell, state);
    const refresh = () => {
      // A payload must never break the notebook: report, draw nothing.
      try {
        this._refresh(cell, state);
      } catch (error) {
        console.warn('cyscope: could not draw the %%cython overlay', error);
      }
    };
    // The model is gone by the time the cell says it is disposed.
    const outputs = cell.model.outputs;
    outputs.changed.connect(refresh);
    cell.disposed.connect(() => {
      outputs.changed.disconnect(refresh);
      this._cells.delete(cell);
    });
    void cell.ready.then(refresh);
  }

  /**
   * Draw the cell's payloads, once per output: the same outputs after an
   * edit of the cell stay undrawn (the editor dropped them on the edit).
   */
  private _refresh(cell: CodeCell, state: ICellState): void {
    if (cell.isDisposed) {
      return;
    }
    const view = (cell.editor as CodeMirrorEditor | null)?.editor;
    if (!view) {
      return; // not rendered yet: cell.ready refreshes again
    }
    const diagnostics = findOutput(cell, DIAGNOSTICS_MIME);
    const annotation = findOutput(cell, ANNOTATION_MIME);
    if (diagnostics === state.diagnostics && annotation === state.annotation) {
      return;
    }
    state.diagnostics = diagnostics;
    state.annotation = annotation;
    state.payload = null;

    const lines = view.state.doc.toString().split('\n');
    const overlay: ICythonOverlay = { diagnostics: [], shaded: [] };
    if (diagnostics) {
      const parsed = parseDiagnostics(diagnostics.data[DIAGNOSTICS_MIME]);
      if (parsed.ok) {
        overlay.diagnostics = diagnosticMarks(
          parsed.value,
          lines,
          this.host.trans
        );
      }
    }
    if (annotation) {
      const parsed = parseAnnotation(annotation.data[ANNOTATION_MIME]);
      if (parsed.ok) {
        state.payload = parsed.value;
        overlay.shaded = shadedLines(parsed.value, lines.length);
      }
    }
    if (!this._injected.has(view)) {
      if (overlay.diagnostics.length === 0 && overlay.shaded.length === 0) {
        return; // never touch the editors of cells without a payload
      }
      this._injected.add(view);
      (cell.editor as CodeMirrorEditor).injectExtension(
        cythonOverlay(line => {
          if (state.payload) {
            this.host.showCode(cell, state.payload, line);
          }
        }, this.host.trans)
      );
    }
    view.dispatch({
      effects: setCythonOverlay.of(
        overlay.diagnostics.length || overlay.shaded.length
          ? overlay
          : EMPTY_OVERLAY
      )
    });
  }

  private _cellOf(panel: NotebookPanel, event: Event): CodeCell | null {
    const target = event.target as Node | null;
    const cell = panel.content.widgets.find(
      w => target !== null && w.node.contains(target)
    );
    return cell instanceof CodeCell ? cell : null;
  }

  private _onGoto(panel: NotebookPanel, event: Event): void {
    const cell = this._cellOf(panel, event);
    const request = (event as CustomEvent<ILineRequest>).detail;
    if (!cell || !cell.editor || !request) {
      return;
    }
    const notebook = panel.content;
    notebook.activeCellIndex = notebook.widgets.indexOf(cell);
    notebook.mode = 'edit';
    const editor = cell.editor;
    const line = Math.min(Math.max(request.line, 1), editor.lineCount) - 1;
    const length = editor.getLine(line)?.length ?? 0;
    const column = Math.min(Math.max((request.column ?? 1) - 1, 0), length);
    const position = { line, column };
    editor.setCursorPosition(position);
    editor.revealPosition(position);
    editor.focus();
  }

  private _onShow(panel: NotebookPanel, event: Event): void {
    const cell = this._cellOf(panel, event);
    const request = (event as CustomEvent<ILineRequest>).detail;
    const state = cell ? this._cells.get(cell) : undefined;
    if (cell && request && state?.payload) {
      this.host.showCode(cell, state.payload, request.line);
    }
  }

  private readonly _cells = new Map<CodeCell, ICellState>();
  private readonly _injected = new WeakSet<object>();
}
