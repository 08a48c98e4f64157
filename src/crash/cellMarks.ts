/**
 * Connects crash reports in a notebook's outputs to its editors: every
 * cell line on a report's stack is marked in the cell it belongs to (found
 * by cell id, or by execution count for reports without ids), which need
 * not be the cell whose output holds the report. Outputs are the only
 * input, so a saved notebook shows its marks again when reopened; marks
 * are drawn once per set of reports, so an edited cell stays unmarked.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  crashMarksExtension,
  IEditorCrashMark,
  setCrashMarks
} from './editorMarks';
import { CRASH_MIME, crashMarks, ICrashMark, parseCrash } from './payload';

/** The code cell a report refers to: by id, else by execution count. */
export function findCell(
  cells: readonly Cell[],
  cellId: string | null,
  executionCount: number | null
): CodeCell | null {
  const code = cells.filter((c): c is CodeCell => c instanceof CodeCell);
  if (cellId) {
    return code.find(c => c.model.id === cellId) ?? null;
  }
  if (executionCount !== null) {
    const matches = code.filter(c => c.model.executionCount === executionCount);
    return matches.length ? matches[matches.length - 1] : null;
  }
  return null;
}

/** Every report found in the outputs of a notebook's code cells. */
export function reportsIn(cells: readonly Cell[]) {
  const out = [];
  for (const cell of cells) {
    if (!(cell instanceof CodeCell)) {
      continue;
    }
    const outputs = cell.model.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const data = outputs.get(i).data;
      if (CRASH_MIME in data) {
        const parsed = parseCrash(data[CRASH_MIME]);
        if (parsed.ok) {
          out.push(parsed.value);
        }
      }
    }
  }
  return out;
}

/** Marks per cell, the messages of one line merged. */
export function marksByCell(
  cells: readonly Cell[],
  marks: ICrashMark[]
): Map<CodeCell, IEditorCrashMark[]> {
  const byCell = new Map<CodeCell, IEditorCrashMark[]>();
  for (const mark of marks) {
    const cell = findCell(cells, mark.cellId, mark.executionCount);
    if (!cell) {
      continue;
    }
    const list = byCell.get(cell) ?? [];
    const same = list.find(m => m.line === mark.line);
    if (same) {
      same.site = same.site || mark.site;
      same.messages.push(mark.message);
    } else {
      list.push({ line: mark.line, site: mark.site, messages: [mark.message] });
    }
    byCell.set(cell, list);
  }
  return byCell;
}

export class CrashMarks {
  /** Follow a notebook: its cells now and later, and their outputs. */
  watch(panel: NotebookPanel): void {
    const schedule = () => this._schedule(panel);
    const followed = new WeakSet<object>();
    const follow = () => {
      for (const cell of panel.content.widgets) {
        if (cell instanceof CodeCell && !followed.has(cell.model)) {
          followed.add(cell.model);
          cell.model.outputs.changed.connect(schedule);
          void cell.ready.then(schedule);
        }
      }
      schedule();
    };
    panel.content.model?.cells.changed.connect(follow);
    panel.content.modelChanged.connect(follow);
    void panel.context.ready.then(follow);
  }

  private _schedule(panel: NotebookPanel): void {
    if (this._pending.has(panel)) {
      return;
    }
    this._pending.add(panel);
    setTimeout(() => {
      this._pending.delete(panel);
      if (!panel.isDisposed) {
        try {
          this._refresh(panel);
        } catch (error) {
          // A report must never break the notebook: report, draw nothing.
          console.warn('cyscope: could not mark the crashed lines', error);
        }
      }
    }, 0);
  }

  private _refresh(panel: NotebookPanel): void {
    const cells = panel.content.widgets;
    const marks = reportsIn(cells).flatMap(r => crashMarks(r));
    const byCell = marksByCell(cells, marks);
    for (const cell of cells) {
      if (!(cell instanceof CodeCell)) {
        continue;
      }
      const view = (cell.editor as CodeMirrorEditor | null)?.editor;
      if (!view) {
        continue; // not rendered yet: cell.ready schedules again
      }
      const wanted = byCell.get(cell) ?? [];
      const signature = JSON.stringify(wanted);
      if (this._drawn.get(view) === signature) {
        continue; // the same marks, perhaps dropped by an edit since: leave it so
      }
      this._drawn.set(view, signature);
      if (!this._injected.has(view)) {
        if (!wanted.length) {
          continue; // never touch the editors of cells without marks
        }
        this._injected.add(view);
        (cell.editor as CodeMirrorEditor).injectExtension(
          crashMarksExtension()
        );
      }
      view.dispatch({ effects: setCrashMarks.of(wanted) });
    }
  }

  private readonly _pending = new Set<NotebookPanel>();
  private readonly _drawn = new WeakMap<object, string>();
  private readonly _injected = new WeakSet<object>();
}
