/**
 * What the memory panel's flamegraph action and exports use: the user
 * expressions sent to the kernel (with a stand-in kernel; the e2e test
 * drives a real one), the answer read back, the rows as CSV.
 */
import { rowsToCsv } from '../../src/flamegraph/exports';
import {
  cellFlamegraphExpression,
  evaluate,
  historyExportExpression
} from '../../src/flamegraph/kernelSource';

function fakeKernel(expression: unknown) {
  const sent: any[] = [];
  const kernel = {
    requestExecute(content: any) {
      sent.push(content);
      return { done: Promise.resolve({ content: expression }) };
    }
  };
  return { kernel: kernel as any, sent };
}

describe('kernel requests', () => {
  it('name a cell by its number, and nothing else', () => {
    expect(cellFlamegraphExpression(4, 'leaks')).toBe(
      "__import__('cyscope.flamegraph', fromlist=['cell_flamegraph', 'history_export']).cell_flamegraph(4, 'leaks')"
    );
    expect(() => cellFlamegraphExpression(1.5, 'peak')).toThrow(
      /not an execution count/
    );
    expect(() =>
      cellFlamegraphExpression('1); import os' as any, 'peak')
    ).toThrow();
    expect(historyExportExpression('folded', 'peak')).toMatch(
      /\.history_export\('folded', 'peak'\)$/
    );
  });

  it('are silent, keep no history and never stop queued cells', async () => {
    const { kernel, sent } = fakeKernel({
      status: 'ok',
      user_expressions: {
        value: { status: 'ok', data: { 'text/plain': 'x' }, metadata: {} }
      }
    });
    const answer = await evaluate(kernel, 'expr');
    expect(answer).toEqual({ ok: true, data: { 'text/plain': 'x' } });
    expect(sent).toEqual([
      {
        code: '',
        silent: true,
        store_history: false,
        stop_on_error: false,
        user_expressions: { value: 'expr' }
      }
    ]);
  });

  it('report the kernel’s error, or a missing answer', async () => {
    const error = fakeKernel({
      status: 'ok',
      user_expressions: {
        value: {
          status: 'error',
          ename: 'LookupError',
          evalue: 'no memory report for cell [9]'
        }
      }
    });
    expect(await evaluate(error.kernel, 'e')).toEqual({
      ok: false,
      error: 'LookupError: no memory report for cell [9]'
    });
    const empty = fakeKernel({ status: 'ok', user_expressions: {} });
    expect(await evaluate(empty.kernel, 'e')).toEqual({
      ok: false,
      error: 'the kernel sent no value back'
    });
    const gone = {
      requestExecute: () => ({
        done: Promise.reject(new Error('Kernel is dead'))
      })
    };
    const answer = await evaluate(gone as any, 'e');
    expect(answer.ok).toBe(false);
  });
});

describe('rows as CSV', () => {
  it('has a header, one line per row, and quotes what needs it', () => {
    const row = {
      execution_count: 3,
      cell_id: 'a,"b"',
      started_ms: 10,
      duration_ms: 2.5,
      rss_before: 100,
      rss_after: 200,
      rss_peak: 250,
      success: true,
      memory: {
        peak_bytes: 7,
        net_bytes: -1,
        allocated_bytes: 9,
        allocations: 2,
        leaked_bytes: 0
      }
    } as any;
    const csv = rowsToCsv([row, { ...row, execution_count: 4, memory: null }]);
    expect(csv.split('\r\n')).toEqual([
      'execution_count,cell_id,started_ms,duration_ms,success,rss_before,rss_after,rss_peak,heap_peak_bytes,heap_net_bytes,allocated_bytes,allocations,leaked_bytes',
      '3,"a,""b""",10,2.5,true,100,200,250,7,-1,9,2,0',
      '4,"a,""b""",10,2.5,true,100,200,250,,,,,',
      ''
    ]);
  });
});
