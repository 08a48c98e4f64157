/**
 * Where each visible box of a FlameTree goes, for one view (zoomed node,
 * size, orientation, scroll): only boxes at least `minWidth` wide, in the
 * visible rows, are produced, and the subtree of a box too narrow to draw
 * is skipped whole, so the cost follows what is on screen, not the tree's
 * size. Pure: no DOM, tested in jest.
 */
import { FlameTree } from './tree';

export type Orientation = 'icicle' | 'flame';

export interface IViewport {
  /** CSS pixels. */
  width: number;
  /** Height of the drawing area in CSS pixels. */
  height: number;
  rowHeight: number;
  /** The zoomed node: it spans the full width. */
  focus: number;
  /** icicle: the root on top; flame: the root at the bottom. */
  orientation: Orientation;
  /** Rows scrolled past (from the root's side). */
  firstRow: number;
  /** Narrower boxes (and their subtrees) are not drawn. */
  minWidth: number;
}

/** Boxes in columns; row 0 is the root's. */
export interface IBoxes {
  count: number;
  node: Int32Array;
  x: Float64Array;
  w: Float64Array;
  row: Int32Array;
  /** The boxes of the zoomed node's ancestors come first. */
  ancestors: number;
}

export function emptyBoxes(capacity = 1024): IBoxes {
  return {
    count: 0,
    node: new Int32Array(capacity),
    x: new Float64Array(capacity),
    w: new Float64Array(capacity),
    row: new Int32Array(capacity),
    ancestors: 0
  };
}

function push(
  boxes: IBoxes,
  node: number,
  x: number,
  w: number,
  row: number
): void {
  if (boxes.count === boxes.node.length) {
    const grow = (a: Int32Array | Float64Array) => {
      const b = new (a.constructor as new (n: number) => typeof a)(
        a.length * 2
      );
      b.set(a);
      return b;
    };
    boxes.node = grow(boxes.node) as Int32Array;
    boxes.x = grow(boxes.x) as Float64Array;
    boxes.w = grow(boxes.w) as Float64Array;
    boxes.row = grow(boxes.row) as Int32Array;
  }
  const k = boxes.count++;
  boxes.node[k] = node;
  boxes.x[k] = x;
  boxes.w[k] = w;
  boxes.row[k] = row;
}

/** How many rows fit, and how many the tree has. */
export function visibleRows(tree: FlameTree, view: IViewport): number {
  return Math.min(
    tree.maxLevel + 1 - view.firstRow,
    Math.ceil(view.height / view.rowHeight)
  );
}

/** Lay out the visible boxes into `out` (reused between frames). */
export function layout(
  tree: FlameTree,
  view: IViewport,
  out: IBoxes = emptyBoxes()
): IBoxes {
  out.count = 0;
  const first = view.firstRow;
  const last = first + Math.ceil(view.height / view.rowHeight) - 1;
  const focus = Math.min(Math.max(view.focus, 0), tree.size - 1);
  const { level, value, offset, end } = tree;
  const width = view.width;
  // Ancestors of the zoomed node span the whole width.
  for (let a = tree.parent[focus]; a >= 0; a = tree.parent[a]) {
    if (level[a] >= first && level[a] <= last) {
      push(out, a, 0, width, level[a]);
    }
  }
  out.ancestors = out.count;
  const total = value[focus];
  if (total <= 0) {
    if (level[focus] >= first && level[focus] <= last) {
      push(out, focus, 0, width, level[focus]);
    }
    return out;
  }
  const scale = width / total;
  const left = offset[focus];
  const minValue = view.minWidth / scale;
  const stop = end[focus];
  for (let i = focus; i < stop;) {
    const v = value[i];
    const row = level[i];
    if (v < minValue || row > last) {
      i = end[i]; // too narrow, or below the view: so is all of its subtree
      continue;
    }
    if (row >= first) {
      push(out, i, (offset[i] - left) * scale, v * scale, row);
    }
    i++;
  }
  return out;
}

/** The y of a row's top edge, in CSS pixels. */
export function rowTop(view: IViewport, row: number): number {
  const r = row - view.firstRow;
  return view.orientation === 'icicle'
    ? r * view.rowHeight
    : view.height - (r + 1) * view.rowHeight;
}

/** The box under a point, as an index into `boxes`, or -1. */
export function boxAt(
  boxes: IBoxes,
  view: IViewport,
  x: number,
  y: number
): number {
  const r =
    view.orientation === 'icicle'
      ? Math.floor(y / view.rowHeight)
      : Math.floor((view.height - y) / view.rowHeight);
  const row = r + view.firstRow;
  for (let k = 0; k < boxes.count; k++) {
    if (
      boxes.row[k] === row &&
      x >= boxes.x[k] &&
      x < boxes.x[k] + Math.max(boxes.w[k], 1)
    ) {
      return k;
    }
  }
  return -1;
}

/** The nodes a keyboard user reaches with the arrows, from `node`. */
export function neighbour(
  tree: FlameTree,
  node: number,
  direction: 'parent' | 'child' | 'previous' | 'next'
): number {
  switch (direction) {
    case 'parent':
      return node > 0 ? tree.parent[node] : node;
    case 'child':
      // The widest child: siblings come largest first.
      return node + 1 < tree.end[node] ? node + 1 : node;
    case 'next': {
      const after = tree.end[node];
      const p = tree.parent[node];
      return p >= 0 && after < tree.end[p] ? after : node;
    }
    case 'previous': {
      const p = tree.parent[node];
      if (p < 0 || node === p + 1) {
        return node;
      }
      let c = p + 1;
      while (tree.end[c] < node) {
        c = tree.end[c];
      }
      return c;
    }
  }
}
