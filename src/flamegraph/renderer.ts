/**
 * The output renderer of application/vnd.cyscope.flamegraph.v1+json and
 * the main-area panel that shows one cell's flamegraph: both wrap a
 * FlamegraphView. A malformed payload gets its reason and the kernel's
 * text/plain summary instead; it never breaks the notebook.
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { plainTrans, Trans, TRANSLATION_DOMAIN } from '../i18n';
import { FLAMEGRAPH_MIME, parseFlamegraph } from './payload';
import { FlamegraphView } from './view';

/** Below text/html (50): wins over the SVG fallback in JupyterLab. */
export const RENDERER_RANK = 30;

function element(tag: string, className: string, text: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export class FlamegraphRenderer
  extends Widget
  implements IRenderMime.IRenderer
{
  constructor(private readonly _trans: Trans = plainTrans) {
    super();
    this.addClass('cyscope-FlamegraphOutput');
  }

  /** The view drawn for the current payload (null: malformed). */
  get view(): FlamegraphView | null {
    return this._view;
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._view?.dispose();
    this._view = null;
    this.node.textContent = '';
    const parsed = parseFlamegraph(model.data[FLAMEGRAPH_MIME]);
    this.toggleClass('cyscope-mod-malformed', !parsed.ok);
    if (parsed.ok) {
      this._view = new FlamegraphView(parsed.value, { trans: this._trans });
      this.node.appendChild(this._view.node);
      if (this.isAttached) {
        this._view.render();
      }
    } else {
      this.node.appendChild(
        element('div', 'cyscope-Flamegraph-error', parsed.error)
      );
      const plain = model.data['text/plain'];
      if (typeof plain === 'string' && plain !== '') {
        this.node.appendChild(
          element('pre', 'cyscope-Flamegraph-plain', plain)
        );
      }
    }
    return Promise.resolve();
  }

  dispose(): void {
    this._view?.dispose();
    this._view = null;
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._view?.refreshTheme();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._view?.render();
  }

  private _view: FlamegraphView | null = null;
}

export const flamegraphRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [FLAMEGRAPH_MIME],
  defaultRank: RENDERER_RANK,
  createRenderer: options =>
    new FlamegraphRenderer(
      options.translator?.load(TRANSLATION_DOMAIN) ?? plainTrans
    )
};
