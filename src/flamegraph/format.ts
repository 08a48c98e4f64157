/** Words and figures the flamegraph shows (tooltips, summaries, ARIA). */
import { formatBytes } from '../format';
import { FlameTree } from './tree';

export { formatBytes };

export function percent(part: number, whole: number): string {
  if (whole <= 0) {
    return '–';
  }
  const p = (100 * part) / whole;
  return `${p >= 10 || p === 0 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
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
export function describe(tree: FlameTree, i: number): string[] {
  const total = tree.value[0];
  const v = tree.value[i];
  const lines = [
    tree.label(i),
    `${formatBytes(v)}, ${percent(v, total)} of the total`,
    `self ${formatBytes(tree.self[i])} · ${plural(Math.round(tree.count[i]), 'allocation')}`
  ];
  if (tree.base) {
    const b = tree.base[i];
    const change = v - b;
    lines.push(
      `before: ${formatBytes(b)} (${change >= 0 ? '+' : '−'}${formatBytes(Math.abs(change))})`
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
export function announce(tree: FlameTree, i: number): string {
  const total = tree.value[0];
  return `${tree.label(i)}: ${formatBytes(tree.value[i])}, ${percent(tree.value[i], total)} of the total, self ${formatBytes(tree.self[i])}, depth ${tree.level[i]}`;
}
