/**
 * Crash reports in the frontend, without a server: the payload check on
 * the shared fixtures, what the views derive from a report (headline,
 * marks, notification), the output renderer on plain DOM, the editor marks
 * on a real CodeMirror view, and the `hello` that carries reports.
 */
import { EditorState } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import type { KernelMessage } from '@jupyterlab/services';

import { crashesIn, notificationText } from '../../src/crash/messages';
import {
  crashMarksExtension,
  currentCrashMarks,
  setCrashMarks
} from '../../src/crash/editorMarks';
import {
  CRASH_MIME,
  crashMarks,
  crashSite,
  headline,
  ICrash,
  parseCrash
} from '../../src/crash/payload';
import {
  crashRendererFactory,
  GOTO_CELL_LINE_EVENT,
  ICellLineRequest
} from '../../src/crash/renderer';
import { fixture } from '../support/protocol-files';

const VALID = fixture('crash-valid.json') as ICrash[];
const [GDB, WORKER, IN_PROCESS, CAUGHT] = VALID;

describe('parseCrash', () => {
  it('accepts every valid and future report, refuses every invalid one', () => {
    for (const item of [...VALID, ...fixture('crash-future.json')]) {
      const parsed = parseCrash(item);
      expect(parsed).toEqual({ ok: true, value: item });
    }
    for (const item of fixture('crash-invalid.json')) {
      expect(parseCrash(item).ok).toBe(false);
    }
  });

  it('says what is wrong, and never throws', () => {
    expect(parseCrash({ ...GDB, v: 2 })).toEqual({
      ok: false,
      error: expect.stringContaining('version 2 is not supported')
    });
    expect(parseCrash('x')).toEqual({
      ok: false,
      error: expect.stringContaining('not a JSON object')
    });
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom');
        }
      }
    );
    expect(parseCrash(hostile).ok).toBe(false);
  });
});

describe('what a report says', () => {
  it('leads with the signal and the crash site', () => {
    expect(crashSite(GDB)?.function).toBe('read_at');
    expect(headline(GDB)).toBe(
      'Kernel crashed: SIGSEGV (segmentation fault (invalid memory access)) at address 0xc: address not mapped to object in cell [2] line 6 (read_at)'
    );
    expect(headline(CAUGHT)).toMatch(/^Caught SIGSEGV/);
    expect(headline(IN_PROCESS)).toMatch(
      /^Kernel crashed: SIGABRT \(aborted \(abort\(\) was called\)\) in cell \[2\] line 13 \(do_abort\)$/
    );
  });

  it('marks each cell line of the stack once, the site first', () => {
    const marks = crashMarks(GDB);
    expect(marks.map(m => [m.executionCount, m.line, m.site])).toEqual([
      [2, 6, true],
      [2, 10, false],
      [3, 1, false]
    ]);
    expect(marks[0].message).toBe(
      'The kernel crashed here: SIGSEGV in read_at'
    );
    expect(marks[0].cellId).toBe(GDB.frames[0].cell?.cell_id);
    expect(crashMarks(WORKER)[0].message).toContain(
      'in_worker (OpenMP worker)'
    );
  });

  it('names the cell and the lost state in the notification', () => {
    const text = notificationText(GDB);
    expect(text).toBe(
      'Kernel crashed in cell [3] (SIGSEGV, cell [2] line 6). It restarted: its state (variables, imports) was lost.'
    );
    expect(text.length).toBeLessThanOrEqual(140); // JupyterLab cuts longer ones
  });
});

describe('crashesIn', () => {
  const hello = (data: unknown, msgType = 'comm_msg') =>
    ({
      header: { msg_type: msgType },
      content: { comm_id: 'c', data }
    }) as unknown as KernelMessage.IMessage;

  it('reads the reports of a hello and nothing else', () => {
    const entries = crashesIn(
      hello({ v: 1, type: 'hello', crashes: [{ report: GDB, text: 'T' }] })
    );
    expect(entries).toEqual([{ report: GDB, text: 'T' }]);
    expect(crashesIn(hello({ v: 1, type: 'hello' }))).toEqual([]);
    expect(crashesIn(hello({ v: 1, type: 'sample', crashes: [] }))).toEqual([]);
    expect(
      crashesIn(hello({ v: 1, type: 'hello', crashes: [] }, 'stream'))
    ).toEqual([]);
  });

  it('drops a malformed report and keeps the others', () => {
    const warn = jest
      .spyOn(console, 'warn')
      .mockImplementation(() => undefined);
    const entries = crashesIn(
      hello({
        v: 1,
        type: 'hello',
        crashes: [{ report: { v: 1 } }, 7, { report: CAUGHT }]
      })
    );
    expect(entries).toEqual([{ report: CAUGHT, text: '' }]);
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('Malformed cyscope crash report')
    );
    warn.mockRestore();
  });
});

async function render(data: Record<string, unknown>): Promise<HTMLElement> {
  const renderer = crashRendererFactory.createRenderer({} as any);
  const model: IRenderMime.IMimeModel = {
    trusted: false,
    data: data as any,
    metadata: {},
    setData: () => undefined
  };
  await renderer.renderModel(model);
  document.body.appendChild(renderer.node);
  return renderer.node;
}

