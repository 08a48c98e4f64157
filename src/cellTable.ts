/**
 * CellTable: the memory panel's table of cell rows, as a small DOM
 * controller the panel owns.
 *
 * - Sorted by any column (click a header, or Enter on it).
 * - One tab stop: the arrow keys move between rows (and up into the
 *   header), Home/End jump, Enter goes to the cell, Right/Left or Space open
 *   and close a row's details, which list every figure, the ones of columns
 *   that did not fit included.
 * - Columns that do not fit the sidebar collapse (lowest priority first)
 *   instead of being cut off.
 * - Each row shows a bar of its share of the heap peak (or of resident
 *   memory growth without the tracker), and the first line of its cell.
 * - Row actions of other plugins (see MemoryPanel.addRowAction) are buttons
 *   at the end of each row.
 */
import type { LabIcon } from '@jupyterlab/ui-components';

import {
  COLLAPSE_ORDER,
  column,
  ColumnId,
  COLUMNS,
  DEFAULT_SORT,
  IColumn,
  rowKey,
  shareColumn,
  shares,
  sortRows,
  SortDirection
} from './cellColumns';
import { formatBytes, formatDelta, formatDuration } from './format';
import type { Trans } from './i18n';
import { ICellRecord } from './protocol';

/** A row action as the table draws it. */
export interface IRowActionView {
  id: string;
  label: string;
  icon?: LabIcon;
  isVisible(record: ICellRecord): boolean;
  execute(record: ICellRecord): void;
}

export interface ICellTableOptions {
  trans: Trans;
  /** Enter or a click on a row: show its cell. */
  onActivate(record: ICellRecord): void;
  /** The focused row changed. */
  onSelect(record: ICellRecord | null): void;
  firstLine(record: ICellRecord): string | null;
  rowActions(): readonly IRowActionView[];
}

/** Widths in em the fitting assumes (CSS gives the same). */
const WIDTH_EM: Record<ColumnId, number> = {
  cell: 8,
  'heap-peak': 6.5,
  'heap-net': 5.5,
  'rss-delta': 5.5,
  time: 4.5,
  'rss-peak': 5.5,
  allocations: 4.5
};
const ACTION_EM = 1.9;

export class CellTable {
  constructor(private readonly _options: ICellTableOptions) {
    const t = _options.trans;
    this.node = document.createElement('div');
    this.node.className = 'cyscope-CellTable-scroll';
    this._table = document.createElement('table');
    this._table.className = 'cyscope-CellTable';
    this._table.setAttribute('role', 'grid');
    this._table.setAttribute('aria-label', t.__('Memory per cell'));
    this._table.dataset.cyscope = 'cells';
    this._head = this._table.createTHead();
    this._body = this._table.createTBody();
    this.node.appendChild(this._table);
    this._table.addEventListener('keydown', this._onKeyDown);
    this._table.addEventListener('click', this._onClick);
    this._table.addEventListener('focusin', this._onFocusIn);
    // Before JupyterLab's context menu opens (it listens on the document):
    // its row actions act on the row under the pointer.
    this._table.addEventListener('contextmenu', this._onContextMenu);
  }

  readonly node: HTMLDivElement;

  get sort(): { column: ColumnId; direction: SortDirection } {
    return { ...this._sort };
  }

  /** The focused (or last focused) row. */
  get selected(): ICellRecord | null {
    return this._records.find(r => rowKey(r) === this._selectedKey) ?? null;
  }

  /** Sort by `by`; without a direction, a second call on the same column
   * reverses it (numbers start largest first). */
  sortBy(by: ColumnId, direction?: SortDirection): void {
    const next: SortDirection =
      direction ??
      (this._sort.column === by
        ? this._sort.direction === 'ascending'
          ? 'descending'
          : 'ascending'
        : 'descending');
    this._sort = { column: by, direction: next };
    this._rebuild();
  }

  /** Show these rows (rebuilds only when something it shows changed). */
  render(
    rows: readonly ICellRecord[],
    hasHeap: boolean,
    version: number
  ): void {
    const actions = this._options.rowActions();
    const key = `${version}:${hasHeap}:${actions.map(a => a.id).join(',')}`;
    this._rows = rows;
    this._hasHeap = hasHeap;
    if (key !== this._renderKey) {
      this._renderKey = key;
      this._rebuild();
    }
  }

