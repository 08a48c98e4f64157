/**
 * The flamegraph MIME payload (protocol/flamegraph.schema.json, version 1):
 * the generated reader checks its shape, then the rules JSON Schema cannot
 * say (equal columns, indexes in range, a nested set in depth-first order,
 * every value exactly its self plus its children's) are checked here while
 * the columns are copied into typed arrays. Never throws; unknown fields are
 * ignored. No DOM, no JupyterLab.
 */
import { checkFlamegraph, IFlamegraph } from '../generated/flamegraph';
import { brief, isObject } from '../schemaRuntime';

export const FLAMEGRAPH_MIME = 'application/vnd.cyscope.flamegraph.v1+json';

export type FrameKind =
  'root' | 'cell' | 'python' | 'cython' | 'native' | 'other';

const KNOWN_KINDS: readonly string[] = [
  'root',
  'cell',
  'python',
  'cython',
  'native',
  'other'
];

/** The frame table: one entry per frame, nodes point into it. */
export interface IFrames {
  readonly label: readonly string[];
  readonly name: readonly string[];
  readonly file: readonly string[];
  readonly kind: readonly FrameKind[];
  /** Execution count of the frame's cell; 0: none. */
  readonly cell: Int32Array;
  /** Line in the file or cell; 0: none. */
  readonly line: Int32Array;
  /** A collapsed run of native frames -> the frames it stands for. */
  readonly runs: ReadonlyMap<number, readonly number[]>;
}

/** The node columns: a nested set in depth-first order. */
export interface INodes {
  readonly level: Int32Array;
  readonly value: Float64Array;
  readonly self: Float64Array;
  readonly count: Float64Array;
  readonly frame: Int32Array;
  /** The compared report's value per node, or null. */
  readonly base: Float64Array | null;
}

export interface IFlameData {
  readonly title: string;
  readonly view: string;
  readonly inverted: boolean;
  readonly threshold: number;
  readonly total: number;
  readonly nodes: INodes;
  readonly frames: IFrames;
  readonly compare: {
    title: string;
    total: number;
    cell: number | null;
  } | null;
  readonly totals: IFlamegraph['totals'] | null;
  readonly exact: boolean;
  readonly native: boolean;
  /** The stacks start at the cell (the kernel's frames above it dropped). */
  readonly trimmed: boolean;
  /** The cell the graph is about (execution count), and its notebook id. */
  readonly cell: number | null;
  readonly cellId: string | null;
  /** Notebook cell id of the execution counts the frames name. */
  readonly cellIds: ReadonlyMap<number, string>;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

class Malformed extends Error {}

function fail(reason: string): never {
  throw new Malformed(reason);
}

function column(
  values: readonly number[],
  make: new (n: number) => Int32Array | Float64Array,
  where: string,
  length: number
) {
  if (values.length !== length) {
    fail(`${where} has ${values.length} entries, not ${length}`);
  }
  // Copied and checked in one pass: every entry a whole number >= 0.
  const out = new make(length);
  for (let i = 0; i < length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      fail(`${where}[${i}]: expected an integer >= 0, got ${brief(v)}`);
    }
    out[i] = v;
  }
  return out;
}

function indexes(
  values: readonly number[],
  where: string,
  length: number,
  limit: number,
  of: string
): Int32Array {
  const out = column(values, Int32Array, where, length) as Int32Array;
  for (let i = 0; i < length; i++) {
    if (out[i] >= limit) {
      fail(`${where}[${i}] = ${out[i]} is past the ${limit} ${of}`);
    }
  }
  return out;
}

