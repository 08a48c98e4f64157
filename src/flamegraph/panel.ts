/**
 * FlamegraphPanel: one cell's flamegraph in the main area, opened from the
 * memory panel's row action. Peak and leaks, each asked of the kernel's
 * history once (the cell does not run again). A frame of a cell clicked
 * here selects that cell of the notebook and puts the cursor on its line.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { plainTrans, Trans } from '../i18n';
import { cellFlamegraphExpression, evaluate, FlameView } from './kernelSource';
import { FLAMEGRAPH_MIME, parseFlamegraph } from './payload';
import { answerCellLineEvents } from './cellLines';
import { FlamegraphView } from './view';

const VIEWS: { view: FlameView; label: (t: Trans) => string }[] = [
  { view: 'peak', label: t => t.__('Peak') },
  { view: 'leaks', label: t => t.__('Leaks') }
];

export class FlamegraphPanel extends Widget {
  constructor(
    readonly notebook: NotebookPanel,
    readonly executionCount: number,
    private readonly _t: Trans = plainTrans
  ) {
    super();
    const t = _t;
    this.id = `cyscope-flamegraph-${notebook.id}-${executionCount}`;
    this.addClass('cyscope-FlamegraphPanel');
    this.title.label = t.__('Flamegraph · cell [%1]', executionCount);
    this.title.caption = t.__(
      'Memory of cell [%1] of %2',
      executionCount,
      notebook.context.path
    );
    this.title.closable = true;
    const tabs = document.createElement('div');
    tabs.className = 'cyscope-FlamegraphPanel-tabs';
    tabs.setAttribute('role', 'tablist');
    for (const { view, label } of VIEWS) {
      const tab = document.createElement('button');
      tab.type = 'button';
      tab.className = 'cyscope-Flamegraph-button';
      tab.textContent = label(t);
      tab.dataset.view = view;
      tab.setAttribute('role', 'tab');
      tab.addEventListener('click', () => void this.showView(view));
      tabs.appendChild(tab);
    }
    this._status.className = 'cyscope-FlamegraphPanel-status';
    this._status.setAttribute('role', 'status');
    this.node.append(tabs, this._status, this._body);
    this._stop = answerCellLineEvents(this.node, () => this.notebook);
    notebook.disposed.connect(() => this.dispose());
  }

  /** The view shown now. */
  get view(): FlamegraphView | null {
    return this._shown;
  }

  /** Show the peak or leaks flamegraph, asking the kernel the first time. */
  async showView(view: FlameView): Promise<void> {
    for (const tab of this.node.querySelectorAll<HTMLButtonElement>(
      '[role="tab"]'
    )) {
      tab.setAttribute('aria-selected', String(tab.dataset.view === view));
    }
    this._wanted = view;
    let loaded = this._views.get(view);
    if (!loaded) {
      this._status.textContent =
        view === 'peak'
          ? this._t.__(
              'Asking the kernel for the peak flamegraph of cell [%1]…',
              this.executionCount
            )
          : this._t.__(
              'Asking the kernel for the leaks flamegraph of cell [%1]…',
              this.executionCount
            );
      loaded = await this._load(view);
      this._views.set(view, loaded);
    }
    if (this.isDisposed || this._wanted !== view) {
      return;
    }
    this._shown?.node.remove();
    this._shown = null;
    if (typeof loaded === 'string') {
      this._status.textContent = loaded;
      this._status.classList.add('cyscope-mod-error');
      return;
    }
    this._status.textContent = '';
    this._status.classList.remove('cyscope-mod-error');
    this._shown = loaded;
    this._body.appendChild(loaded.node);
    loaded.refreshTheme();
    loaded.render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._stop();
    for (const v of this._views.values()) {
      if (typeof v !== 'string') {
        v.dispose();
      }
    }
    super.dispose();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._shown?.render();
  }

  private async _load(view: FlameView): Promise<FlamegraphView | string> {
    const kernel = this.notebook.sessionContext.session?.kernel;
    if (!kernel) {
      return this._t.__(
        'The notebook has no kernel: its flamegraphs went with it.'
      );
    }
    const answer = await evaluate(
      kernel,
      cellFlamegraphExpression(this.executionCount, view)
    );
    if (!answer.ok) {
      return this._t.__(
        'No flamegraph for cell [%1]: %2',
        this.executionCount,
        answer.error
      );
    }
    const parsed = parseFlamegraph(answer.data[FLAMEGRAPH_MIME]);
    if (!parsed.ok) {
      return parsed.error;
    }
    return new FlamegraphView(parsed.value, {
      maxHeight: 4000,
      trans: this._t
    });
  }

  private _status = document.createElement('div');
  private _body = document.createElement('div');
  private _views = new Map<FlameView, FlamegraphView | string>();
  private _shown: FlamegraphView | null = null;
  private _wanted: FlameView = 'peak';
  private _stop: () => void;
}
