/** Builders of valid kernel messages for unit tests. */
import { ICellRecord, IHelloMessage, ISampleMessage } from '../../src/protocol';

export function hello(pid = 100): IHelloMessage {
  return {
    v: 1,
    type: 'hello',
    cyscope_version: '0.1.0',
    python: '3.11.7',
    pid,
    interval_ms: 100,
    native: { loaded: true, abi: 1, path: '/x/libcyscope.so', error: null }
  };
}

export function sample(
  rss: number,
  running = true,
  count: number | null = 1
): ISampleMessage {
  return {
    v: 1,
    type: 'sample',
    t_ms: Date.now(),
    rss_bytes: rss,
    running,
    execution_count: count,
    native: null
  };
}

export function record(count: number, started = count * 1000): ICellRecord {
  return {
    execution_count: count,
    cell_id: `cell-${count}`,
    started_ms: started,
    duration_ms: 12,
    rss_before: 100,
    rss_after: 300,
    rss_peak: 400,
    success: true,
    memory: null
  };
}
