/**
 * cyscope's strings go through the translation bundle the plugin hands the
 * views (JupyterLab's ITranslator, domain jupyterlab_cyscope): a bundle that
 * marks every string shows up everywhere a user reads cyscope's words.
 */
import { CythonCodePanel } from '../../src/cython/codePanel';
import { DiagnosticsRenderer } from '../../src/cython/renderers';
import { plainTrans, Trans } from '../../src/i18n';
import { MemoryModel } from '../../src/model';
import { MemoryPanel } from '../../src/memoryPanel';
import { MemoryStatus } from '../../src/statusBar';
import { FakeChannel } from './fakeChannel';
import { record } from './messages';

/** Translates by wrapping the English text in «». */
const marked: Trans = {
  __: (msgid: string, ...args: unknown[]) =>
    `«${plainTrans.__(msgid, ...args)}»`,
  _n: (one: string, many: string, n: number, ...args: unknown[]) =>
    `«${plainTrans._n(one, many, n, ...args)}»`
};

async function frame(): Promise<void> {
  await new Promise(resolve => requestAnimationFrame(() => resolve(null)));
}

describe('translations', () => {
  it('reach the memory panel: title, notices, headers, details', async () => {
    const panel = new MemoryPanel({ trans: marked });
    expect(panel.node.querySelector('h2')?.textContent).toBe('«Memory»');
    expect(
      panel.node.querySelector('[data-cyscope="notice"]')?.textContent
    ).toMatch(/^«Open a notebook/);
    const channel = new FakeChannel();
    panel.model = new MemoryModel(channel, 100);
    channel.emit({ v: 1, type: 'history', records: [record(1)] });
    await frame();
    const headers = [...panel.node.querySelectorAll('thead button')].map(
      b => b.childNodes[0].textContent
    );
    expect(headers.length).toBeGreaterThan(3);
    expect(headers.every(h => /^«.*»$/.test(h ?? ''))).toBe(true);
    panel.table.toggleDetails(panel.model!.rows[0], true);
    const terms = [...panel.node.querySelectorAll('dt')].map(
      d => d.textContent
    );
    expect(terms.every(t => /^«.*»$/.test(t ?? ''))).toBe(true);
  });

  it('reach the status bar, the %%cython output and the C view', async () => {
    const status = new MemoryStatus({ onOpen: () => 0, trans: marked });
    expect(status.node.textContent).toBe('«Memory: –»');

    const renderer = new DiagnosticsRenderer(marked);
    await renderer.renderModel({
      data: {
        'application/vnd.cyscope.diagnostics+json': {
          v: 1,
          ok: false,
          diagnostics: [
            {
              severity: 'error',
              line: 2,
              column: 1,
              message: 'm',
              source: 'cc'
            }
          ],
          output: 'x'
        }
      }
    } as any);
    expect(renderer.node.textContent).toContain(
      '«Cython: build failed: «1 error»»'
    );
    expect(renderer.node.textContent).toContain(
      '«line 2, column 1»: «error»: m'
    );
    expect(renderer.node.textContent).toContain('[«C compiler»]');

    const codePanel = new CythonCodePanel(marked);
    expect(codePanel.node.textContent).toMatch(/^«Generated C»«Run a cell/);
  });
});
