/**
 * The flamegraph payload reader and the trees made from it, against the
 * kernel's own fixtures (scripts/make_flamegraph_fixtures.py writes them
 * with the payload builder), one of them about 100,000 nodes.
 */
import { parseFlamegraph } from '../../src/flamegraph/payload';
import {
  calleesOf,
  callersOf,
  expandRuns,
  FlameTree
} from '../../src/flamegraph/tree';
import { fixture } from '../support/protocol-files';
import { big, expectNestedSet, read } from './flamegraphHelpers';

const [cell, compare, native, inverted, merged] = fixture(
  'flamegraph-valid.json'
);

describe('parseFlamegraph', () => {
  it('reads every valid and future fixture', () => {
    for (const data of [
      ...fixture('flamegraph-valid.json'),
      ...fixture('flamegraph-future.json')
    ]) {
      const d = read(data);
      expect(d.nodes.value[0]).toBe(d.total);
    }
  });

  it('decodes the columns, frames, totals and cell ids', () => {
    const d = read(cell);
    expect(d.title).toBe('cell [4] · peak');
    expect(d.view).toBe('peak');
    expect(Array.from(d.nodes.level)).toEqual([0, 1, 2, 1, 2]);
    const grow = d.nodes.frame[2];
    expect(d.frames.label[grow]).toBe('grow · cell [3] line 9');
    expect(d.frames.kind[grow]).toBe('cython');
    expect(d.frames.cell[grow]).toBe(3);
    expect(d.frames.line[grow]).toBe(9);
    expect(d.cell).toBe(4);
    expect(d.cellIds.get(3)).toBe('5b1e0c44-cython');
    expect(d.totals?.peak_bytes).toBe(106954752);
    expect(d.nodes.base).toBeNull();
  });

  it('keeps a kind it does not know as native, and ignores unknown fields', () => {
    const data = JSON.parse(JSON.stringify(cell));
    data.kinds[2] = 'jit';
    data.newField = { anything: [1, 2] };
    data.nodes.extraColumn = [1, 2, 3, 4, 5];
    const d = read(data);
    const python = d.frames.kind.filter(k => k === 'python').length;
    expect(python).toBe(0);
    expect(d.frames.kind).toContain('native');
  });

  it.each(fixture('flamegraph-invalid.json').map((p, i) => [i, p]))(
    'refuses invalid fixture %i with a message',
    (_i, payload) => {
      const parsed = parseFlamegraph(payload);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.error).toMatch(
          /^Malformed cyscope flamegraph payload: ./
        );
      }
    }
  );

  it.each(fixture('flamegraph-malformed.json').map(c => [c.why, c.payload]))(
    'refuses a broken tree: %s',
    (_why, payload) => {
      const parsed = parseFlamegraph(payload);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.error).toMatch(
          /^Malformed cyscope flamegraph payload: .*(entries|past the|root|nested set|not its self|total|empty)/
        );
      }
    }
  );

  it('names the version problem', () => {
    const parsed = parseFlamegraph({ ...cell, v: 2 });
    expect(parsed.ok || parsed.error).toMatch(/version 2 is not supported/);
  });

  it('reads a payload of about 100,000 nodes', () => {
    const d = read(big());
    expect(d.nodes.level.length).toBeGreaterThan(99_000);
    expect(d.nodes.level.length).toBeLessThanOrEqual(100_000);
    expectNestedSet(FlameTree.fromData(d));
  });
});

describe('trimmed stacks', () => {
  it('start at the cell: every frame under the root is a cell line', () => {
    for (const data of [cell, compare, native, merged]) {
      const d = read(data);
      expect(d.nodes.level[0]).toBe(0);
      const t = FlameTree.fromData(d);
      for (const c of t.children(0)) {
        expect([t.label(c), t.kind(c)]).toEqual([
          expect.stringMatching(/^cell \[\d+\] line \d+$/),
          'cell'
        ]);
      }
    }
    expect(read(cell).trimmed).toBe(true);
  });
});

