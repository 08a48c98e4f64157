/**
 * MemoryStatus: the status-bar item with the current notebook kernel's
 * memory (the tracked heap when the tracker reports, else RSS). Clicking it
 * opens the memory panel. Renders a MemoryModel; no kernel access.
 */
import { Widget } from '@lumino/widgets';

import { formatBytes } from './format';
import { plainTrans, Trans } from './i18n';
import { MemoryModel } from './model';

export class MemoryStatus extends Widget {
  constructor(options: { onOpen: () => void; trans?: Trans }) {
    super({ node: document.createElement('button') });
    this._t = options.trans ?? plainTrans;
    this.addClass('cyscope-MemoryStatus');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('type', 'button');
    this.node.dataset.cyscope = 'status';
    this.node.addEventListener('click', options.onOpen);
    this._render();
  }

  get model(): MemoryModel | null {
    return this._model;
  }

  set model(model: MemoryModel | null) {
    if (model === this._model) {
      return;
    }
    this._model?.changed.disconnect(this._schedule, this);
    this._model = model;
    model?.changed.connect(this._schedule, this);
    this._render();
  }

  dispose(): void {
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
    }
    this.model = null;
    super.dispose();
  }

  private _schedule(): void {
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    const t = this._t;
    const model = this._model;
    const latest = model?.state.status === 'ready' ? model.latest : null;
    let text: string;
    let title: string;
    if (!latest) {
      text = t.__('Memory: –');
      title = t.__(
        'cyscope: no memory figures for this notebook yet. Click to open the memory panel.'
      );
    } else if (latest.native) {
      text = t.__('Heap: %1', formatBytes(latest.native.current_bytes));
      title = t.__(
        'cyscope: heap tracked in this notebook’s kernel %1 (resident %2). Click to open the memory panel.',
        formatBytes(latest.native.current_bytes),
        formatBytes(latest.rss_bytes)
      );
    } else {
      text = t.__('RSS: %1', formatBytes(latest.rss_bytes));
      title = t.__(
        'cyscope: resident memory of this notebook’s kernel %1 (no heap tracking). Click to open the memory panel.',
        formatBytes(latest.rss_bytes)
      );
    }
    const running = model?.runningCell ?? null;
    this.node.textContent = text;
    this.node.title = title;
    this.node.setAttribute('aria-label', title);
    this.toggleClass('cyscope-mod-running', running !== null);
  }

  private readonly _t: Trans;
  private _model: MemoryModel | null = null;
  private _frame = 0;
}
