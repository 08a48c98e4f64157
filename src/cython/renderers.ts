/**
 * Output renderers for the two `%%cython` MIME types. JupyterLab shows the
 * richest representation it has a renderer for, so in JupyterLab these
 * replace the kernel's text/plain (diagnostics) and Cython's HTML
 * (annotation); other frontends keep those. Renderers only build DOM from
 * the checked payload; moving the cursor or showing C is asked of the
 * notebook with DOM events (./events).
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { GOTO_LINE_EVENT, requestLine, SHOW_CODE_EVENT } from './events';
import { darkestLine, shadeOf, sourceName } from './layout';
import {
  ANNOTATION_MIME,
  describeDiagnostic,
  DIAGNOSTICS_MIME,
  IAnnotation,
  IDiagnostics,
  parseAnnotation,
  parseDiagnostics,
  Parsed
} from './payload';
import { element } from './dom';
import { plainTrans, Trans, TRANSLATION_DOMAIN } from '../i18n';

/** Below text/html (50), so it wins over Cython's HTML annotation. */
export const RENDERER_RANK = 30;

/** cyscope's strings in the application's language (JupyterLab passes
 * renderers its translator). */
function transOf(options: IRenderMime.IRendererOptions): Trans {
  return options.translator?.load(TRANSLATION_DOMAIN) ?? plainTrans;
}

/** What failed, by the payload's optional `stage` (a plugin's name is shown as it is). */
function stageName(t: Trans, stage: string): string {
  const names: Record<string, string> = {
    cython: 'Cython',
    cc: t.__('C compiler'),
    ld: t.__('linker'),
    oom: t.__('out of memory'),
    disk: t.__('could not write the build'),
    load: t.__('the module did not load')
  };
  return names[stage] ?? stage;
}

abstract class PayloadRenderer<T>
  extends Widget
  implements IRenderMime.IRenderer
{
  constructor(
    private readonly _mime: string,
    className: string,
    protected readonly trans: Trans
  ) {
    super();
    this.addClass('cyscope-CythonOutput');
    this.addClass(className);
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.textContent = '';
    const parsed = this.parse(model.data[this._mime]);
    // A display update reuses the renderer: the mark follows the payload.
    this.toggleClass('cyscope-mod-malformed', !parsed.ok);
    if (parsed.ok) {
      this.render(parsed.value);
    } else {
      this.renderError(parsed.error, model.data['text/plain']);
    }
    return Promise.resolve();
  }

  protected abstract parse(data: unknown): Parsed<T>;
  protected abstract render(payload: T): void;

  /** A malformed payload: say so, and keep the kernel's plain text. */
  private renderError(error: string, plain: unknown): void {
    this.node.appendChild(element('div', 'cyscope-CythonOutput-error', error));
    if (typeof plain === 'string' && plain !== '') {
      this.node.appendChild(
        element('pre', 'cyscope-CythonOutput-plain', plain)
      );
    }
  }
}

/** Diagnostics: a clickable list, then the full compiler output, folded. */
export class DiagnosticsRenderer extends PayloadRenderer<IDiagnostics> {
  constructor(trans: Trans = plainTrans) {
    super(DIAGNOSTICS_MIME, 'cyscope-Diagnostics', trans);
  }

  protected parse(data: unknown): Parsed<IDiagnostics> {
    return parseDiagnostics(data);
  }

