/**
 * Asking a notebook's kernel for a cell's flamegraph or an export, from
 * the history its memory tracker keeps: nothing is run again. Each request
 * is one silent execute request with a user expression (no execution
 * count, no history entry, no output; a failure never stops queued cells),
 * whose answer is what the kernel's display formatter makes of the value,
 * the same MIME bundle a cell's output would carry. The only kernel access
 * of the flamegraph plugin.
 */
import type { Kernel, KernelMessage } from '@jupyterlab/services';

export type FlameView = 'peak' | 'leaks' | 'allocated';
export type ExportFormat = 'speedscope' | 'folded';

const MODULE =
  "__import__('cyscope.flamegraph', fromlist=['cell_flamegraph', 'history_export'])";

/** The expression whose value displays as cell [N]'s flamegraph. */
export function cellFlamegraphExpression(
  executionCount: number,
  view: FlameView
): string {
  if (!Number.isInteger(executionCount) || executionCount < 0) {
    throw new Error(`not an execution count: ${executionCount}`);
  }
  return `${MODULE}.cell_flamegraph(${executionCount}, '${view}')`;
}

/** The expression whose value displays as every cell's stacks in one file. */
export function historyExportExpression(
  format: ExportFormat,
  view: FlameView
): string {
  return `${MODULE}.history_export('${format}', '${view}')`;
}

export type Answer =
  { ok: true; data: Record<string, unknown> } | { ok: false; error: string };

/** Evaluate one expression silently in the kernel; its MIME bundle, or why not. */
export async function evaluate(
  kernel: Kernel.IKernelConnection,
  expression: string
): Promise<Answer> {
  try {
    const reply = await kernel.requestExecute({
      code: '',
      silent: true,
      store_history: false,
      stop_on_error: false,
      user_expressions: { value: expression }
    }).done;
    const content = reply.content as KernelMessage.IExecuteReply;
    if (content.status !== 'ok') {
      return { ok: false, error: `the kernel answered ${content.status}` };
    }
    const result = content.user_expressions?.value as
      | {
          status: string;
          data?: Record<string, unknown>;
          ename?: string;
          evalue?: string;
        }
      | undefined;
    if (!result) {
      return { ok: false, error: 'the kernel sent no value back' };
    }
    if (result.status !== 'ok' || !result.data) {
      return {
        ok: false,
        error: result.ename
          ? `${result.ename}: ${result.evalue ?? ''}`
          : 'the kernel could not evaluate it'
      };
    }
    return { ok: true, data: result.data };
  } catch (error) {
    return { ok: false, error: String(error) };
  }
}
