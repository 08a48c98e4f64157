/**
 * Layout (which boxes, where), zoom, keyboard moves, search and the
 * comparison colours: pure functions, no DOM.
 */
import {
  boxAt,
  IViewport,
  layout,
  neighbour,
  rowTop
} from '../../src/flamegraph/layout';
import { search } from '../../src/flamegraph/search';
import {
  diffFill,
  diffStep,
  FALLBACK_THEME,
  luminance,
  mix,
  textOn
} from '../../src/flamegraph/theme';
import { FlameTree } from '../../src/flamegraph/tree';
import { fixture } from '../support/protocol-files';
import { big, read } from './flamegraphHelpers';

const [cell, compare] = fixture('flamegraph-valid.json');

function view(over: Partial<IViewport> = {}): IViewport {
  return {
    width: 1000,
    height: 540,
    rowHeight: 18,
    focus: 0,
    orientation: 'icicle',
    firstRow: 0,
    minWidth: 0.5,
    ...over
  };
}

function boxesOf(tree: FlameTree, v: IViewport) {
  const b = layout(tree, v);
  return [...Array(b.count).keys()].map(k => ({
    node: b.node[k],
    label: tree.label(b.node[k]),
    x: b.x[k],
    w: b.w[k],
    row: b.row[k]
  }));
}

const bigTree = FlameTree.fromData(read(big()));

describe('layout', () => {
  it('places boxes by value, the root across the width', () => {
    const t = FlameTree.fromData(read(cell));
    const boxes = boxesOf(t, view());
    expect(boxes.map(b => b.label)).toEqual([
      'cell [4] · peak',
      'cell [4] line 2',
      'grow · cell [3] line 9',
      'cell [4] line 3',
      '<listcomp> · cell [4] line 3'
    ]);
    const [root, line2, grow, line3] = boxes;
    expect(root.x).toBe(0);
    expect(root.w).toBeCloseTo(1000, 9);
    expect(line2.w).toBeCloseTo((1000 * 104857600) / 106954752, 6);
    expect(grow.x).toBe(0);
    expect(line3.x).toBeCloseTo(line2.w, 6);
    expect(boxes.map(b => b.row)).toEqual([0, 1, 2, 1, 2]);
  });

  it('zooms: the focus spans the width, its ancestors stay, the rest goes', () => {
    const t = FlameTree.fromData(read(cell));
    const boxes = boxesOf(t, view({ focus: 3 }));
    expect(boxes.map(b => [b.label, b.x, b.w])).toEqual([
      ['cell [4] · peak', 0, 1000],
      ['cell [4] line 3', 0, 1000],
      ['<listcomp> · cell [4] line 3', 0, (1000 * 2000000) / 2097152]
    ]);
  });

  it('draws only boxes wider than the minimum, and skips their subtrees', () => {
    const v = view({ width: 1200 });
    const b = layout(bigTree, v);
    expect(b.count).toBeGreaterThan(100);
    expect(b.count).toBeLessThan(bigTree.size / 5);
    for (let k = 0; k < b.count; k++) {
      expect(b.w[k]).toBeGreaterThanOrEqual(0.5);
      // a drawn box's parent is drawn too (nothing floats)
      const p = bigTree.parent[b.node[k]];
      if (p >= 0) {
        expect(Array.from(b.node.subarray(0, b.count))).toContain(p);
      }
    }
  });

  it('zooming into a deep node of 100,000 lays out its subtree at full width', () => {
    // The widest node at depth 6.
    let node = 0;
    for (let i = 0; i < bigTree.size; i++) {
      if (
        bigTree.level[i] === 6 &&
        bigTree.value[i] >
          bigTree.value[node] * (bigTree.level[node] === 6 ? 1 : 0)
      ) {
        node = i;
      }
    }
    const b = layout(bigTree, view({ focus: node }));
    expect(b.ancestors).toBe(6);
    const k = Array.from(b.node.subarray(0, b.count)).indexOf(node);
    expect(b.x[k]).toBe(0);
    expect(b.w[k]).toBeCloseTo(1000, 9);
    for (let j = b.ancestors; j < b.count; j++) {
      const n = b.node[j];
      expect(n >= node && n < bigTree.end[node]).toBe(true);
    }
  });

  it('keeps to the visible rows and puts the root at the bottom in flame orientation', () => {
    const v = view({ height: 5 * 18, firstRow: 3 });
    const rows = new Set(boxesOf(bigTree, v).map(b => b.row));
    expect(Math.min(...rows)).toBe(3);
    expect(Math.max(...rows)).toBe(7);
    const flame = view({ orientation: 'flame', height: 90 });
    expect(rowTop(flame, 0)).toBe(72);
    expect(rowTop(view(), 0)).toBe(0);
  });

  it('finds the box under a point', () => {
    const t = FlameTree.fromData(read(cell));
    const v = view();
    const b = layout(t, v);
    expect(b.node[boxAt(b, v, 10, 2 * 18 + 5)]).toBe(2);
    expect(b.node[boxAt(b, v, 995, 18 + 5)]).toBe(3);
    expect(boxAt(b, v, 10, 10 * 18)).toBe(-1);
    const flame = { ...v, orientation: 'flame' as const };
    const f = layout(t, flame);
    expect(f.node[boxAt(f, flame, 10, 540 - 5)]).toBe(0);
  });
});