describe('CrashRenderer', () => {
  afterEach(() => {
    document.body.textContent = '';
  });

  it('shows the headline, the frames with their cell lines, and the C locals', async () => {
    const node = await render({ [CRASH_MIME]: GDB });
    const text = node.textContent ?? '';
    expect(
      node.querySelector('.cyscope-CrashReport-headline')?.textContent
    ).toBe(headline(GDB));
    expect(text).toContain(
      'state (variables, imports, loaded modules) was lost'
    );
    const links = [
      ...node.querySelectorAll('.cyscope-CrashReport-cellLine')
    ].map(b => b.textContent);
    // the argument wrapper of null_deref is folded into it
    expect(links).toEqual([
      'cell [2] line 6',
      'cell [2] line 10',
      'cell [3] line 1'
    ]);
    const locals = [
      ...node.querySelectorAll('.cyscope-CrashReport-locals tr')
    ].map(row => [...row.children].map(td => td.textContent));
    expect(locals.slice(0, 2)).toEqual([
      ['p', 'NULL', 'int *, argument'],
      ['n', '3', 'int, argument']
    ]);
    expect(node.querySelector('.cyscope-CrashReport-notice')).toBeNull();
    // the interpreter's own frames are folded until asked for
    const list = node.querySelector(
      '.cyscope-CrashReport-frames'
    ) as HTMLElement;
    expect(list.classList.contains('cyscope-mod-folded')).toBe(true);
    (
      node.querySelector('.cyscope-CrashReport-toggle') as HTMLButtonElement
    ).click();
    expect(list.classList.contains('cyscope-mod-folded')).toBe(false);
  });

  it('asks the notebook to go to a frame’s cell line', async () => {
    const node = await render({ [CRASH_MIME]: GDB });
    const requests: ICellLineRequest[] = [];
    document.body.addEventListener(GOTO_CELL_LINE_EVENT, event =>
      requests.push((event as CustomEvent<ICellLineRequest>).detail)
    );
    (
      node.querySelectorAll(
        '.cyscope-CrashReport-cellLine'
      )[1] as HTMLButtonElement
    ).click();
    expect(requests).toEqual([
      { cellId: GDB.frames[1].cell?.cell_id, executionCount: 2, line: 10 }
    ]);
  });

  it('says what is missing when the kernel wrote the report itself', async () => {
    const node = await render({ [CRASH_MIME]: IN_PROCESS });
    const notice = node.querySelector('.cyscope-CrashReport-notice');
    expect(notice?.textContent).toContain('Install gdb');
    expect(node.textContent).toContain('report by the kernel itself');
  });

  it('names an OpenMP worker, and a caught crash keeps the kernel', async () => {
    expect((await render({ [CRASH_MIME]: WORKER })).textContent).toContain(
      'OpenMP worker thread (prange)'
    );
    const caught = await render({ [CRASH_MIME]: CAUGHT });
    expect(caught.classList.contains('cyscope-mod-caught')).toBe(true);
    expect(caught.textContent).toContain('The kernel lives on');
  });

  it('shows a C local the build lost as optimized out, set apart from the others', async () => {
    // CAUGHT's read_at comes from an optimized build: p is gone, n is not.
    const node = await render({ [CRASH_MIME]: CAUGHT });
    const rows = [
      ...node.querySelectorAll('.cyscope-CrashReport-locals tr')
    ].slice(0, 2);
    expect(rows.map(row => row.firstChild?.textContent)).toEqual(['n', 'p']);
    expect(rows.map(row => row.textContent)).toEqual([
      expect.stringContaining('3'),
      expect.stringContaining('<optimized out>')
    ]);
    expect(
      rows.map(row => row.classList.contains('cyscope-mod-optimizedOut'))
    ).toEqual([false, true]);
  });

  it('shows a malformed report as an error with the kernel’s text', async () => {
    const node = await render({ [CRASH_MIME]: { v: 1 }, 'text/plain': 'TEXT' });
    expect(node.classList.contains('cyscope-mod-malformed')).toBe(true);
    expect(
      node.querySelector('.cyscope-CrashReport-error')?.textContent
    ).toContain('Malformed cyscope crash report');
    expect(node.querySelector('.cyscope-CrashReport-plain')?.textContent).toBe(
      'TEXT'
    );
  });
});

describe('crash marks in the editor', () => {
  const SOURCE = ['%%cython', 'a', 'b', 'c'].join('\n');
  function editor(): EditorView {
    const parent = document.createElement('div');
    document.body.appendChild(parent);
    return new EditorView({
      parent,
      state: EditorState.create({
        doc: SOURCE,
        extensions: crashMarksExtension()
      })
    });
  }

  it('marks the lines, the site stronger, and drops them on an edit', () => {
    const view = editor();
    view.dispatch({
      effects: setCrashMarks.of([
        { line: 3, site: true, messages: ['here'] },
        { line: 2, site: false, messages: ['caller'] },
        { line: 9, site: false, messages: ['past the end'] }
      ])
    });
    const lines = [...view.dom.querySelectorAll<HTMLElement>('.cm-line')];
    expect(lines[2].className).toContain(
      'cyscope-cm-crashLine cyscope-mod-site'
    );
    expect(lines[1].className).toContain('cyscope-cm-crashLine');
    expect(lines[1].className).not.toContain('cyscope-mod-site');
    const markers = [...view.dom.querySelectorAll('.cyscope-cm-crashMarker')];
    expect(markers.map(m => (m as HTMLElement).title)).toEqual([
      'caller',
      'here'
    ]);
    view.dispatch({ changes: { from: 0, insert: '#' } });
    expect(currentCrashMarks(view)).toEqual([]);
    expect(view.dom.querySelector('.cyscope-cm-crashLine')).toBeNull();
    view.destroy();
  });
});
