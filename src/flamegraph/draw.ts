/**
 * Paint laid-out boxes on a Canvas2D context (already scaled to the
 * device pixel ratio): fills by kind (or by growth in a comparison),
 * labels cut to fit, search matches outlined and the rest dimmed, the
 * hovered and selected boxes outlined. Only what `layout()` produced is
 * touched, and boxes are painted grouped by colour: setting a canvas
 * colour costs more than a rectangle.
 */
import { IBoxes, IViewport } from './layout';
import { ISearchResult } from './search';
import { diffFill, diffStep, ITheme, mix, textOn } from './theme';
import { FlameTree } from './tree';

export interface IPaint {
  tree: FlameTree;
  boxes: IBoxes;
  view: IViewport;
  theme: ITheme;
  search: ISearchResult | null;
  selected: number;
  hovered: number;
}

/** Average advance of a character of a font, measured once per font. */
const charWidths = new Map<string, number>();

function charWidth(ctx: CanvasRenderingContext2D, font: string): number {
  let w = charWidths.get(font);
  if (w === undefined) {
    const sample = 'abcdefghijklmnopqrstuvwxyz [0123456789] · _.';
    w = ctx.measureText(sample).width / sample.length || 6.5;
    charWidths.set(font, w);
  }
  return w;
}

/** Boxes narrower than this get no label. */
const MIN_LABEL_PX = 22;
const PAD = 3;

interface IStyle {
  fill: string;
  text: string;
  /** Boxes (indexes into the layout) painted in this style. */
  boxes: number[];
}

export function paint(ctx: CanvasRenderingContext2D, p: IPaint): void {
  const { tree, boxes, view, theme, search } = p;
  const h = view.rowHeight;
  const icicle = view.orientation === 'icicle';
  const top = (row: number) =>
    icicle
      ? (row - view.firstRow) * h
      : view.height - (row - view.firstRow + 1) * h;
  ctx.fillStyle = theme.background;
  ctx.fillRect(0, 0, view.width, view.height);
  const dimming = search !== null && search.nodes > 0;
  // Group the boxes by the colour they are painted in.
  const styles = new Map<string, IStyle>();
  const styleOf = (fill: string, dim: boolean): IStyle => {
    const key = dim ? `~${fill}` : fill;
    let s = styles.get(key);
    if (!s) {
      const shown = dim ? mix(fill, theme.background, 0.65) : fill;
      const text = textOn(theme, shown);
      s = {
        fill: shown,
        text: dim ? mix(text, shown, 0.45) : text,
        boxes: []
      };
      styles.set(key, s);
    }
    return s;
  };
  const base = tree.base;
  const diffFills = new Map<number, string>();
  const diff = (i: number) => {
    const step = diffStep(tree.value[i], base![i]);
    let fill = diffFills.get(step);
    if (fill === undefined) {
      fill = diffFill(theme, tree.value[i], base![i]);
      diffFills.set(step, fill);
    }
    return fill;
  };
  const matched: number[] = [];
  for (let k = 0; k < boxes.count; k++) {
    const i = boxes.node[k];
    const fill = base ? diff(i) : theme.fill[tree.kind(i)];
    const hit = search !== null && search.matches[i] === 1;
    if (hit) {
      matched.push(k);
    }
    styleOf(fill, dimming && !hit).boxes.push(k);
  }
  // Fills. A one-pixel gap right and below separates boxes.
  for (const s of styles.values()) {
    ctx.fillStyle = s.fill;
    for (const k of s.boxes) {
      ctx.fillRect(
        boxes.x[k],
        top(boxes.row[k]),
        Math.max(boxes.w[k] - 1, 0.5),
        h - 1
      );
    }
  }
  // Labels, where they fit.
  ctx.font = theme.font;
  ctx.textBaseline = 'middle';
  const cw = charWidth(ctx, theme.font);
  for (const s of styles.values()) {
    let styled = false;
    for (const k of s.boxes) {
      const w = boxes.w[k];
      if (w < MIN_LABEL_PX) {
        continue;
      }
      const room = Math.floor((w - 2 * PAD) / cw);
      if (room < 2) {
        continue;
      }
      if (!styled) {
        ctx.fillStyle = s.text;
        styled = true;
      }
      const label = tree.label(boxes.node[k]);
      ctx.fillText(
        label.length <= room ? label : `${label.slice(0, room - 1)}…`,
        boxes.x[k] + PAD,
        top(boxes.row[k]) + h / 2
      );
    }
  }
  // Outlines: search matches, then the hovered and the selected box.
  if (matched.length) {
    ctx.strokeStyle = theme.match;
    ctx.lineWidth = 1.5;
    for (const k of matched) {
      ctx.strokeRect(
        boxes.x[k] + 0.75,
        top(boxes.row[k]) + 0.75,
        Math.max(boxes.w[k] - 2.5, 0.5),
        h - 2.5
      );
    }
  }
  for (const [node, width] of [
    [p.hovered, 1],
    [p.selected, 2]
  ]) {
    if (node < 0) {
      continue;
    }
    for (let k = 0; k < boxes.count; k++) {
      if (boxes.node[k] === node) {
        ctx.strokeStyle = theme.focus;
        ctx.lineWidth = width;
        ctx.strokeRect(
          boxes.x[k] + width / 2,
          top(boxes.row[k]) + width / 2,
          Math.max(boxes.w[k] - 1 - width, 1),
          h - 1 - width
        );
        break;
      }
    }
  }
}