describe('keyboard moves', () => {
  it('go to parent, widest child and siblings', () => {
    const t = FlameTree.fromData(read(cell));
    expect(neighbour(t, 0, 'child')).toBe(1);
    expect(neighbour(t, 1, 'next')).toBe(3);
    expect(neighbour(t, 3, 'previous')).toBe(1);
    expect(neighbour(t, 3, 'next')).toBe(3);
    expect(neighbour(t, 4, 'parent')).toBe(3);
    expect(neighbour(t, 0, 'parent')).toBe(0);
    expect(neighbour(t, 2, 'child')).toBe(2);
  });
});

describe('search', () => {
  it('matches text without case, and sums each byte once', () => {
    const t = FlameTree.fromData(read(cell));
    const r = search(t, 'GROW');
    expect(r.nodes).toBe(1);
    expect(r.value).toBe(104857600);
    expect(r.share).toBeCloseTo(104857600 / 106954752, 9);
    // 'cell [4]' is the root's title and two lines: counted once, all of it.
    const all = search(t, 'cell [4]');
    expect(all.nodes).toBe(4);
    expect(all.share).toBe(1);
  });

  it('takes a regular expression, and says when it is not one', () => {
    const t = FlameTree.fromData(read(cell));
    const r = search(t, '^cell \\[4\\] line \\d$', { regex: true });
    expect(Array.from(r.matches)).toEqual([0, 1, 0, 1, 0]);
    expect(r.share).toBe(1);
    expect(search(t, '([', { regex: true }).error).toMatch(
      /Invalid regular expression/
    );
    expect(search(t, '').nodes).toBe(0);
  });

  it('searches 100,000 nodes', () => {
    const r = search(bigTree, 'func_4\\d\\d\\b', { regex: true });
    expect(r.nodes).toBeGreaterThan(100);
    expect(r.share).toBeGreaterThan(0);
    expect(r.share).toBeLessThanOrEqual(1);
  });
});

describe('comparison colours', () => {
  it('grow red, shrink the other way, stronger for bigger changes', () => {
    const t = FlameTree.fromData(read(compare));
    const theme = FALLBACK_THEME;
    const labels = [...Array(t.size).keys()].map(i => t.label(i));
    const fill = (label: string) => {
      const i = labels.indexOf(label);
      return diffFill(theme, t.value[i], t.base![i]);
    };
    const grew = fill('grow · cell [3] line 9'); // doubled
    const shrank = fill('<listcomp> · cell [7] line 3'); // a quarter left
    const gone = fill('cell [7] line 4');
    // doubled: change 1/2 -> strength 0.25 + 0.75 / 2 = 5/8
    expect(grew).toBe(mix(theme.same, theme.grow, 5 / 8));
    // a quarter left: change 3/4 -> 0.8125, in eighths 7/8
    expect(shrank).toBe(mix(theme.same, theme.shrink, 7 / 8));
    expect(gone).toBe(mix(theme.same, theme.shrink, 1));
    expect(diffFill(theme, 5, 5)).toBe(theme.same);
    expect(diffStep(100, 99)).toBe(2); // any change shows
    expect(diffStep(0, 99)).toBe(-8);
  });

  it('text reads on its fill', () => {
    expect(textOn(FALLBACK_THEME, '#64b5f6')).toBe('#000000');
    expect(textOn(FALLBACK_THEME, '#1976d2')).toBe('#ffffff');
    expect(luminance('white')).toBe(1);
    expect(luminance('rgba(0, 0, 0, 1)')).toBe(0);
  });
});
