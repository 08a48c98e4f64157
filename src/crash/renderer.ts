/**
 * The output renderer of `application/vnd.cyscope.crash.v1+json`: what
 * killed the kernel, where (the cell lines, linked), the C locals of the
 * cell's frames, the other threads, and what is missing when gdb could not
 * complete the report. It only builds DOM from the checked payload; going
 * to a cell line is asked of the notebook with a DOM event.
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { element } from '../cython/dom';
import {
  cellLabel,
  CRASH_MIME,
  headline,
  ICrash,
  foldedFrames,
  IFrame,
  isWrapper,
  parseCrash
} from './payload';

/** Below text/html (50): JupyterLab prefers it to the text/plain form. */
export const CRASH_RENDERER_RANK = 30;

export const GOTO_CELL_LINE_EVENT = 'cyscope-crash-goto-cell-line';

export interface ICellLineRequest {
  cellId: string | null;
  executionCount: number | null;
  line: number;
}

const KIND_LABELS: Record<IFrame['kind'], string> = {
  cython: 'Cython',
  python: 'Python',
  native: 'C'
};

export class CrashRenderer extends Widget implements IRenderMime.IRenderer {
  constructor() {
    super();
    this.addClass('cyscope-CrashReport');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.textContent = '';
    const parsed = parseCrash(model.data[CRASH_MIME]);
    this.toggleClass('cyscope-mod-malformed', !parsed.ok);
    if (parsed.ok) {
      this._render(parsed.value);
    } else {
      this.node.appendChild(
        element('div', 'cyscope-CrashReport-error', parsed.error)
      );
      const plain = model.data['text/plain'];
      if (typeof plain === 'string' && plain !== '') {
        this.node.appendChild(
          element('pre', 'cyscope-CrashReport-plain', plain)
        );
      }
    }
    return Promise.resolve();
  }

  private _render(report: ICrash): void {
    this.toggleClass('cyscope-mod-caught', report.caught);
    this.node.appendChild(
      element('div', 'cyscope-CrashReport-headline', headline(report))
    );
    this.node.appendChild(
      element('div', 'cyscope-CrashReport-consequence', consequence(report))
    );
    this.node.appendChild(
      element('div', 'cyscope-CrashReport-facts', facts(report))
    );
    if (report.tracer.status !== 'ok') {
      const notice = element('div', 'cyscope-CrashReport-notice');
      notice.appendChild(
        element(
          'div',
          '',
          report.tracer.message ?? 'gdb did not complete this report.'
        )
      );
      if (report.tracer.detail) {
        notice.appendChild(
          element(
            'code',
            'cyscope-CrashReport-detail',
            `gdb: ${report.tracer.detail}`
          )
        );
      }
      this.node.appendChild(notice);
    }
    this._renderFrames(report);
    this._renderThreads(report);
  }

  private _renderFrames(report: ICrash): void {
    const list = element('ol', 'cyscope-CrashReport-frames');
    list.start = 0;
    const folded: HTMLLIElement[] = [];
    const fold = foldedFrames(report);
    let inner: IFrame | null = null;
    report.frames.forEach((frame, index) => {
      if (isWrapper(frame, inner)) {
        return;
      }
      inner = frame;
      const item = this._frame(frame, index);
      if (fold.has(frame)) {
        item.classList.add('cyscope-mod-foldable');
        folded.push(item);
      }
      list.appendChild(item);
    });
    const title = element(
      'div',
      'cyscope-CrashReport-section',
      'Frames, innermost first'
    );
    this.node.appendChild(title);
    if (folded.length) {
      // The interpreter's and the kernel's machinery: hidden until asked for.
      const show = `Show ${folded.length} more frames (the interpreter, the kernel)`;
      list.classList.add('cyscope-mod-folded');
      const toggle = element('button', 'cyscope-CrashReport-toggle', show);
      toggle.type = 'button';
      toggle.addEventListener('click', () => {
        const shown = !list.classList.toggle('cyscope-mod-folded');
        toggle.textContent = shown ? 'Hide them' : show;
      });
      title.appendChild(toggle);
    }
    this.node.appendChild(list);
  }

