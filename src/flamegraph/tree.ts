/**
 * FlameTree: a decoded nested set with what drawing and navigation need,
 * computed once in O(n): where each subtree ends, each node's parent, and
 * each node's horizontal offset (in bytes, from the root's left edge).
 * Also the trees derived from one: native runs expanded, callers and
 * callees of a function (the sandwich view). No DOM.
 */
import { FrameKind, IFlameData, IFrames } from './payload';

export interface ITreeColumns {
  level: Int32Array;
  value: Float64Array;
  self: Float64Array;
  count: Float64Array;
  frame: Int32Array;
  base: Float64Array | null;
}

/** The frame a tree's root shows, when it is not one of the table's. */
export const ROOT_FRAME = -1;

export class FlameTree {
  readonly size: number;
  readonly level: Int32Array;
  readonly value: Float64Array;
  readonly self: Float64Array;
  readonly count: Float64Array;
  readonly frame: Int32Array;
  readonly base: Float64Array | null;
  /** One past the last node of each node's subtree. */
  readonly end: Int32Array;
  readonly parent: Int32Array;
  /** Bytes between the root's left edge and the node's. */
  readonly offset: Float64Array;
  readonly maxLevel: number;

  constructor(
    readonly frames: IFrames,
    columns: ITreeColumns,
    /** What the root is called (its frame may be ROOT_FRAME). */
    readonly rootLabel: string
  ) {
    const { level, value } = columns;
    const n = level.length;
    this.size = n;
    this.level = level;
    this.value = value;
    this.self = columns.self;
    this.count = columns.count;
    this.frame = columns.frame;
    this.base = columns.base;
    this.end = new Int32Array(n);
    this.parent = new Int32Array(n);
    this.offset = new Float64Array(n);
    // path[l]: the open node at level l; next[l]: where the next child at
    // level l starts. Typed and indexed by level: no array resizing per node.
    let path = new Int32Array(64);
    let next = new Float64Array(65);
    let depth = -1; // level of the deepest open node
    let maxLevel = 0;
    for (let i = 0; i < n; i++) {
      const l = level[i];
      for (; depth >= l; depth--) {
        this.end[path[depth]] = i;
      }
      if (l + 1 >= path.length) {
        const p2 = new Int32Array(path.length * 2);
        p2.set(path);
        path = p2;
        const n2 = new Float64Array(next.length * 2);
        n2.set(next);
        next = n2;
      }
      this.parent[i] = l > 0 ? path[l - 1] : -1;
      const x = l > 0 ? next[l] : 0;
      this.offset[i] = x;
      next[l] = x + value[i];
      next[l + 1] = x;
      path[l] = i;
      depth = l;
      if (l > maxLevel) {
        maxLevel = l;
      }
    }
    for (; depth >= 0; depth--) {
      this.end[path[depth]] = n;
    }
    this.maxLevel = maxLevel;
  }

  /** The payload's own tree (native runs collapsed, as sent). */
  static fromData(data: IFlameData): FlameTree {
    return new FlameTree(data.frames, data.nodes, data.title);
  }

  label(i: number): string {
    const f = this.frame[i];
    return f < 0 || i === 0 ? this.rootLabel : this.frames.label[f];
  }

  kind(i: number): FrameKind {
    const f = this.frame[i];
    return i === 0 || f < 0 ? 'root' : this.frames.kind[f];
  }

  /** Execution count of the cell the node's code is in, or 0. */
  cell(i: number): number {
    const f = this.frame[i];
    return f < 0 ? 0 : this.frames.cell[f];
  }

  line(i: number): number {
    const f = this.frame[i];
    return f < 0 ? 0 : this.frames.line[f];
  }

  file(i: number): string {
    const f = this.frame[i];
    return f < 0 ? '' : this.frames.file[f];
  }

  /** Does the node stand for a collapsed run of native frames? */
  isRun(i: number): boolean {
    return this.frames.runs.has(this.frame[i]);
  }

  children(i: number): number[] {
    const out: number[] = [];
    for (let c = i + 1; c < this.end[i]; c = this.end[c]) {
      out.push(c);
    }
    return out;
  }

  /** The node and its ancestors, root first. */
  path(i: number): number[] {
    const out: number[] = [];
    for (let a = i; a >= 0; a = this.parent[a]) {
      out.push(a);
    }
    return out.reverse();
  }

  /** Identity of the node's function (name, file and kind, any line). */
  functionKey(i: number): string {
    const f = this.frame[i];
    if (f < 0 || i === 0) {
      return '';
    }
    return `${this.frames.kind[f]}\u0000${this.frames.name[f]}\u0000${this.frames.file[f]}`;
  }
}