  /** Rebuild even if nothing changed (row actions were added, say). */
  refresh(): void {
    this._renderKey = '';
    this._rebuild();
  }

  /**
   * Collapse the columns that do not fit `width` pixels (the sidebar's
   * inner width), lowest priority first; an unknown width (0: not shown
   * yet) changes nothing.
   */
  fit(width = this.node.clientWidth): void {
    if (width <= 0) {
      return;
    }
    const emPx = parseFloat(getComputedStyle(this._table).fontSize || '') || 12;
    const shown = COLUMNS.filter(c => this._hasHeap || !c.heap).map(c => c.id);
    let needed =
      shown.reduce((sum, id) => sum + WIDTH_EM[id], 0) +
      (this._options.rowActions().length
        ? ACTION_EM * this._options.rowActions().length
        : 0);
    const collapsed = new Set<ColumnId>();
    for (const id of COLLAPSE_ORDER) {
      if (needed * emPx <= width) {
        break;
      }
      if (shown.includes(id)) {
        collapsed.add(id);
        needed -= WIDTH_EM[id];
      }
    }
    if (
      collapsed.size !== this._collapsed.size ||
      [...collapsed].some(c => !this._collapsed.has(c))
    ) {
      this._collapsed = collapsed;
      this._applyCollapsed();
    }
  }

  /** Columns collapsed into the details view now. */
  get collapsed(): ReadonlySet<ColumnId> {
    return this._collapsed;
  }

  /** Focus the table's tab stop (the selected row); false without rows. */
  focus(): boolean {
    const target =
      this._table.querySelector<HTMLElement>('[tabindex="0"]') ??
      this._rowElement(this._selectedKey);
    if (!target || this.node.hidden) {
      return false;
    }
    // Shown from a command: the focus lands, but the user picked nothing,
    // so the tab stop keeps following the newest row.
    const picked = this._pickedByUser;
    target.focus();
    this._pickedByUser = picked;
    return true;
  }

  /** Open or close a row's details. */
  toggleDetails(record: ICellRecord, open?: boolean): void {
    const key = rowKey(record);
    const isOpen = this._expanded.has(key);
    const want = open ?? !isOpen;
    if (want === isOpen) {
      return;
    }
    if (want) {
      this._expanded.add(key);
    } else {
      this._expanded.delete(key);
    }
    this._rebuild();
  }

  // -- building ---------------------------------------------------------------

  private _visibleColumns(): IColumn[] {
    return COLUMNS.filter(c => this._hasHeap || !c.heap);
  }

  private _rebuild(): void {
    const t = this._options.trans;
    const hadFocus = this._table.contains(document.activeElement);
    const focusWasHeader =
      hadFocus && !!(document.activeElement as HTMLElement).closest('thead');
    const columns = this._visibleColumns();
    const actions = this._options.rowActions();
    this._records = sortRows(
      this._rows,
      this._sort.column,
      this._sort.direction
    );
    // The tab stop follows the top row until the user picks one.
    if (
      !this._pickedByUser ||
      !this._records.some(r => rowKey(r) === this._selectedKey)
    ) {
      this._selectedKey = this._records.length
        ? rowKey(this._records[0])
        : null;
    }
    const part = shares(this._rows, this._hasHeap);
    const barColumn = shareColumn(this._hasHeap);

    // Header: one sort button per column.
    const headRow = document.createElement('tr');
    for (const c of columns) {
      const th = document.createElement('th');
      th.dataset.column = c.id;
      th.scope = 'col';
      th.title = c.title(t);
      if (c.heap) {
        th.classList.add('cyscope-HeapColumn');
      }
      const sorted = this._sort.column === c.id;
      th.setAttribute('aria-sort', sorted ? this._sort.direction : 'none');
      const button = document.createElement('button');
      button.className = 'cyscope-CellTable-sort';
      button.tabIndex = -1;
      button.textContent = c.label(t);
      if (sorted) {
        const arrow = document.createElement('span');
        arrow.className = 'cyscope-CellTable-arrow';
        arrow.setAttribute('aria-hidden', 'true');
        arrow.textContent = this._sort.direction === 'ascending' ? '▲' : '▼';
        button.appendChild(arrow);
      }
      th.appendChild(button);
      headRow.appendChild(th);
    }
    if (actions.length) {
      const th = document.createElement('th');
      th.dataset.column = 'actions';
      th.className = 'cyscope-CellTable-actions';
      const label = document.createElement('span');
      label.className = 'cyscope-VisuallyHidden';
      label.textContent = t.__('Actions');
      th.appendChild(label);
      headRow.appendChild(th);
    }
    this._head.replaceChildren(headRow);

    // Rows, each followed by its details when open.
    const body: HTMLTableRowElement[] = [];
    for (const record of this._records) {
      const key = rowKey(record);
      const expanded = this._expanded.has(key);
      body.push(
        this._row(
          record,
          columns,
          actions,
          part.get(record) ?? 0,
          barColumn,
          expanded
        )
      );
      if (expanded) {
        body.push(
          this._details(
            record,
            columns.length + (actions.length ? 1 : 0),
            part.get(record) ?? 0
          )
        );
      }
    }
    this._body.replaceChildren(...body);
    this._table.setAttribute('aria-rowcount', String(this._records.length + 1));
    this._applyCollapsed();

    // Exactly one tab stop: the selected row (or a header while focused).
    const target =
      (focusWasHeader && this._headerButton(this._headerIndex)) ||
      this._rowElement(this._selectedKey);
    if (target) {
      target.tabIndex = 0;
      if (hadFocus) {
        target.focus();
      }
    }
  }