  protected render(payload: IDiagnostics): void {
    const t = this.trans;
    const errors = payload.diagnostics.filter(d => d.severity === 'error');
    const warnings = payload.diagnostics.length - errors.length;
    this.toggleClass('cyscope-mod-failed', !payload.ok);
    const stage = payload.stage ? stageName(t, payload.stage) : '';
    const counts = [
      errors.length ? t._n('%1 error', '%1 errors', errors.length) : '',
      warnings ? t._n('%1 warning', '%1 warnings', warnings) : ''
    ]
      .filter(Boolean)
      .join(', ');
    const summary = payload.ok
      ? counts
        ? t.__('Cython: compiled with %1', counts)
        : t.__('Cython: compiled')
      : stage
        ? counts
          ? t.__('Cython: build failed (%1): %2', stage, counts)
          : t.__('Cython: build failed (%1)', stage)
        : counts
          ? t.__('Cython: build failed: %1', counts)
          : t.__('Cython: build failed');
    this.node.appendChild(
      element('div', 'cyscope-Diagnostics-summary', summary)
    );

    const list = element('ul', 'cyscope-Diagnostics-list');
    for (const d of payload.diagnostics) {
      const item = element(
        'li',
        `cyscope-Diagnostics-item cyscope-mod-${d.severity}`
      );
      const text = describeDiagnostic(d, t);
      const entry =
        d.line === null
          ? element('span', 'cyscope-Diagnostics-entry', text)
          : element('button', 'cyscope-Diagnostics-entry', text);
      if (entry instanceof HTMLButtonElement) {
        const line = d.line as number;
        entry.type = 'button';
        entry.title = t.__('Go to line %1 of the cell', line);
        entry.dataset.line = String(line);
        entry.addEventListener('click', () =>
          requestLine(entry, GOTO_LINE_EVENT, line, d.column)
        );
      }
      item.appendChild(entry);
      item.appendChild(
        element(
          'span',
          'cyscope-Diagnostics-source',
          `[${sourceName(d.source, t)}]`
        )
      );
      list.appendChild(item);
    }
    if (payload.diagnostics.length) {
      this.node.appendChild(list);
    }

    if (payload.output.trim() !== '') {
      const details = element('details', 'cyscope-Diagnostics-output');
      const lines = payload.output.replace(/\n$/, '').split('\n').length;
      details.appendChild(
        element(
          'summary',
          '',
          t._n(
            'Full compiler output (%1 line)',
            'Full compiler output (%1 lines)',
            lines
          )
        )
      );
      details.appendChild(element('pre', '', payload.output));
      this.node.appendChild(details);
    }
  }
}

/** Annotation: a one-line summary; the shading itself is in the editor. */
export class AnnotationRenderer extends PayloadRenderer<IAnnotation> {
  constructor(trans: Trans = plainTrans) {
    super(ANNOTATION_MIME, 'cyscope-Annotation', trans);
  }

  protected parse(data: unknown): Parsed<IAnnotation> {
    return parseAnnotation(data);
  }

  protected render(payload: IAnnotation): void {
    const t = this.trans;
    const summary = element('div', 'cyscope-Annotation-summary');
    const shaded = payload.lines.filter(l => l.score > 0).length;
    summary.appendChild(
      document.createTextNode(
        t._n(
          'Cython annotation: %1 line, %2 with Python interaction',
          'Cython annotation: %1 lines, %2 with Python interaction',
          payload.lines.length,
          shaded
        )
      )
    );
    const darkest = darkestLine(payload);
    if (darkest) {
      summary.appendChild(document.createTextNode(t.__('; darkest ')));
      const button = element(
        'button',
        `cyscope-Annotation-line cyscope-mod-shade-${shadeOf(darkest.score, payload.max_score)}`,
        t.__('line %1', darkest.line)
      );
      button.type = 'button';
      button.title = t.__('Show the C generated for line %1', darkest.line);
      button.dataset.line = String(darkest.line);
      button.addEventListener('click', () =>
        requestLine(button, SHOW_CODE_EVENT, darkest.line)
      );
      summary.appendChild(button);
      summary.appendChild(
        document.createTextNode(
          t.__(
            ' (score %1). Click a shaded line in the cell to see its C.',
            darkest.score
          )
        )
      );
    } else {
      summary.appendChild(
        document.createTextNode(
          t.__('. No line calls into Python: all of it is plain C.')
        )
      );
    }
    this.node.appendChild(summary);
    if (payload.html_path) {
      this.node.appendChild(
        element(
          'div',
          'cyscope-Annotation-path',
          t.__("Cython's HTML report: %1", payload.html_path)
        )
      );
    }
  }
}

export const diagnosticsRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [DIAGNOSTICS_MIME],
  defaultRank: RENDERER_RANK,
  createRenderer: options => new DiagnosticsRenderer(transOf(options))
};

export const annotationRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [ANNOTATION_MIME],
  defaultRank: RENDERER_RANK,
  createRenderer: options => new AnnotationRenderer(transOf(options))
};