function decode(p: IFlamegraph): IFlameData {
  const strings = p.strings;
  const nf = p.frames.label.length;
  const text = (ix: readonly number[], where: string) =>
    Array.from(
      indexes(ix, `frames.${where}`, nf, strings.length, 'strings'),
      i => strings[i]
    );
  const kindIndex = indexes(
    p.frames.kind,
    'frames.kind',
    nf,
    p.kinds.length,
    'kinds'
  );
  const frames: IFrames = {
    label: text(p.frames.label, 'label'),
    name: text(p.frames.name, 'name'),
    file: text(p.frames.file, 'file'),
    kind: Array.from(kindIndex, k =>
      KNOWN_KINDS.includes(p.kinds[k]) ? (p.kinds[k] as FrameKind) : 'native'
    ),
    cell: column(p.frames.cell, Int32Array, 'frames.cell', nf) as Int32Array,
    line: column(p.frames.line, Int32Array, 'frames.line', nf) as Int32Array,
    runs: new Map(
      (p.runs ?? []).map((run, r): [number, number[]] => {
        if (run.some(f => f >= nf)) {
          fail(`runs[${r}] names a frame past the ${nf} frames`);
        }
        return [run[0], run.slice(1)];
      })
    )
  };
  const n = p.nodes.level.length;
  if (n === 0) {
    fail('nodes: no root (every column is empty)');
  }
  const level = column(
    p.nodes.level,
    Int32Array,
    'nodes.level',
    n
  ) as Int32Array;
  const value = column(
    p.nodes.value,
    Float64Array,
    'nodes.value',
    n
  ) as Float64Array;
  const self = column(
    p.nodes.self,
    Float64Array,
    'nodes.self',
    n
  ) as Float64Array;
  const count = column(
    p.nodes.count,
    Float64Array,
    'nodes.count',
    n
  ) as Float64Array;
  const frame = indexes(p.nodes.frame, 'nodes.frame', n, nf, 'frames');
  const base = p.nodes.base
    ? (column(p.nodes.base, Float64Array, 'nodes.base', n) as Float64Array)
    : null;
  checkNesting(level, value, self);
  if (p.total !== value[0]) {
    fail(`total ${p.total} is not the root's value ${value[0]}`);
  }
  const cellIds = new Map<number, string>();
  for (const [key, id] of Object.entries(p.cells ?? {})) {
    if (/^\d+$/.test(key)) {
      cellIds.set(Number(key), id);
    }
  }
  return {
    title: p.title,
    view: p.view,
    inverted: p.inverted === true,
    threshold: p.threshold ?? 0,
    total: p.total,
    nodes: { level, value, self, count, frame, base },
    frames,
    compare: p.compare
      ? {
          title: p.compare.title,
          total: p.compare.total,
          cell: p.compare.cell ?? null
        }
      : null,
    totals: p.totals ?? null,
    exact: p.exact === true,
    native: p.native === true,
    trimmed: p.trimmed !== false,
    cell: p.cell ?? null,
    cellId: p.cell_id ?? null,
    cellIds
  };
}

/** A single root first, depth-first levels, value = self + children's. */
function checkNesting(
  level: Int32Array,
  value: Float64Array,
  self: Float64Array
): void {
  const n = level.length;
  if (level[0] !== 0) {
    fail(
      `nodes.level[0] is ${level[0]}: the first node must be the root (level 0)`
    );
  }
  const children = new Float64Array(n);
  let path = new Int32Array(64); // path[l]: the latest node at level l
  for (let i = 1; i < n; i++) {
    const l = level[i];
    if (l < 1 || l > level[i - 1] + 1) {
      fail(
        `nodes.level[${i}] is ${l} after ${level[i - 1]}: not a depth-first nested set with one root`
      );
    }
    if (l >= path.length) {
      const longer = new Int32Array(path.length * 2);
      longer.set(path);
      path = longer;
    }
    children[path[l - 1]] += value[i];
    path[l] = i;
  }
  for (let i = 0; i < n; i++) {
    if (self[i] + children[i] !== value[i]) {
      fail(
        `nodes.value[${i}] is ${value[i]}, not its self ${self[i]} plus its children's ${children[i]}`
      );
    }
  }
}

const COLUMNS: Record<string, readonly string[]> = {
  nodes: ['level', 'value', 'self', 'count', 'frame', 'base'],
  frames: ['label', 'name', 'file', 'kind', 'cell', 'line']
};

/**
 * The payload with its columns emptied, for the generated reader. It checks
 * every entry of a list through a call that builds the entry's path; on a
 * 100,000-node payload that alone took half a second, so the strings are
 * checked by checkStrings and the columns' entries while decode copies
 * them (same rules).
 */
function withoutColumns(
  data: Record<string, unknown>
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  if (Array.isArray(data.strings) && data.strings.length > 0) {
    out.strings = [''];
  }
  for (const [table, names] of Object.entries(COLUMNS)) {
    const columns = data[table];
    if (isObject(columns)) {
      const copy: Record<string, unknown> = { ...columns };
      for (const name of names) {
        if (Array.isArray(copy[name])) {
          copy[name] = [];
        }
      }
      out[table] = copy;
    }
  }
  return out;
}

/** Every string a string. */
function checkStrings(data: Record<string, unknown>): string | null {
  const strings = data.strings as unknown[];
  for (let i = 0; i < strings.length; i++) {
    if (typeof strings[i] !== 'string') {
      return `strings[${i}]: expected a string, got ${brief(strings[i])}`;
    }
  }
  return null;
}

/** Check and decode a flamegraph payload (never throws). */
export function parseFlamegraph(data: unknown): Parsed<IFlameData> {
  const malformed = (reason: string): Parsed<IFlameData> => ({
    ok: false,
    error: `Malformed cyscope flamegraph payload: ${reason}`
  });
  try {
    if (!isObject(data)) {
      return malformed(`not a JSON object (got ${brief(data)})`);
    }
    if (!('v' in data)) {
      return malformed('no version field "v"');
    }
    if (data.v !== 1) {
      return malformed(
        `version ${brief(data.v)} is not supported (this cyscope reads version 1; update the extension or the kernel package so they match)`
      );
    }
    const problem = checkFlamegraph(withoutColumns(data)) ?? checkStrings(data);
    if (problem !== null) {
      return malformed(problem);
    }
    return { ok: true, value: decode(data as unknown as IFlamegraph) };
  } catch (error) {
    return malformed(
      error instanceof Malformed ? error.message : String(error)
    );
  }
}
