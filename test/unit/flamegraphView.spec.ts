/**
 * The flamegraph output renderer and its view on jsdom: a mime model is only
 * `data` here, as JupyterLab's renderers see it. jsdom has no canvas, so a
 * recording 2D context stands in for it (what was filled, what was written).
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { CELL_LINE_EVENT, ICellLineRequest } from '../../src/flamegraph/events';
import { FLAMEGRAPH_MIME } from '../../src/flamegraph/payload';
import {
  FlamegraphRenderer,
  flamegraphRendererFactory
} from '../../src/flamegraph/renderer';
import {
  announce,
  describe as describeNode
} from '../../src/flamegraph/format';
import { FALLBACK_THEME, mix } from '../../src/flamegraph/theme';
import { plainTrans, Trans } from '../../src/i18n';
import { FlamegraphView } from '../../src/flamegraph/view';
import { fixture } from '../support/protocol-files';
import { read } from './flamegraphHelpers';

interface IDrawn {
  fills: { style: string; x: number; y: number; w: number; h: number }[];
  texts: string[];
}

let drawn: IDrawn;

function fakeContext(): CanvasRenderingContext2D {
  const ctx: any = {
    fillStyle: '',
    strokeStyle: '',
    lineWidth: 1,
    font: '',
    textBaseline: '',
    setTransform: () => undefined,
    fillRect: (x: number, y: number, w: number, h: number) =>
      drawn.fills.push({ style: ctx.fillStyle, x, y, w, h }),
    strokeRect: () => undefined,
    fillText: (text: string) => drawn.texts.push(text),
    measureText: (text: string) => ({ width: text.length * 6 })
  };
  return ctx as CanvasRenderingContext2D;
}

beforeAll(() => {
  (HTMLCanvasElement.prototype as any).getContext = function () {
    return fakeContext();
  };
  // jsdom lays nothing out: give charts a width.
  Object.defineProperty(HTMLElement.prototype, 'clientWidth', {
    configurable: true,
    get() {
      return (this as HTMLElement).classList.contains('cyscope-FlameChart')
        ? 1000
        : 0;
    }
  });
});

beforeEach(() => {
  drawn = { fills: [], texts: [] };
});

afterEach(() => {
  document.body.textContent = '';
});

const [cell, compare, native] = fixture('flamegraph-valid.json');

function model(data: Record<string, unknown>): IRenderMime.IMimeModel {
  return {
    trusted: false,
    data: data as any,
    metadata: {},
    setData: () => undefined
  };
}

async function render(
  data: Record<string, unknown>
): Promise<FlamegraphRenderer> {
  const renderer = flamegraphRendererFactory.createRenderer(
    {} as any
  ) as FlamegraphRenderer;
  await renderer.renderModel(model(data));
  Widget.attach(renderer, document.body);
  drawn = { fills: [], texts: [] };
  renderer.view?.render();
  return renderer;
}

function requests(): ICellLineRequest[] {
  const seen: ICellLineRequest[] = [];
  document.body.addEventListener(CELL_LINE_EVENT, e =>
    seen.push((e as CustomEvent<ICellLineRequest>).detail)
  );
  return seen;
}

function key(target: Element, k: string): void {
  target.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true }));
}

describe('flamegraph renderer', () => {
  it('is safe, and ranks above the SVG in text/html', () => {
    expect(flamegraphRendererFactory.safe).toBe(true);
    expect(flamegraphRendererFactory.mimeTypes).toEqual([FLAMEGRAPH_MIME]);
    expect(flamegraphRendererFactory.defaultRank).toBeLessThan(50);
  });

  it('draws title, totals, legend, toolbar and every box', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const node = r.node;
    expect(node.querySelector('.cyscope-Flamegraph-title')?.textContent).toBe(
      'cell [4] · peak'
    );
    expect(
      node.querySelector('.cyscope-Flamegraph-summary')?.textContent
    ).toContain('102 MiB live at the peak');
    const legend = [
      ...node.querySelectorAll('.cyscope-Flamegraph-legendItem')
    ].map(e => e.textContent);
    expect(legend).toEqual(['cell code', 'Python', 'Cython']);
    // 5 boxes and the background.
    expect(drawn.fills.length).toBe(6);
    expect(drawn.texts).toContain('grow · cell [3] line 9');
    const canvas = node.querySelector('canvas')!;
    expect(canvas.getAttribute('role')).toBe('application');
    expect(canvas.getAttribute('aria-label')).toMatch(/Arrow keys/);
    expect(canvas.tabIndex).toBe(0);
    // The Native frames toggle only where there are collapsed runs.
    const runs = [...node.querySelectorAll('button')].find(b =>
      b.textContent?.startsWith('Native frames')
    )!;
    expect(runs.hidden).toBe(true);
  });

  it('cuts labels to fit their box', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    // '<listcomp> · cell [4] line 3' is about 19 px wide at 1000 px: no room.
    expect(drawn.texts.some(t => t.startsWith('<listcomp>'))).toBe(false);
    r.view!.chart.zoom(3);
    expect(drawn.texts).toContain('<listcomp> · cell [4] line 3');
    // Zoomed out again in a narrower chart, grow's label is cut with an ellipsis.
    Object.defineProperty(r.view!.chart.node, 'clientWidth', { value: 60 });
    drawn.texts = [];
    r.view!.chart.zoom(0);
    expect(drawn.texts).toContain('grow · …');
  });

  it('refuses a malformed payload with its reason and shows the text', async () => {
    const broken = fixture('flamegraph-malformed.json')[0].payload;
    const r = await render({
      [FLAMEGRAPH_MIME]: broken,
      'text/plain': 'top lines'
    });
    expect(r.hasClass('cyscope-mod-malformed')).toBe(true);
    expect(
      r.node.querySelector('.cyscope-Flamegraph-error')?.textContent
    ).toMatch(
      /^Malformed cyscope flamegraph payload: nodes.self has 4 entries, not 5/
    );
    expect(r.node.querySelector('pre')?.textContent).toBe('top lines');
    // A display update with a valid payload draws again.
    await r.renderModel(model({ [FLAMEGRAPH_MIME]: cell }));
    expect(r.hasClass('cyscope-mod-malformed')).toBe(false);
    expect(r.view).not.toBeNull();
  });

  it('click zooms, and a cell frame asks for its cell line', async () => {
    const seen = requests();
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const chart = r.view!.chart;
    const canvas = chart.canvas;
    // The grow box: row 2, at the left.
    canvas.dispatchEvent(
      new MouseEvent('click', {
        clientX: 10,
        clientY: 2 * 18 + 4,
        bubbles: true
      })
    );
    expect(chart.focus).toBe(2);
    expect(seen).toEqual([{ cell: 3, cellId: '5b1e0c44-cython', line: 9 }]);
    const crumbs = [
      ...r.node.querySelectorAll('.cyscope-Flamegraph-breadcrumb button')
    ].map(b => b.textContent);
    expect(crumbs).toEqual([
      'all',
      'cell [4] line 2',
      'grow · cell [3] line 9'
    ]);
    // The root's box is the ancestors' first: clicking it zooms out.
    canvas.dispatchEvent(
      new MouseEvent('click', { clientX: 900, clientY: 4, bubbles: true })
    );
    expect(chart.focus).toBe(0);
  });

  it('keyboard: arrows move, Enter zooms, Escape zooms out, slash searches', async () => {
    const seen = requests();
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const view = r.view!;
    const chart = view.chart;
    const canvas = chart.canvas;
    key(canvas, 'ArrowDown');
    expect(chart.selected).toBe(1);
    key(canvas, 'ArrowRight');
    expect(chart.selected).toBe(3);
    key(canvas, 'ArrowDown');
    expect(chart.selected).toBe(4);
    expect(
      r.node.querySelector('.cyscope-Flamegraph-status')?.textContent
    ).toMatch(/^<listcomp> · cell \[4\] line 3: 1\.9 MiB/);
    key(canvas, 'Enter');
    expect(chart.focus).toBe(4);
    expect(seen).toEqual([{ cell: 4, cellId: '7c0f9a2e-memory', line: 3 }]);
    key(canvas, 'Escape');
    expect(chart.focus).toBe(3);
    key(canvas, 'Escape');
    expect(chart.focus).toBe(0);
    key(canvas, '/');
    expect(document.activeElement).toBe(
      r.node.querySelector('.cyscope-Flamegraph-search')
    );
  });

  it('search outlines matches, dims the rest and gives their share', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const input = r.node.querySelector(
      '.cyscope-Flamegraph-search'
    ) as HTMLInputElement;
    input.value = 'grow';
    input.dispatchEvent(new Event('input'));
    const result = r.node.querySelector('.cyscope-Flamegraph-searchResult')!;
    expect(result.textContent).toBe('1 frame · 98.0% (100 MiB)');
    const regex = r.node.querySelector(
      '.cyscope-Flamegraph-regex input'
    ) as HTMLInputElement;
    regex.checked = true;
    input.value = '([';
    input.dispatchEvent(new Event('input'));
    expect(result.textContent).toMatch(/^not a regular expression/);
    expect(r.view!.find('line [23]$', true)).toBe(1);
  });

  it('the callers view shows who calls the selected function and what it calls', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const view = r.view!;
    key(view.chart.canvas, 'ArrowDown');
    key(view.chart.canvas, 'ArrowDown');
    view.showCallers(true);
    const titles = [
      ...r.node.querySelectorAll('.cyscope-Flamegraph-chartTitle')
    ].map(e => e.textContent);
    expect(titles).toEqual([
      'Callers of grow · cell [3] line 9',
      'What grow · cell [3] line 9 calls'
    ]);
    expect(r.node.querySelectorAll('canvas').length).toBe(2);
    view.showCallers(false);
    expect(r.node.querySelectorAll('canvas').length).toBe(1);
  });

  it('expands runs of native frames on request', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: native });
    const view = r.view!;
    const button = [...r.node.querySelectorAll('button')].find(b =>
      b.textContent?.startsWith('Native frames')
    )!;
    expect(button.hidden).toBe(false);
    const labels = () =>
      [...Array(view.tree.size).keys()].map(i => view.tree.label(i));
    expect(labels()).toContain('libpython3.11: 3 frames');
    // The run's box is narrow: its label is cut to fit.
    expect(drawn.texts.some(t => t.startsWith('libpython3.11: '))).toBe(true);
    button.click();
    expect(view.tree.size).toBe(read(native).nodes.level.length + 2);
    expect(labels()).not.toContain('libpython3.11: 3 frames');
    expect(labels()).toContain('type_call · libpython3.11');
    expect(button.getAttribute('aria-pressed')).toBe('true');
  });

  it('a comparison is coloured by growth, with its legend', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: compare });
    const legend = [
      ...r.node.querySelectorAll('.cyscope-Flamegraph-legendItem')
    ].map(e => e.textContent);
    expect(legend).toEqual(['grew', 'shrank', 'unchanged']);
    expect(
      r.node.querySelector('.cyscope-Flamegraph-summary')?.textContent
    ).toContain('compared with cell [4] · peak');
    const styles = new Set(drawn.fills.slice(1).map(f => f.style));
    const t = FALLBACK_THEME;
    expect(styles).toEqual(
      new Set([mix(t.same, t.grow, 5 / 8), mix(t.same, t.shrink, 7 / 8)])
    );
  });

  it('reads its colours from the theme, and again when the theme changes', async () => {
    const r = await render({ [FLAMEGRAPH_MIME]: cell });
    const node = r.node.querySelector('.cyscope-Flamegraph') as HTMLElement;
    node.style.setProperty('--cyscope-flame-cython', '#123456');
    document.body.dataset.jpThemeName = 'JupyterLab Dark';
    await new Promise(resolve => setTimeout(resolve, 0)); // the MutationObserver
    expect(drawn.fills.some(f => f.style === '#123456')).toBe(true);
    delete document.body.dataset.jpThemeName;
  });

  it('a view is DOM only: no kernel, no JupyterLab', () => {
    const view = new FlamegraphView(read(cell));
    expect(view.node.classList.contains('cyscope-Flamegraph')).toBe(true);
    view.dispose();
  });
});

describe('flamegraph translations', () => {
  /** Translates by wrapping the English text in «». */
  const marked: Trans = {
    __: (msgid: string, ...args: unknown[]) =>
      `«${plainTrans.__(msgid, ...args)}»`,
    _n: (one: string, many: string, n: number, ...args: unknown[]) =>
      `«${plainTrans._n(one, many, n, ...args)}»`
  };

  it('reach the header, toolbar, legend, search, tooltip and screen readers', () => {
    const view = new FlamegraphView(read(cell), { trans: marked });
    document.body.appendChild(view.node);
    const text = (sel: string) =>
      [...view.node.querySelectorAll(sel)].map(e => e.textContent);
    expect(text('.cyscope-Flamegraph-summary')[0]).toMatch(
      /^«102 MiB live at the peak» · «sampled stacks» · «peak 102 MiB»$/
    );
    expect(text('.cyscope-Flamegraph-toolbar button')).toEqual([
      '«Icicle»',
      '«Callers»',
      '«Native frames: runs»',
      '«Reset zoom»'
    ]);
    expect(text('.cyscope-Flamegraph-legendItem')).toEqual([
      '«cell code»',
      '«Python»',
      '«Cython»'
    ]);
    expect(
      view.node
        .querySelector('.cyscope-Flamegraph-search')!
        .getAttribute('placeholder')
    ).toBe('«Search frames (/)»');
    view.find('grow');
    expect(text('.cyscope-Flamegraph-searchResult')[0]).toBe(
      '«1 frame · 98.0% (100 MiB)»'
    );
    expect(describeNode(view.tree, 2, marked).slice(1, 3)).toEqual([
      '«100 MiB, 98.0% of the total»',
      '«self 100 MiB · 100 allocations»'
    ]);
    expect(announce(view.tree, 2, marked)).toMatch(
      /^«grow · cell \[3\] line 9: /
    );
    view.dispose();
  });
});