  private _frame(frame: IFrame, index: number): HTMLLIElement {
    const item = element(
      'li',
      `cyscope-CrashReport-frame cyscope-mod-${frame.kind}`
    );
    item.value = index;
    const head = element('div', 'cyscope-CrashReport-frameHead');
    head.appendChild(
      element('span', 'cyscope-CrashReport-kind', KIND_LABELS[frame.kind])
    );
    head.appendChild(
      element('span', 'cyscope-CrashReport-function', frame.function ?? '??')
    );
    const ref = frame.cell ?? null;
    if (ref && ref.line !== null) {
      const line = ref.line;
      const link = element(
        'button',
        'cyscope-CrashReport-cellLine',
        `${cellLabel(ref)} line ${line}`
      );
      link.type = 'button';
      link.title = 'Go to this line of the cell';
      link.dataset.line = String(line);
      link.addEventListener('click', () =>
        link.dispatchEvent(
          new CustomEvent<ICellLineRequest>(GOTO_CELL_LINE_EVENT, {
            bubbles: true,
            detail: {
              cellId: ref.cell_id,
              executionCount: ref.execution_count,
              line
            }
          })
        )
      );
      head.appendChild(link);
    } else {
      head.appendChild(
        element('span', 'cyscope-CrashReport-where', where(frame))
      );
    }
    if (frame.inlined) {
      head.appendChild(element('span', 'cyscope-CrashReport-tag', 'inlined'));
    }
    item.appendChild(head);
    if (frame.source) {
      item.appendChild(
        element('code', 'cyscope-CrashReport-source', frame.source.trim())
      );
    }
    if (frame.locals && frame.locals.length) {
      const table = element('table', 'cyscope-CrashReport-locals');
      for (const local of frame.locals) {
        const row = element(
          'tr',
          local.optimized_out ? 'cyscope-mod-optimizedOut' : ''
        );
        row.appendChild(
          element('td', 'cyscope-CrashReport-localName', local.name)
        );
        row.appendChild(
          element('td', 'cyscope-CrashReport-localValue', local.value ?? '?')
        );
        row.appendChild(
          element(
            'td',
            'cyscope-CrashReport-localType',
            local.argument ? `${local.type}, argument` : local.type
          )
        );
        table.appendChild(row);
      }
      item.appendChild(table);
    }
    return item;
  }

  private _renderThreads(report: ICrash): void {
    if (!report.threads.length) {
      return;
    }
    const details = element('details', 'cyscope-CrashReport-threads');
    details.appendChild(
      element('summary', '', `Other threads (${report.threads.length})`)
    );
    const list = element('ul', '');
    for (const thread of report.threads) {
      const top = thread.frames.map(f => f.function ?? '??').join(' ← ');
      list.appendChild(
        element(
          'li',
          '',
          `${thread.tid} ${thread.name ?? 'unnamed'}${thread.main ? ' (main)' : ''}${thread.openmp ? ' (OpenMP)' : ''}: ${top}`
        )
      );
    }
    details.appendChild(list);
    this.node.appendChild(details);
  }
}

function consequence(report: ICrash): string {
  if (report.caught) {
    return 'The kernel lives on (--catch-crashes): the crashed code was abandoned, memory it held stays allocated.';
  }
  return 'The kernel died and was restarted: its state (variables, imports, loaded modules) was lost.';
}

function facts(report: ICrash): string {
  const thread = report.thread;
  const who = thread.main
    ? 'main thread'
    : thread.openmp
      ? 'OpenMP worker thread (prange)'
      : 'worker thread';
  const parts = [
    `${who} ${thread.tid}${thread.name ? ` (${thread.name})` : ''}`,
    `pid ${report.pid}`,
    report.time
  ];
  if (report.cell) {
    parts.push(
      `${cellLabel(report.cell)} ${report.cell.running ? 'was running' : 'ran last'}`
    );
  }
  parts.push(
    report.tracer.status === 'ok'
      ? `report by gdb${report.tracer.seconds !== undefined ? ` in ${report.tracer.seconds} s` : ''}`
      : 'report by the kernel itself'
  );
  return parts.join(' · ');
}

function where(frame: IFrame): string {
  if (frame.file) {
    return `${frame.file}:${frame.line ?? '?'}`;
  }
  const module = (frame.module ?? '').split('/').pop() || '?';
  return frame.address ? `${module} ${frame.address}` : module;
}

export const crashRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [CRASH_MIME],
  defaultRank: CRASH_RENDERER_RANK,
  createRenderer: () => new CrashRenderer()
};
