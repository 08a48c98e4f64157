/**
 * The columns of the memory panel's cell table: what each shows, how it
 * sorts, which collapse first into the details view when the sidebar is
 * narrow, and each cell's share of the whole (the bar). No DOM here.
 */
import { formatBytes, formatDelta, formatDuration } from './format';
import type { Trans } from './i18n';
import { ICellRecord } from './protocol';

export type ColumnId =
  | 'cell'
  | 'time'
  | 'heap-peak'
  | 'heap-net'
  | 'rss-delta'
  | 'rss-peak'
  | 'allocations';

export type SortDirection = 'ascending' | 'descending';

export interface IColumn {
  id: ColumnId;
  /** Header text. */
  label(trans: Trans): string;
  /** What the figure is (header tooltip, details view). */
  title(trans: Trans): string;
  /** Only meaningful with the native tracker's figures. */
  heap: boolean;
  /** The figure as the table shows it. */
  text(record: ICellRecord): string;
  /** The number it sorts by (missing figures sort lowest). */
  sortValue(record: ICellRecord): number;
}

const NONE = '–';

export const COLUMNS: readonly IColumn[] = [
  {
    id: 'cell',
    label: t => t.__('Cell'),
    title: t => t.__('Execution count and first line of the cell'),
    heap: false,
    text: r => `[${r.execution_count}]`,
    sortValue: r => r.started_ms
  },
  {
    id: 'heap-peak',
    label: t => t.__('Heap peak'),
    title: t => t.__('Heap peak during the cell (exact, native tracker)'),
    heap: true,
    text: r => (r.memory ? formatBytes(r.memory.peak_bytes) : NONE),
    sortValue: r => r.memory?.peak_bytes ?? -Infinity
  },
  {
    id: 'heap-net',
    label: t => t.__('Net'),
    title: t => t.__('Heap live at end minus at start (exact, native tracker)'),
    heap: true,
    text: r => (r.memory ? formatDelta(r.memory.net_bytes) : NONE),
    sortValue: r => r.memory?.net_bytes ?? -Infinity
  },
  {
    id: 'rss-delta',
    label: t => t.__('Δ RSS'),
    title: t => t.__('Resident memory after minus before the cell'),
    heap: false,
    text: r => formatDelta(r.rss_after - r.rss_before),
    sortValue: r => r.rss_after - r.rss_before
  },
  {
    id: 'time',
    label: t => t.__('Time'),
    title: t => t.__('How long the cell ran'),
    heap: false,
    text: r => formatDuration(r.duration_ms),
    sortValue: r => r.duration_ms
  },
  {
    id: 'rss-peak',
    label: t => t.__('Peak RSS'),
    title: t => t.__('Highest resident memory sampled during the cell'),
    heap: false,
    text: r => formatBytes(r.rss_peak),
    sortValue: r => r.rss_peak
  },
  {
    id: 'allocations',
    label: t => t.__('Allocs'),
    title: t => t.__('Allocations made in the cell (native tracker)'),
    heap: true,
    text: r => (r.memory ? String(r.memory.allocations) : NONE),
    sortValue: r => r.memory?.allocations ?? -Infinity
  }
];

export function column(id: ColumnId): IColumn {
  return COLUMNS.find(c => c.id === id) as IColumn;
}

/** Columns that give way when the table does not fit, first to last; the
 * cell and the figure with the bar always stay. */
export const COLLAPSE_ORDER: readonly ColumnId[] = [
  'allocations',
  'rss-peak',
  'time',
  'heap-net',
  'rss-delta'
];

/** Newest first: the order the panel opens with. */
export const DEFAULT_SORT: { column: ColumnId; direction: SortDirection } = {
  column: 'cell',
  direction: 'descending'
};

/** Rows sorted by a column (a stable sort: ties keep execution order). */
export function sortRows(
  rows: readonly ICellRecord[],
  by: ColumnId,
  direction: SortDirection
): ICellRecord[] {
  const value = column(by).sortValue;
  const sign = direction === 'ascending' ? 1 : -1;
  return rows
    .map((record, index) => ({ record, index }))
    .sort((a, b) => {
      const d = value(a.record) - value(b.record);
      return d !== 0 && !Number.isNaN(d)
        ? sign * d
        : sign * (a.index - b.index);
    })
    .map(x => x.record);
}

/** The column whose figure the bar shares out: the heap peak when the
 * tracker reports, else the growth of resident memory. */
export function shareColumn(hasHeap: boolean): ColumnId {
  return hasHeap ? 'heap-peak' : 'rss-delta';
}

function shareValue(record: ICellRecord, hasHeap: boolean): number {
  return hasHeap
    ? (record.memory?.peak_bytes ?? 0)
    : Math.max(0, record.rss_after - record.rss_before);
}

/** Each row's part (0..1) of the sum of the shared figure over all rows. */
export function shares(
  rows: readonly ICellRecord[],
  hasHeap: boolean
): Map<ICellRecord, number> {
  const total = rows.reduce((sum, r) => sum + shareValue(r, hasHeap), 0);
  return new Map(
    rows.map(r => [r, total > 0 ? shareValue(r, hasHeap) / total : 0])
  );
}

/** A row's identity across renders (a history reply replaces objects). */
export function rowKey(record: ICellRecord): string {
  return `${record.execution_count}:${record.started_ms}`;
}