  private _row(
    record: ICellRecord,
    columns: IColumn[],
    actions: readonly IRowActionView[],
    share: number,
    barColumn: ColumnId,
    expanded: boolean
  ): HTMLTableRowElement {
    const t = this._options.trans;
    const tr = document.createElement('tr');
    const key = rowKey(record);
    tr.dataset.key = key;
    tr.dataset.executionCount = String(record.execution_count);
    tr.tabIndex = -1;
    tr.setAttribute('aria-expanded', String(expanded));
    tr.setAttribute('aria-selected', String(key === this._selectedKey));
    if (!record.success) {
      tr.classList.add('cyscope-mod-failed');
    }
    if (record.cell_id) {
      tr.classList.add('cyscope-mod-linked');
    }
    const firstLine = this._options.firstLine(record);
    tr.title = [
      firstLine ?? '',
      `RSS ${formatBytes(record.rss_before)} → ${formatBytes(record.rss_after)}` +
        (record.success ? '' : ` ${t.__('(the cell raised)')}`),
      record.cell_id
        ? t.__('Enter or click: go to the cell. Right: all figures.')
        : ''
    ]
      .filter(Boolean)
      .join('\n');
    for (const c of columns) {
      const td = document.createElement('td');
      td.dataset.column = c.id;
      if (c.heap) {
        td.classList.add('cyscope-HeapColumn');
      }
      if (c.id === 'cell') {
        this._cellLabel(td, record, firstLine, expanded);
      } else if (c.id === barColumn) {
        const bar = document.createElement('span');
        bar.className = 'cyscope-Bar';
        bar.setAttribute('aria-hidden', 'true');
        bar.style.width = `${(share * 100).toFixed(1)}%`;
        const value = document.createElement('span');
        value.className = 'cyscope-Bar-value';
        value.textContent = c.text(record);
        td.title = t.__('%1% of all cells', Math.round(share * 100));
        td.append(bar, value);
      } else {
        td.textContent = c.text(record);
      }
      tr.appendChild(td);
    }
    if (actions.length) {
      const td = document.createElement('td');
      td.dataset.column = 'actions';
      td.className = 'cyscope-CellTable-actions';
      for (const action of actions) {
        if (!action.isVisible(record)) {
          continue;
        }
        const button = document.createElement('button');
        button.className = 'cyscope-RowAction';
        button.tabIndex = -1;
        button.dataset.action = action.id;
        button.title = action.label;
        button.setAttribute('aria-label', action.label);
        if (action.icon) {
          action.icon.element({ container: button });
        } else {
          button.textContent = action.label;
        }
        td.appendChild(button);
      }
      tr.appendChild(td);
    }
    return tr;
  }

