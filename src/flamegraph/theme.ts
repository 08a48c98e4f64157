/**
 * Colours of the flamegraph, read from CSS custom properties that
 * style/flamegraph.css derives from JupyterLab's `--jp-*` variables (light,
 * dark and high-contrast themes each get theirs), plus the colour helpers
 * the canvas needs: text that reads on a fill, a fill dimmed or mixed.
 */
import { FrameKind } from './payload';

export interface ITheme {
  fill: Record<FrameKind, string>;
  background: string;
  /** Gap between boxes. */
  gap: string;
  /** Text on light fills and on dark ones. */
  darkText: string;
  lightText: string;
  /** Outline of search matches and of the selected box. */
  match: string;
  focus: string;
  /** Comparison: a node that grew, one that shrank, one unchanged. */
  grow: string;
  shrink: string;
  same: string;
  font: string;
}

export const KINDS: readonly FrameKind[] = [
  'cell',
  'python',
  'cython',
  'native',
  'other',
  'root'
];

/** Used where no stylesheet is loaded (tests, the benchmark page). */
export const FALLBACK_THEME: ITheme = {
  fill: {
    root: '#bdbdbd',
    cell: '#64b5f6',
    python: '#bbdefb',
    cython: '#ffb74d',
    native: '#e0e0e0',
    other: '#eeeeee'
  },
  background: '#ffffff',
  gap: '#ffffff',
  darkText: '#000000',
  lightText: '#ffffff',
  match: '#e65100',
  focus: '#000000',
  grow: '#e57373',
  shrink: '#64b5f6',
  same: '#e0e0e0',
  font: '11px sans-serif'
};

/** The theme as the stylesheet sets it on `node` (or the fallback). */
export function readTheme(node: Element): ITheme {
  const style = getComputedStyle(node);
  const get = (name: string, fallback: string) =>
    style.getPropertyValue(`--cyscope-flame-${name}`).trim() || fallback;
  const f = FALLBACK_THEME;
  const family = style.getPropertyValue('--jp-ui-font-family').trim();
  return {
    fill: {
      root: get('root', f.fill.root),
      cell: get('cell', f.fill.cell),
      python: get('python', f.fill.python),
      cython: get('cython', f.fill.cython),
      native: get('native', f.fill.native),
      other: get('other', f.fill.other)
    },
    background: get('background', f.background),
    gap: get('gap', f.gap),
    darkText: get('dark-text', f.darkText),
    lightText: get('light-text', f.lightText),
    match: get('match', f.match),
    focus: get('focus', f.focus),
    grow: get('grow', f.grow),
    shrink: get('shrink', f.shrink),
    same: get('same', f.same),
    font: `${get('font-size', '11px')} ${family || 'sans-serif'}`
  };
}

const NAMED: Record<string, [number, number, number]> = {
  white: [255, 255, 255],
  black: [0, 0, 0],
  transparent: [255, 255, 255]
};

/** [r, g, b] of a CSS colour in #rgb, #rrggbb, rgb() or rgba() form. */
export function rgb(color: string): [number, number, number] {
  const c = color.trim().toLowerCase();
  if (NAMED[c]) {
    return NAMED[c];
  }
  let m = /^#([0-9a-f]{3})$/.exec(c);
  if (m) {
    return [0, 1, 2].map(i => parseInt(m![1][i] + m![1][i], 16)) as [
      number,
      number,
      number
    ];
  }
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/.exec(c);
  if (m) {
    return [0, 2, 4].map(i => parseInt(m![1].slice(i, i + 2), 16)) as [
      number,
      number,
      number
    ];
  }
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(c);
  if (m) {
    return [Number(m[1]), Number(m[2]), Number(m[3])];
  }
  return [200, 200, 200];
}

function hex([r, g, b]: [number, number, number]): string {
  const h = (v: number) =>
    Math.round(Math.min(255, Math.max(0, v)))
      .toString(16)
      .padStart(2, '0');
  return `#${h(r)}${h(g)}${h(b)}`;
}

/** `a` moved towards `b` by t (0..1). */
export function mix(a: string, b: string, t: number): string {
  const x = rgb(a);
  const y = rgb(b);
  return hex([0, 1, 2].map(i => x[i] + (y[i] - x[i]) * t) as never);
}

/** Relative luminance (WCAG). */
export function luminance(color: string): number {
  const [r, g, b] = rgb(color).map(v => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** Whichever of the theme's two text colours contrasts more with `fill`. */
export function textOn(theme: ITheme, fill: string): string {
  const l = luminance(fill);
  const contrast = (t: string) => {
    const lt = luminance(t);
    return (Math.max(l, lt) + 0.05) / (Math.min(l, lt) + 0.05);
  };
  return contrast(theme.darkText) >= contrast(theme.lightText)
    ? theme.darkText
    : theme.lightText;
}

/**
 * Comparison: how much a node grew (> 0) or shrank (< 0), in eighths from
 * -8 to 8 (0: unchanged), so a graph needs at most 17 colours.
 */
export function diffStep(value: number, base: number): number {
  if (value === base) {
    return 0;
  }
  const change = (value - base) / Math.max(value, base);
  const strength = 0.25 + 0.75 * Math.min(1, Math.abs(change));
  return Math.sign(change) * Math.max(1, Math.round(strength * 8));
}

/** Comparison fill: stronger as the node grew or shrank more (relative). */
export function diffFill(theme: ITheme, value: number, base: number): string {
  const step = diffStep(value, base);
  if (step === 0) {
    return theme.same;
  }
  return mix(
    theme.same,
    step > 0 ? theme.grow : theme.shrink,
    Math.abs(step) / 8
  );
}
