/**
 * Bringing a crash report into the notebook after the kernel restarted.
 *
 * The restarted kernel puts the reports of its dead predecessor in the
 * `crashes` field of the cyscope comm's `hello` (protocol/cyscope.schema.json;
 * each report is sent once). This watches the notebook's kernel messages
 * for that hello, read-only (the KernelChannel owns the comm and ignores
 * the field), then puts each report in the output of the cell that was
 * running, and says so in a notification.
 */
import { Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import type { KernelMessage } from '@jupyterlab/services';
import type { PartialJSONObject } from '@lumino/coreutils';

import { isObject } from '../schemaRuntime';
import { findCell } from './cellMarks';
import { crashesIn, ICrashEntry, notificationText } from './messages';
import { CRASH_MIME } from './payload';

/** Whether an output area already shows this report (a second frontend, a replay). */
function alreadyShown(cell: CodeCell, id: string): boolean {
  const outputs = cell.model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const data = outputs.get(i).data[CRASH_MIME];
    if (isObject(data) && data.id === id) {
      return true;
    }
  }
  return false;
}

export class CrashDelivery {
  constructor(
    private readonly _reveal: (panel: NotebookPanel, cell: CodeCell) => void
  ) {}

  watch(panel: NotebookPanel): void {
    const onMessage = (_: unknown, msg: KernelMessage.IMessage) => {
      const entries = crashesIn(msg);
      for (const entry of entries) {
        try {
          this.deliver(panel, entry);
        } catch (error) {
          console.warn('cyscope: could not show a crash report', error);
        }
      }
    };
    panel.sessionContext.iopubMessage.connect(onMessage);
    panel.disposed.connect(() =>
      panel.sessionContext.iopubMessage.disconnect(onMessage)
    );
  }

  /** Put the report in the crashed cell's output and tell the user. */
  deliver(panel: NotebookPanel, entry: ICrashEntry): void {
    const { report } = entry;
    const running = report.cell;
    const cell = running
      ? findCell(
          panel.content.widgets,
          running.cell_id,
          running.execution_count
        )
      : null;
    if (cell && !alreadyShown(cell, report.id)) {
      // The crash left the cell without its number ("[ ]": no reply came);
      // the report calls it "cell [N]" by the count it ran under, so the
      // prompt gets that number back, as any cell run before a restart keeps
      // its own. A cell the user has run since keeps its new one.
      const count = running?.execution_count;
      if (
        typeof count === 'number' &&
        cell.model.executionCount === null &&
        cell.model.executionState !== 'running'
      ) {
        cell.model.executionCount = count;
      }
      cell.model.outputs.add({
        output_type: 'display_data',
        data: {
          [CRASH_MIME]: report as unknown as PartialJSONObject,
          'text/plain': entry.text
        },
        metadata: {}
      });
    }
    Notification.error(notificationText(report), {
      autoClose: false,
      actions: cell
        ? [{ label: 'Show cell', callback: () => this._reveal(panel, cell) }]
        : []
    });
  }
}