describe('FlameTree', () => {
  it('knows subtree ends, parents, offsets and paths', () => {
    const t = FlameTree.fromData(read(cell));
    expect(Array.from(t.end)).toEqual([5, 3, 3, 5, 5]);
    expect(Array.from(t.parent)).toEqual([-1, 0, 1, 0, 3]);
    expect(t.offset[3]).toBe(104857600);
    expect(t.path(2)).toEqual([0, 1, 2]);
    expect(t.children(0)).toEqual([1, 3]);
    expect(t.label(0)).toBe('cell [4] · peak');
    expect(t.kind(1)).toBe('cell');
    expectNestedSet(t);
  });

  it('expands a collapsed run of native frames, keeping every figure', () => {
    const d = read(native);
    const t = FlameTree.fromData(d);
    const run = [...Array(t.size).keys()].find(i => t.isRun(i)) as number;
    expect(t.label(run)).toBe('libpython3.11: 3 frames');
    const e = expandRuns(t);
    expect(e.size).toBe(t.size + 2);
    const labels = [...Array(e.size).keys()].map(i => e.label(i));
    const first = labels.indexOf('PyObject_Call · libpython3.11');
    expect(labels.slice(first, first + 3)).toEqual([
      'PyObject_Call · libpython3.11',
      'type_call · libpython3.11',
      '_PyObject_Malloc · libpython3.11'
    ]);
    expect(e.value[first]).toBe(t.value[run]);
    expect(e.level[first + 2]).toBe(e.level[first] + 2);
    expectNestedSet(e);
  });

  it('builds the callers and callees of a function (sandwich)', () => {
    const t = FlameTree.fromData(read(inverted));
    // Inverted: grow is at the root's child; cell frames are its callers.
    const grow = 1;
    expect(t.label(grow)).toBe('grow · cell [3] line 9');
    const callers = callersOf(t, grow);
    expect(callers.value[0]).toBe(t.value[grow]);
    expect(callers.label(1)).toBe('grow · cell [3] line 9');
    expectNestedSet(callers);
    const callees = calleesOf(t, grow);
    expect(callees.value[0]).toBe(t.value[grow]);
    expectNestedSet(callees);
    expect(callees.children(1).map(i => callees.label(i))).toEqual([
      'cell [6] line 2',
      'fill · cell [6] line 5'
    ]);
  });

  it('counts a recursive function once in its callers view', () => {
    const t = FlameTree.fromData(read(big()));
    // The busiest frame of the synthetic tree appears on many paths.
    const counts = new Map<string, number>();
    for (let i = 1; i < t.size; i++) {
      counts.set(t.functionKey(i), (counts.get(t.functionKey(i)) ?? 0) + 1);
    }
    const [key] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    const node = [...Array(t.size).keys()].find(
      i => t.functionKey(i) === key
    ) as number;
    const callers = callersOf(t, node);
    expect(callers.value[0]).toBeLessThanOrEqual(t.value[0]);
    expectNestedSet(callers);
    expectNestedSet(calleesOf(t, node));
  });

  it('carries the comparison column', () => {
    const t = FlameTree.fromData(read(compare));
    expect(t.base).not.toBeNull();
    const labels = [...Array(t.size).keys()].map(i => t.label(i));
    const grow = labels.indexOf('grow · cell [3] line 9');
    expect(t.value[grow]).toBe(104857600);
    expect(t.base![grow]).toBe(52428800);
    const gone = labels.indexOf('cell [7] line 4');
    expect(t.value[gone]).toBe(0);
    expect(t.base![gone]).toBe(300000);
    expect(callersOf(t, grow).base).not.toBeNull();
  });

  it('shows merged small frames as one node', () => {
    const t = FlameTree.fromData(read(merged));
    const other = [...Array(t.size).keys()].find(
      i => t.kind(i) === 'other'
    ) as number;
    expect(t.label(other)).toBe('12 smaller frames');
    expect(t.value[other]).toBe(t.self[other]);
  });
});