  private _cellLabel(
    td: HTMLTableCellElement,
    record: ICellRecord,
    firstLine: string | null,
    expanded: boolean
  ): void {
    const t = this._options.trans;
    const toggle = document.createElement('button');
    toggle.className = 'cyscope-CellTable-toggle';
    toggle.tabIndex = -1;
    toggle.setAttribute(
      'aria-label',
      expanded ? t.__('Hide the figures') : t.__('Show all figures')
    );
    toggle.textContent = expanded ? '▾' : '▸';
    const count = document.createElement('span');
    count.className = 'cyscope-CellTable-count';
    count.textContent = `[${record.execution_count}]`;
    td.append(toggle, count);
    if (firstLine) {
      const line = document.createElement('span');
      line.className = 'cyscope-CellTable-firstLine';
      line.textContent = firstLine;
      td.appendChild(line);
    }
  }

  private _details(
    record: ICellRecord,
    span: number,
    share: number
  ): HTMLTableRowElement {
    const t = this._options.trans;
    const tr = document.createElement('tr');
    tr.className = 'cyscope-CellTable-details';
    tr.dataset.detailsFor = rowKey(record);
    const td = document.createElement('td');
    td.colSpan = span;
    const dl = document.createElement('dl');
    const entry = (name: string, value: string) => {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value;
      dl.append(dt, dd);
    };
    const firstLine = this._options.firstLine(record);
    if (firstLine) {
      entry(t.__('First line'), firstLine);
    }
    entry(
      t.__('Outcome'),
      record.success ? t.__('ran to the end') : t.__('raised')
    );
    entry(t.__('Time'), formatDuration(record.duration_ms));
    const m = record.memory;
    if (m) {
      entry(column('heap-peak').label(t), formatBytes(m.peak_bytes));
      entry(column('heap-net').label(t), formatDelta(m.net_bytes));
      entry(t.__('Allocated'), formatBytes(m.allocated_bytes));
      entry(column('allocations').label(t), String(m.allocations));
      entry(t.__('Still live at the end'), formatBytes(m.leaked_bytes));
    }
    entry(
      t.__('RSS'),
      `${formatBytes(record.rss_before)} → ${formatBytes(record.rss_after)} (${formatDelta(record.rss_after - record.rss_before)})`
    );
    entry(column('rss-peak').label(t), formatBytes(record.rss_peak));
    entry(t.__('Share'), t.__('%1% of all cells', Math.round(share * 100)));
    td.appendChild(dl);
    tr.appendChild(td);
    return tr;
  }

  private _applyCollapsed(): void {
    for (const cell of this._table.querySelectorAll<HTMLElement>(
      '[data-column]'
    )) {
      cell.hidden = this._collapsed.has(cell.dataset.column as ColumnId);
    }
    this._table.classList.toggle(
      'cyscope-mod-collapsed',
      this._collapsed.size > 0
    );
  }

  // -- focus and keys -----------------------------------------------------------

  private _rowElements(): HTMLTableRowElement[] {
    return [
      ...this._body.querySelectorAll<HTMLTableRowElement>('tr[data-key]')
    ];
  }

  private _rowElement(key: string | null): HTMLTableRowElement | null {
    return key === null
      ? null
      : (this._rowElements().find(tr => tr.dataset.key === key) ?? null);
  }

  private _headerButtons(): HTMLButtonElement[] {
    return [
      ...this._head.querySelectorAll<HTMLButtonElement>(
        'th:not([hidden]) button'
      )
    ];
  }

  private _headerButton(index: number): HTMLButtonElement | null {
    const buttons = this._headerButtons();
    return buttons.length
      ? buttons[Math.max(0, Math.min(index, buttons.length - 1))]
      : null;
  }

  private _recordOf(tr: HTMLElement | null): ICellRecord | null {
    const key =
      tr?.closest('tr')?.dataset.key ?? tr?.closest('tr')?.dataset.detailsFor;
    return this._records.find(r => rowKey(r) === key) ?? null;
  }

  /** Move the one tab stop to `element` and focus it. */
  private _moveTo(element: HTMLElement | null): void {
    if (!element) {
      return;
    }
    for (const el of this._table.querySelectorAll<HTMLElement>(
      '[tabindex="0"]'
    )) {
      el.tabIndex = -1;
    }
    element.tabIndex = 0;
    element.focus();
  }

  private _select(tr: HTMLTableRowElement): void {
    this._pickedByUser = true;
    const key = tr.dataset.key ?? null;
    if (key !== this._selectedKey) {
      this._rowElement(this._selectedKey)?.setAttribute(
        'aria-selected',
        'false'
      );
      this._selectedKey = key;
      tr.setAttribute('aria-selected', 'true');
      this._options.onSelect(this.selected);
    }
  }

