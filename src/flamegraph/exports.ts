/**
 * Downloads from the memory panel's toolbar: every cell's stacks as a
 * speedscope file or folded stacks (asked of the kernel), and the panel's
 * rows as CSV (from the frontend's own records). Files are made in the
 * page and saved through a link: nothing is served.
 */
import type { ICellRecord } from '../protocol';

const CSV_COLUMNS: [string, (r: ICellRecord) => unknown][] = [
  ['execution_count', r => r.execution_count],
  ['cell_id', r => r.cell_id],
  ['started_ms', r => r.started_ms],
  ['duration_ms', r => r.duration_ms],
  ['success', r => r.success],
  ['rss_before', r => r.rss_before],
  ['rss_after', r => r.rss_after],
  ['rss_peak', r => r.rss_peak],
  ['heap_peak_bytes', r => r.memory?.peak_bytes],
  ['heap_net_bytes', r => r.memory?.net_bytes],
  ['allocated_bytes', r => r.memory?.allocated_bytes],
  ['allocations', r => r.memory?.allocations],
  ['leaked_bytes', r => r.memory?.leaked_bytes]
];

function csvField(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The rows as CSV (RFC 4180: a header line, CRLF line ends), oldest first. */
export function rowsToCsv(rows: readonly ICellRecord[]): string {
  const lines = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const r of rows) {
    lines.push(CSV_COLUMNS.map(([, get]) => csvField(get(r))).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** Save `text` as a file the browser downloads. */
export function download(filename: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.style.display = 'none';
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
