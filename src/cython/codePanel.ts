/**
 * CythonCodePanel: the side view of `%%cython -a`. Shows the C generated
 * for one line of an annotated cell, and the cell's other annotated lines
 * to switch to. Holds only what it is shown; no kernel, no editor access.
 */
import { Widget } from '@lumino/widgets';

import { plainTrans, Trans } from '../i18n';
import { element } from './dom';
import { annotatedLine, shadedLines } from './layout';
import { IAnnotation } from './payload';

export const CODE_PANEL_ID = 'cyscope-cython-code';

/** What the panel shows: one line of one annotated cell. */
export interface ICodeView {
  payload: IAnnotation;
  line: number;
  /** How the cell is named in the header, e.g. "cell [3]". */
  cellLabel: string;
}

export class CythonCodePanel extends Widget {
  constructor(private readonly _t: Trans = plainTrans) {
    super();
    this.id = CODE_PANEL_ID;
    this.addClass('cyscope-CythonCodePanel');
    this.addClass('cyscope-SidePanel');
    this.title.caption = _t.__(
      'C generated for a line of a %%%%cython -a cell'
    );
    this.node.tabIndex = -1;
    this._render();
  }

  get view(): ICodeView | null {
    return this._view;
  }

  set view(view: ICodeView | null) {
    this._view = view;
    this._render();
  }

  private _render(): void {
    const t = this._t;
    const node = this.node;
    node.textContent = '';
    const header = document.createElement('div');
    header.className = 'cyscope-CythonCodePanel-header';
    header.textContent = t.__('Generated C');
    node.appendChild(header);
    const view = this._view;
    if (!view) {
      node.appendChild(
        element(
          'div',
          'cyscope-CythonCodePanel-notice',
          t.__(
            'Run a cell with %%%%cython -a, then click one of its shaded lines (or the + beside it) to see the C Cython generated for it.'
          )
        )
      );
      return;
    }
    const { payload, line } = view;
    const entry = annotatedLine(payload, line);
    const score = entry?.score ?? 0;
    node.appendChild(
      element(
        'div',
        'cyscope-CythonCodePanel-title',
        t.__('%1, line %2: score %3', view.cellLabel, line, score)
      )
    );
    node.appendChild(
      element(
        'div',
        'cyscope-CythonCodePanel-module',
        t.__('module %1', payload.module)
      )
    );

    const lines = document.createElement('div');
    lines.className = 'cyscope-CythonCodePanel-lines';
    for (const l of shadedLines(payload, Infinity)) {
      const button = element(
        'button',
        `cyscope-CythonCodePanel-line cyscope-mod-shade-${l.shade}`,
        String(l.line)
      );
      button.type = 'button';
      button.title = t.__('line %1: score %2', l.line, l.score);
      button.dataset.line = String(l.line);
      button.setAttribute('aria-pressed', String(l.line === line));
      button.addEventListener('click', () => {
        this.view = { ...view, line: l.line };
      });
      lines.appendChild(button);
    }
    node.appendChild(lines);

    const code = entry?.code ?? '';
    const pre = element(
      'pre',
      'cyscope-CythonCodePanel-code',
      code.trim() === '' ? t.__('/* no C generated for this line */') : code
    );
    pre.dataset.line = String(line);
    node.appendChild(pre);
  }

  private _view: ICodeView | null = null;
}
