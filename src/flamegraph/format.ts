/** Words and figures the flamegraph shows (tooltips, summaries, ARIA). */
import { formatBytes } from '../format';
import { plainTrans, Trans } from '../i18n';
import { FlameTree } from './tree';

export { formatBytes };

export function percent(part: number, whole: number): string {
  if (whole <= 0) {
    return '–';
  }
  const p = (100 * part) / whole;
  return `${p >= 10 || p === 0 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

/** Where the frame's code is, for a tooltip ('' when the label says it). */
export function whereOf(tree: FlameTree, i: number): string {
  const file = tree.file(i);
  const line = tree.line(i);
  if (tree.cell(i) > 0 || !file) {
    return '';
  }
  return line > 0 ? `${file}:${line}` : file;
}

/** The lines of a node's tooltip. */
export function describe(
  tree: FlameTree,
  i: number,
  t: Trans = plainTrans
): string[] {
  const total = tree.value[0];
  const v = tree.value[i];
  const count = Math.round(tree.count[i]);
  const lines = [
    tree.label(i),
    t.__('%1, %2 of the total', formatBytes(v), percent(v, total)),
    t._n(
      'self %2 · %1 allocation',
      'self %2 · %1 allocations',
      count,
      formatBytes(tree.self[i])
    )
  ];
  if (tree.base) {
    const b = tree.base[i];
    const change = v - b;
    lines.push(
      t.__(
        'before: %1 (%2%3)',
        formatBytes(b),
        change >= 0 ? '+' : '−',
        formatBytes(Math.abs(change))
      )
    );
  }
  const where = whereOf(tree, i);
  if (where) {
    lines.push(where);
  }
  const runs = tree.frames.runs.get(tree.frame[i]);
  if (runs) {
    lines.push(runs.map(f => tree.frames.label[f]).join(' → '));
  }
  return lines;
}

/** One sentence for screen readers. */
export function announce(
  tree: FlameTree,
  i: number,
  t: Trans = plainTrans
): string {
  const total = tree.value[0];
  return t.__(
    '%1: %2, %3 of the total, self %4, depth %5',
    tree.label(i),
    formatBytes(tree.value[i]),
    percent(tree.value[i], total),
    formatBytes(tree.self[i]),
    tree.level[i]
  );
}