  private _onFocusIn = (event: FocusEvent): void => {
    const tr = (event.target as HTMLElement).closest?.('tr[data-key]');
    if (tr) {
      this._select(tr as HTMLTableRowElement);
    }
  };

  private _onContextMenu = (event: MouseEvent): void => {
    const tr = (event.target as HTMLElement).closest?.('tr[data-key]');
    if (tr && tr !== document.activeElement) {
      this._moveTo(tr as HTMLTableRowElement);
    }
  };

  private _onClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement;
    const sortButton = target.closest('th button');
    if (sortButton) {
      const th = sortButton.closest('th') as HTMLElement;
      this._headerIndex = this._headerButtons().indexOf(
        sortButton as HTMLButtonElement
      );
      this.sortBy(th.dataset.column as ColumnId);
      return;
    }
    const tr = target.closest('tr[data-key]') as HTMLTableRowElement | null;
    const record = this._recordOf(tr);
    if (!tr || !record) {
      return;
    }
    this._moveTo(tr);
    const action = target.closest('button[data-action]') as HTMLElement | null;
    if (action) {
      this._options
        .rowActions()
        .find(a => a.id === action.dataset.action)
        ?.execute(record);
      return;
    }
    if (target.closest('.cyscope-CellTable-toggle')) {
      this.toggleDetails(record);
      return;
    }
    this._options.onActivate(record);
  };

  private _onKeyDown = (event: KeyboardEvent): void => {
    const target = event.target as HTMLElement;
    if (target.closest('thead')) {
      this._onHeaderKey(event, target);
      return;
    }
    const tr = target.closest('tr[data-key]') as HTMLTableRowElement | null;
    const record = this._recordOf(tr);
    if (!tr || !record || target !== tr) {
      return;
    }
    const rows = this._rowElements();
    const index = rows.indexOf(tr);
    let handled = true;
    switch (event.key) {
      case 'ArrowDown':
        this._moveTo(rows[Math.min(index + 1, rows.length - 1)]);
        break;
      case 'ArrowUp':
        if (index === 0) {
          const sorted = this._headerButtons().findIndex(
            b => b.closest('th')?.dataset.column === this._sort.column
          );
          this._headerIndex = Math.max(0, sorted);
          this._moveTo(this._headerButton(this._headerIndex));
        } else {
          this._moveTo(rows[index - 1]);
        }
        break;
      case 'Home':
        this._moveTo(rows[0]);
        break;
      case 'End':
        this._moveTo(rows[rows.length - 1]);
        break;
      case 'Enter':
        this._options.onActivate(record);
        break;
      case 'ArrowRight':
        this.toggleDetails(record, true);
        break;
      case 'ArrowLeft':
        this.toggleDetails(record, false);
        break;
      case ' ':
        this.toggleDetails(record);
        break;
      default:
        handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  };

  private _onHeaderKey(event: KeyboardEvent, target: HTMLElement): void {
    const buttons = this._headerButtons();
    const index = buttons.indexOf(target as HTMLButtonElement);
    let handled = true;
    switch (event.key) {
      case 'ArrowLeft':
        this._headerIndex = Math.max(0, index - 1);
        this._moveTo(buttons[this._headerIndex]);
        break;
      case 'ArrowRight':
        this._headerIndex = Math.min(buttons.length - 1, index + 1);
        this._moveTo(buttons[this._headerIndex]);
        break;
      case 'ArrowDown':
        this._moveTo(this._rowElements()[0] ?? null);
        break;
      case 'Enter':
      case ' ':
        this._headerIndex = index;
        this.sortBy(target.closest('th')?.dataset.column as ColumnId);
        break;
      default:
        handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  private readonly _table: HTMLTableElement;
  private readonly _head: HTMLTableSectionElement;
  private readonly _body: HTMLTableSectionElement;
  private _rows: readonly ICellRecord[] = [];
  private _records: ICellRecord[] = [];
  private _hasHeap = false;
  private _sort = { ...DEFAULT_SORT };
  private _renderKey = '';
  private _selectedKey: string | null = null;
  private _pickedByUser = false;
  private _headerIndex = 0;
  private _expanded = new Set<string>();
  private _collapsed = new Set<ColumnId>();
}
