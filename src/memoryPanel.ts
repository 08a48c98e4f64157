/**
 * MemoryPanel: the "cyscope" sidebar. Renders a MemoryModel (the current
 * notebook's) and nothing else: no kernel access, no protocol knowledge,
 * no JupyterLab imports (the plugin hands it a translation bundle and a
 * toolbar), so it is unit-tested in jsdom.
 *
 * Other plugins extend it through two seams (see src/README.md):
 * `toolbar` (above the content; the plugin passes a JupyterLab Toolbar:
 * add buttons with `toolbar.addItem`) and `addRowAction` (a button on every
 * cell row; the plugin wiring also puts it in the rows' context menu).
 */
import type { LabIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import type { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel, PanelLayout, Widget } from '@lumino/widgets';

import { CellTable, IRowActionView } from './cellTable';
import { formatBytes } from './format';
import { plainTrans, Trans } from './i18n';
import { MemoryModel } from './model';
import { ICellRecord } from './protocol';
import {
  createSparkline,
  describeSparkline,
  updateSparkline
} from './sparkline';
import { trackerNoticeText } from './trackerNotices';

/** A button on every row of the memory panel, added by another plugin. */
export interface IMemoryRowAction {
  /** Unique among the panel's actions (also a `data-action` attribute). */
  id: string;
  /** Its accessible name and tooltip. */
  label: string;
  icon?: LabIcon;
  /** Whether the row gets the button (default: every row). */
  isVisible?: (record: ICellRecord) => boolean;
  execute(record: ICellRecord): void;
}

/** Where other plugins put buttons: JupyterLab's Toolbar has this method. */
export interface IToolbarLike extends Widget {
  addItem(name: string, widget: Widget): boolean;
}

export interface IMemoryPanelOptions {
  trans?: Trans;
  /** The toolbar above the content (default: a bare one). */
  toolbar?: IToolbarLike;
}

/** A toolbar for when the plugin gives none (tests, other hosts). */
class PlainToolbar extends Panel implements IToolbarLike {
  addItem(name: string, widget: Widget): boolean {
    widget.node.dataset.toolbarItem = name;
    this.addWidget(widget);
    return true;
  }
}

export class MemoryPanel extends Widget {
  constructor(options: IMemoryPanelOptions = {}) {
    super();
    const t = (this._t = options.trans ?? plainTrans);
    const layout = (this.layout = new PanelLayout());
    this.id = 'cyscope-memory-panel';
    this.addClass('cyscope-MemoryPanel');
    this.title.caption = t.__('cyscope: memory of the current notebook kernel');
    this.node.setAttribute('role', 'region');
    this.node.tabIndex = -1;
    this.node.setAttribute('aria-label', t.__('cyscope memory'));

    const header = new Widget();
    header.addClass('cyscope-MemoryPanel-header');
    header.node.innerHTML = `
      <h2 class="cyscope-MemoryPanel-title"></h2>
      <span class="cyscope-MemoryPanel-kernel" data-cyscope="kernel"></span>`;
    (header.node.firstElementChild as HTMLElement).textContent = t.__('Memory');
    layout.addWidget(header);

    this._toolbar = options.toolbar ?? new PlainToolbar();
    this._toolbar.addClass('cyscope-MemoryPanel-toolbar');
    layout.addWidget(this._toolbar);

    const body = new Widget();
    body.addClass('cyscope-MemoryPanel-body');
    body.node.innerHTML = `
      <div class="cyscope-Notice" data-cyscope="notice" role="status"></div>
      <div class="cyscope-Live" data-cyscope="live">
        <div class="cyscope-Live-figures">
          <div class="cyscope-Live-figure">
            <span class="cyscope-Live-value" data-cyscope="rss">–</span>
            <span class="cyscope-Live-label" data-label="rss"></span>
          </div>
          <div class="cyscope-Live-figure" data-cyscope="heap-box">
            <span class="cyscope-Live-value" data-cyscope="heap">–</span>
            <span class="cyscope-Live-label" data-cyscope="heap-label"></span>
          </div>
        </div>
        <div class="cyscope-Live-running" data-cyscope="running"></div>
      </div>
      <div class="cyscope-Empty" data-cyscope="empty"></div>`;
    layout.addWidget(body);
    this._body = body;
    this._query('[data-label="rss"]').textContent = t.__('resident (RSS)');
    this._part('empty').textContent = t.__('No cell has run yet.');

    this._sparkline = createSparkline(240, 36);
    this._sparkline.setAttribute('role', 'img');
    this._part('live').appendChild(this._sparkline);

    this._table = new CellTable({
      trans: t,
      onActivate: record => {
        if (record.cell_id) {
          this._rowActivated.emit(record);
        }
      },
      onSelect: record => this._selectionChanged.emit(record),
      firstLine: record => this._model?.firstLine(record) ?? null,
      rowActions: () => this._actionViews
    });
    body.node.insertBefore(this._table.node, this._part('empty'));
    this._render();
  }

  get model(): MemoryModel | null {
    return this._model;
  }

  set model(model: MemoryModel | null) {
    if (this._model === model) {
      return;
    }
    this._model?.changed.disconnect(this._scheduleRender, this);
    this._model = model;
    model?.changed.connect(this._scheduleRender, this);
    this._table.refresh();
    this._render();
  }

  /** A row was clicked (or Enter pressed on it): show that cell. */
  get rowActivated(): ISignal<MemoryPanel, ICellRecord> {
    return this._rowActivated;
  }

  /** The focused row changed (row actions run on it from the keyboard). */
  get selectionChanged(): ISignal<MemoryPanel, ICellRecord | null> {
    return this._selectionChanged;
  }

  /** The focused (or last focused) row. */
  get selectedRecord(): ICellRecord | null {
    return this._table.selected;
  }

  /** Buttons other plugins add go here (`toolbar.addItem(name, widget)`). */
  get toolbar(): IToolbarLike {
    return this._toolbar;
  }

  /** The table of rows (sorting, details). */
  get table(): CellTable {
    return this._table;
  }

  /** A label for the notebook whose kernel is shown. */
  set notebookName(name: string) {
    this._notebookName = name;
    this._scheduleRender();
  }

  /** Put a button on every row; dispose the result to take it away. */
  addRowAction(action: IMemoryRowAction): IDisposable {
    if (this._actions.some(a => a.id === action.id)) {
      throw new Error(`a row action '${action.id}' is already there`);
    }
    this._actions = [...this._actions, action];
    this._table.refresh();
    this._scheduleFit();
    return new DisposableDelegate(() => {
      this._actions = this._actions.filter(a => a !== action);
      this._table.refresh();
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
    }
    this.model = null;
    super.dispose();
  }

  /** Shown from the keyboard (command, shortcut): focus goes to the rows. */
  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this._table.focus()) {
      this.node.focus();
    }
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._scheduleFit();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._scheduleFit();
  }

  private get _actionViews(): IRowActionView[] {
    return this._actions.map(a => ({
      id: a.id,
      label: a.label,
      icon: a.icon,
      isVisible: a.isVisible ?? (() => true),
      execute: a.execute
    }));
  }

  private _query<T extends Element = HTMLElement>(selector: string): T {
    return this.node.querySelector(selector) as T;
  }

  private _part<T extends Element = HTMLElement>(name: string): T {
    return this._query<T>(`[data-cyscope="${name}"]`);
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

  private _scheduleFit(): void {
    requestAnimationFrame(() => this._table.fit(this._body.node.clientWidth));
  }

  private _render(): void {
    const t = this._t;
    const model = this._model;
    this._part('kernel').textContent = this._notebookName;
    this._renderNotice(model);
    const live = this._part('live');
    live.hidden = !model || model.state.status !== 'ready';
    if (!model) {
      this._renderRows(null);
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
      const mode = model.config?.tracking;
      this._part('heap-label').textContent =
        mode && mode !== 'off'
          ? t.__('heap (tracked, %1)', mode)
          : t.__('heap (tracked)');
    }
    const running = model.runningCell;
    this._part('running').textContent =
      running === null ? t.__('idle') : t.__('running cell [%1]', running);
    live.classList.toggle('cyscope-mod-running', running !== null);
    const values = model.samples.map(s => s.rss_bytes);
    updateSparkline(this._sparkline, values);
    this._sparkline.setAttribute(
      'aria-label',
      describeSparkline(values, model.samples, t)
    );
    this._renderRows(model);
  }

  private _renderNotice(model: MemoryModel | null): void {
    const t = this._t;
    const notice = this._part('notice');
    let text = '';
    let warn = false;
    if (!model) {
      text = t.__(
        'Open a notebook: cyscope shows the memory of its kernel here.'
      );
    } else {
      const { status, detail } = model.state;
      const problems = model.config?.problems ?? [];
      if (status === 'unavailable') {
        warn = true;
        text = t.__(
          'cyscope is not available in this kernel (%1). Install it in the kernel’s environment (pip install cyscope); the notebook works as usual meanwhile.',
          detail
        );
      } else if (status === 'not-python') {
        text = t.__(
          'This is a %1 kernel: cyscope works with Python kernels.',
          detail
        );
      } else if (status === 'off') {
        text = t.__(
          'cyscope is not loaded into new kernels (setting “Load cyscope into new kernels”). Run %load_ext cyscope, or the command “Load cyscope in the Kernel”.'
        );
      } else if (status === 'unloaded') {
        text = t.__(
          'cyscope was unloaded from this kernel (%unload_ext). It stays off until you load it again (%load_ext cyscope) or restart the kernel.'
        );
      } else if (status === 'retrying') {
        warn = true;
        text = t.__('cyscope lost its connection to the kernel: %1.', detail);
      } else if (status === 'waiting' || status === 'connecting') {
        text = t.__('Connecting to the kernel…');
      } else if (model.hello && !model.hello.native.loaded) {
        warn = true;
        text = t.__(
          'Native library not loaded (%1): showing RSS only.',
          model.hello.native.error ?? ''
        );
      } else if (model.lastError) {
        warn = true;
        text = model.lastError;
      } else if (problems.length) {
        warn = true;
        text = problems.join(' ');
      } else {
        text = trackerNoticeText(model.latest);
        warn = text !== '';
      }
    }
    notice.textContent = text;
    notice.hidden = text === '';
    notice.classList.toggle('cyscope-mod-warning', warn);
  }

  private _renderRows(model: MemoryModel | null): void {
    const rows = model?.rows ?? [];
    this._part('empty').hidden = rows.length > 0;
    this._table.node.hidden = rows.length === 0;
    // Heap columns only mean something once the native tracker reports.
    const hasHeap = rows.some(r => r.memory !== null);
    this.toggleClass('cyscope-mod-noHeap', !hasHeap);
    this._table.render(rows, hasHeap, model?.rowsVersion ?? -1);
    if (hasHeap !== this._hadHeap) {
      this._hadHeap = hasHeap;
      this._scheduleFit();
    }
  }

  private readonly _t: Trans;
  private readonly _toolbar: IToolbarLike;
  private readonly _body: Widget;
  private readonly _table: CellTable;
  private _model: MemoryModel | null = null;
  private _notebookName = '';
  private _frame = 0;
  private _hadHeap = false;
  private _actions: IMemoryRowAction[] = [];
  private _rowActivated = new Signal<MemoryPanel, ICellRecord>(this);
  private _selectionChanged = new Signal<MemoryPanel, ICellRecord | null>(this);
  private _sparkline: SVGSVGElement;
}
