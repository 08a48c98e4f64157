/**
 * MemoryPanel: the "cyscope" sidebar. Renders a MemoryModel (the current
 * notebook's) and nothing else: no kernel access, no protocol knowledge.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { formatBytes, formatDelta, formatDuration } from './format';
import { MemoryModel } from './model';
import { ICellRecord } from './protocol';
import { createSparkline, updateSparkline } from './sparkline';

const NOTICE_NO_NOTEBOOK =
  'Open a notebook: cyscope shows the memory of its kernel here.';

export class MemoryPanel extends Widget {
  constructor() {
    super();
    this.id = 'cyscope-memory-panel';
    this.addClass('cyscope-MemoryPanel');
    this.addClass('cyscope-SidePanel');
    this.title.caption = 'cyscope: memory of the current notebook kernel';
    this.node.innerHTML = `
      <div class="cyscope-MemoryPanel-header">
        <span class="cyscope-MemoryPanel-title">Memory</span>
        <span class="cyscope-MemoryPanel-kernel" data-cyscope="kernel"></span>
      </div>
      <div class="cyscope-Notice" data-cyscope="notice" role="status"></div>
      <div class="cyscope-Live" data-cyscope="live">
        <div class="cyscope-Live-figures">
          <div class="cyscope-Live-figure">
            <span class="cyscope-Live-value" data-cyscope="rss">–</span>
            <span class="cyscope-Live-label">resident (RSS)</span>
          </div>
          <div class="cyscope-Live-figure" data-cyscope="heap-box">
            <span class="cyscope-Live-value" data-cyscope="heap">–</span>
            <span class="cyscope-Live-label">heap (tracked)</span>
          </div>
        </div>
        <div class="cyscope-Live-running" data-cyscope="running"></div>
      </div>
      <div class="cyscope-CellTable-scroll">
      <table class="cyscope-CellTable" data-cyscope="cells">
        <thead><tr>
          <th data-column="cell" title="Execution count">Cell</th>
          <th data-column="time">Time</th>
          <th data-column="heap-peak" class="cyscope-HeapColumn" title="Heap peak during the cell (exact, native tracker)">Heap peak</th>
          <th data-column="heap-net" class="cyscope-HeapColumn" title="Heap live at end minus at start (exact, native tracker)">Net</th>
          <th data-column="rss-delta" title="RSS after minus RSS before the cell">Δ RSS</th>
          <th data-column="rss-peak" title="Highest RSS sampled during the cell">Peak RSS</th>
          <th data-column="allocations" class="cyscope-HeapColumn" title="Allocations made in the cell (native tracker)">Allocs</th>
        </tr></thead>
        <tbody></tbody>
      </table>
      </div>
      <div class="cyscope-Empty" data-cyscope="empty">No cell has run yet.</div>`;
    this._sparkline = createSparkline(240, 36);
    this._part('live').appendChild(this._sparkline);
    this._render();
  }

  get model(): MemoryModel | null {
    return this._model;
  }

  /** A row was clicked (or Enter pressed on it): show that cell. */
  get rowActivated(): ISignal<MemoryPanel, ICellRecord> {
    return this._rowActivated;
  }

  set model(model: MemoryModel | null) {
    if (this._model === model) {
      return;
    }
    this._model?.changed.disconnect(this._scheduleRender, this);
    this._model = model;
    model?.changed.connect(this._scheduleRender, this);
    this._render();
  }

  /** A label for the notebook whose kernel is shown. */
  set notebookName(name: string) {
    this._notebookName = name;
    this._scheduleRender();
  }

  dispose(): void {
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
    }
    this.model = null;
    super.dispose();
  }

  private _part<T extends Element = HTMLElement>(name: string): T {
    return this.node.querySelector(`[data-cyscope="${name}"]`) as T;
  }

  /** Samples arrive 10 times a second: coalesce renders into frames. */
  private _scheduleRender(): void {
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    const model = this._model;
    this._part('kernel').textContent = this._notebookName;
    this._renderNotice(model);
    const live = this._part('live');
    live.hidden = !model || model.state.status !== 'ready';
    if (!model) {
      this._renderRows([]);
      return;
    }
    const latest = model.latest;
    this._part('rss').textContent = latest
      ? formatBytes(latest.rss_bytes)
      : '–';
    const heapBox = this._part('heap-box');
    heapBox.hidden = !latest?.native;
    if (latest?.native) {
      this._part('heap').textContent = formatBytes(latest.native.current_bytes);
    }
    const running = model.runningCell;
    this._part('running').textContent =
      running === null ? 'idle' : `running cell [${running}]`;
    live.classList.toggle('cyscope-mod-running', running !== null);
    updateSparkline(
      this._sparkline,
      model.samples.map(s => s.rss_bytes)
    );
    this._renderRows(model.rows);
  }

  private _renderNotice(model: MemoryModel | null): void {
    const notice = this._part('notice');
    let text = '';
    let warn = false;
    if (!model) {
      text = NOTICE_NO_NOTEBOOK;
    } else {
      const { status, detail } = model.state;
      if (status === 'unavailable') {
        warn = true;
        text =
          `cyscope is not available in this kernel (${detail}). ` +
          'Install it in the kernel’s environment (pip install cyscope); ' +
          'the notebook works as usual meanwhile.';
      } else if (status === 'not-python') {
        text = `This is a ${detail} kernel: cyscope works with Python kernels.`;
      } else if (status === 'waiting' || status === 'connecting') {
        text = 'Connecting to the kernel…';
      } else if (model.hello && !model.hello.native.loaded) {
        warn = true;
        text = `Native library not loaded (${model.hello.native.error}): showing RSS only.`;
      } else if (model.lastError) {
        warn = true;
        text = model.lastError;
      }
    }
    notice.textContent = text;
    notice.hidden = text === '';
    notice.classList.toggle('cyscope-mod-warning', warn);
  }

  private _renderRows(rows: readonly ICellRecord[]): void {
    const body = this.node.querySelector('tbody') as HTMLTableSectionElement;
    this._part('empty').hidden = rows.length > 0;
    this._part('cells').hidden = rows.length === 0;
    // Rows only ever change at cell boundaries: rebuild only then.
    const key = rows.length
      ? `${rows.length}:${rows[rows.length - 1].started_ms}:${rows[0].started_ms}`
      : '';
    if (key === this._rowsKey) {
      return;
    }
    this._rowsKey = key;
    // Heap columns only mean something once the native tracker reports.
    this.toggleClass('cyscope-mod-noHeap', !rows.some(r => r.memory !== null));
    body.replaceChildren(
      ...[...rows].reverse().map(record => this._row(record))
    );
  }

  private _row(r: ICellRecord): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.executionCount = String(r.execution_count);
    if (!r.success) {
      tr.classList.add('cyscope-mod-failed');
    }
    tr.title =
      `RSS ${formatBytes(r.rss_before)} → ${formatBytes(r.rss_after)}` +
      (r.success ? '' : ' (the cell raised)') +
      (r.cell_id ? '. Click to go to the cell.' : '');
    if (r.cell_id) {
      tr.tabIndex = 0;
      tr.classList.add('cyscope-mod-linked');
      const activate = () => this._rowActivated.emit(r);
      tr.addEventListener('click', activate);
      tr.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          activate();
        }
      });
    }
    // Heap figures first: exact, and what a narrow sidebar should show.
    const heap = r.memory;
    const cells: [string, string, boolean][] = [
      ['cell', `[${r.execution_count}]`, false],
      ['time', formatDuration(r.duration_ms), false],
      ['heap-peak', heap ? formatBytes(heap.peak_bytes) : '–', true],
      ['heap-net', heap ? formatDelta(heap.net_bytes) : '–', true],
      ['rss-delta', formatDelta(r.rss_after - r.rss_before), false],
      ['rss-peak', formatBytes(r.rss_peak), false],
      ['allocations', heap ? String(heap.allocations) : '–', true]
    ];
    for (const [column, text, isHeap] of cells) {
      const td = document.createElement('td');
      td.dataset.column = column;
      td.textContent = text;
      if (isHeap) {
        td.className = 'cyscope-HeapColumn';
      }
      tr.appendChild(td);
    }
    return tr;
  }

  private _model: MemoryModel | null = null;
  private _notebookName = '';
  private _frame = 0;
  private _rowsKey = '';
  private _rowActivated = new Signal<MemoryPanel, ICellRecord>(this);
  private _sparkline: SVGSVGElement;
}