/** The tree with every collapsed run of native frames shown frame by frame. */
export function expandRuns(tree: FlameTree): FlameTree {
  const runs = tree.frames.runs;
  if (runs.size === 0) {
    return tree;
  }
  const n = tree.size;
  let extra = 0;
  for (let i = 0; i < n; i++) {
    const members = runs.get(tree.frame[i]);
    if (members) {
      extra += members.length - 1;
    }
  }
  const m = n + extra;
  const out: ITreeColumns = {
    level: new Int32Array(m),
    value: new Float64Array(m),
    self: new Float64Array(m),
    count: new Float64Array(m),
    frame: new Int32Array(m),
    base: tree.base ? new Float64Array(m) : null
  };
  const shiftBelow: number[] = []; // added depth inherited by the children of each level
  let j = 0;
  for (let i = 0; i < n; i++) {
    const l = tree.level[i];
    const shift = l > 0 ? shiftBelow[l - 1] : 0;
    const members = runs.get(tree.frame[i]) ?? [tree.frame[i]];
    for (let k = 0; k < members.length; k++, j++) {
      out.level[j] = l + shift + k;
      out.value[j] = tree.value[i];
      out.count[j] = tree.count[i];
      out.frame[j] = members[k];
      out.self[j] = k === members.length - 1 ? tree.self[i] : 0;
      if (out.base && tree.base) {
        out.base[j] = tree.base[i];
      }
    }
    shiftBelow[l] = shift + members.length - 1;
  }
  return new FlameTree(tree.frames, out, tree.rootLabel);
}

interface ITrieNode {
  frame: number;
  value: number;
  self: number;
  count: number;
  base: number;
  children: Map<number, ITrieNode>;
}

function trieNode(frame: number): ITrieNode {
  return { frame, value: 0, self: 0, count: 0, base: 0, children: new Map() };
}

function child(node: ITrieNode, frame: number): ITrieNode {
  let c = node.children.get(frame);
  if (!c) {
    c = trieNode(frame);
    node.children.set(frame, c);
  }
  return c;
}

/** A trie as tree columns: depth-first, largest child first. */
function fromTrie(
  frames: IFrames,
  root: ITrieNode,
  rootLabel: string,
  withBase: boolean
): FlameTree {
  const level: number[] = [];
  const value: number[] = [];
  const self: number[] = [];
  const count: number[] = [];
  const frame: number[] = [];
  const base: number[] = [];
  const stack: [ITrieNode, number][] = [[root, 0]];
  while (stack.length) {
    const [node, l] = stack.pop() as [ITrieNode, number];
    level.push(l);
    value.push(node.value);
    self.push(node.self);
    count.push(node.count);
    frame.push(node.frame);
    base.push(node.base);
    const kids = [...node.children.values()].sort(
      (a, b) => b.value + b.base - (a.value + a.base)
    );
    for (let k = kids.length - 1; k >= 0; k--) {
      stack.push([kids[k], l + 1]);
    }
  }
  return new FlameTree(
    frames,
    {
      level: Int32Array.from(level),
      value: Float64Array.from(value),
      self: Float64Array.from(self),
      count: Float64Array.from(count),
      frame: Int32Array.from(frame),
      base: withBase ? Float64Array.from(base) : null
    },
    rootLabel
  );
}

/** The outermost nodes of a function: not inside another of its nodes. */
function outermost(tree: FlameTree, key: string): number[] {
  const out: number[] = [];
  for (let i = 1; i < tree.size;) {
    if (tree.functionKey(i) === key) {
      out.push(i);
      i = tree.end[i];
    } else {
      i++;
    }
  }
  return out;
}

/**
 * Who calls a function: each of its outermost nodes with its ancestors
 * above it, inverted and merged (the function at the root's children).
 */
export function callersOf(tree: FlameTree, node: number): FlameTree {
  const key = tree.functionKey(node);
  const root = trieNode(ROOT_FRAME);
  for (const o of outermost(tree, key)) {
    const weight = tree.value[o];
    const count = tree.count[o];
    const base = tree.base ? tree.base[o] : 0;
    root.value += weight;
    root.count += count;
    root.base += base;
    let at = root;
    for (let a = o; a > 0; a = tree.parent[a]) {
      at = child(at, tree.frame[a]);
      at.value += weight;
      at.count += count;
      at.base += base;
    }
    at.self += weight;
  }
  return fromTrie(
    tree.frames,
    root,
    `callers of ${tree.label(node)}`,
    tree.base !== null
  );
}

/** What a function calls: the subtrees of its outermost nodes, merged. */
export function calleesOf(tree: FlameTree, node: number): FlameTree {
  const key = tree.functionKey(node);
  const root = trieNode(ROOT_FRAME);
  const base = tree.base;
  for (const o of outermost(tree, key)) {
    const at: ITrieNode[] = [root];
    const top = tree.level[o];
    for (let d = o; d < tree.end[o]; d++) {
      const depth = tree.level[d] - top + 1;
      at.length = depth;
      const t = child(at[depth - 1], tree.frame[d]);
      at.push(t);
      // Own figures only: the merged node's totals are summed below.
      t.self += tree.self[d];
      let ownCount = tree.count[d];
      let ownBase = base ? base[d] : 0;
      for (let c = d + 1; c < tree.end[d]; c = tree.end[c]) {
        ownCount -= tree.count[c];
        ownBase -= base ? base[c] : 0;
      }
      for (const a of at) {
        a.value += tree.self[d];
        a.count += ownCount;
        a.base += ownBase;
      }
    }
  }
  return fromTrie(
    tree.frames,
    root,
    `called by ${tree.label(node)}`,
    tree.base !== null
  );
}
