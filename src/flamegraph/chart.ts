/**
 * FlameChart: one FlameTree drawn on a canvas, sharp on HiDPI screens,
 * scrolled vertically when it is deeper than its height, with zoom,
 * selection and hover state. Plain DOM (no Lumino) so the benchmark page
 * drives exactly what the notebook shows; layout and painting are the pure
 * functions of ./layout and ./draw.
 */
import { paint } from './draw';
import {
  boxAt,
  emptyBoxes,
  IBoxes,
  IViewport,
  layout,
  Orientation
} from './layout';
import { ISearchResult } from './search';
import { FALLBACK_THEME, ITheme } from './theme';
import { FlameTree } from './tree';

export interface IChartHandlers {
  /** A box was clicked (or Enter pressed on the selection). */
  activate?(node: number): void;
  /** The pointer moved over a box (-1: over none). */
  hover?(node: number, event: MouseEvent | null): void;
  /** Zoom or selection changed. */
  changed?(): void;
}

export const ROW_HEIGHT = 18;
/** Boxes narrower than one device pixel are not drawn (nor their subtrees). */
export const MIN_BOX_DEVICE_PX = 1;

export class FlameChart {
  /** The scrolling element to put in the page. */
  readonly node: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;

  constructor(
    private _tree: FlameTree,
    private _handlers: IChartHandlers = {},
    options: { orientation?: Orientation; maxHeight?: number } = {}
  ) {
    this._orientation = options.orientation ?? 'icicle';
    this._maxHeight = options.maxHeight ?? 30 * ROW_HEIGHT;
    this.node = document.createElement('div');
    this.node.className = 'cyscope-FlameChart';
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'cyscope-FlameChart-canvas';
    this._spacer = document.createElement('div');
    this._spacer.className = 'cyscope-FlameChart-spacer';
    this.node.append(this.canvas, this._spacer);
    this.node.addEventListener('scroll', () => this.render());
    this.canvas.addEventListener('mousemove', e => this._onMove(e));
    this.canvas.addEventListener('mouseleave', () => this._setHover(-1, null));
    this.canvas.addEventListener('click', e => this._onClick(e));
  }

  get tree(): FlameTree {
    return this._tree;
  }

  set tree(tree: FlameTree) {
    this._tree = tree;
    this._focus = 0;
    this._selected = -1;
    this._hovered = -1;
    this._search = null;
    this._scrollToRoot = true;
  }

  get focus(): number {
    return this._focus;
  }

  /** The node the keyboard is on (the zoomed one until one is chosen). */
  get selected(): number {
    return this._selected < 0 ? this._focus : this._selected;
  }

  get orientation(): Orientation {
    return this._orientation;
  }

  set orientation(o: Orientation) {
    if (o !== this._orientation) {
      this._orientation = o;
      this._scrollToRoot = true;
      this.render();
    }
  }

  set theme(theme: ITheme) {
    this._theme = theme;
    this.render();
  }

  set search(result: ISearchResult | null) {
    this._search = result;
    this.render();
  }

  get boxes(): IBoxes {
    return this._boxes;
  }

  get viewport(): IViewport {
    return this._view;
  }

  /** Zoom so that `node` spans the width (the root: no zoom). */
  zoom(node: number): void {
    this._focus = Math.max(0, Math.min(node, this._tree.size - 1));
    this._selected = this._focus;
    this.render();
    this._handlers.changed?.();
  }

  /** Select a node (keyboard), showing it: zoom out if it is off screen. */
  select(node: number): void {
    const t = this._tree;
    const inside = node >= this._focus && node < t.end[this._focus];
    if (!inside && !t.path(this._focus).includes(node)) {
      this._focus = t.parent[node] >= 0 ? t.parent[node] : 0;
    }
    this._selected = node;
    this._ensureRowVisible(t.level[node]);
    this.render();
    this._handlers.changed?.();
  }

  /** Lay out and paint what is visible now; returns the box count. */
  render(): number {
    const width = Math.max(this.node.clientWidth, 1);
    const rows = this._tree.maxLevel + 1;
    const full = rows * ROW_HEIGHT;
    const height = Math.min(full, this._maxHeight);
    this._spacer.style.height = `${full - height}px`;
    if (this._scrollToRoot) {
      this._scrollToRoot = false;
      this.node.scrollTop =
        this._orientation === 'icicle' ? 0 : Math.max(full - height, 0);
    }
    const scrolledRows = Math.floor(this.node.scrollTop / ROW_HEIGHT);
    const maxFirst = Math.max(0, rows - Math.floor(height / ROW_HEIGHT));
    const firstRow =
      this._orientation === 'icicle'
        ? Math.min(scrolledRows, maxFirst)
        : Math.max(0, maxFirst - scrolledRows);
    const dpr = window.devicePixelRatio || 1;
    this._view = {
      width,
      height,
      rowHeight: ROW_HEIGHT,
      focus: this._focus,
      orientation: this._orientation,
      firstRow,
      minWidth: MIN_BOX_DEVICE_PX / dpr
    };
    const pixelWidth = Math.round(width * dpr);
    const pixelHeight = Math.round(height * dpr);
    if (
      this.canvas.width !== pixelWidth ||
      this.canvas.height !== pixelHeight
    ) {
      this.canvas.width = pixelWidth;
      this.canvas.height = pixelHeight;
    }
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    layout(this._tree, this._view, this._boxes);
    const ctx = this.canvas.getContext('2d');
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      paint(ctx, {
        tree: this._tree,
        boxes: this._boxes,
        view: this._view,
        theme: this._theme,
        search: this._search,
        selected: this._selected,
        hovered: this._hovered
      });
    }
    return this._boxes.count;
  }

  /** The node under a point of the page, or -1. */
  nodeAt(clientX: number, clientY: number): number {
    const r = this.canvas.getBoundingClientRect();
    const k = boxAt(this._boxes, this._view, clientX - r.left, clientY - r.top);
    return k < 0 ? -1 : this._boxes.node[k];
  }

  private _ensureRowVisible(row: number): void {
    const v = this._view;
    const visible = Math.floor(v.height / ROW_HEIGHT);
    if (row >= v.firstRow && row < v.firstRow + visible) {
      return;
    }
    const first = Math.max(0, row - Math.floor(visible / 2));
    const full = (this._tree.maxLevel + 1) * ROW_HEIGHT;
    this.node.scrollTop =
      this._orientation === 'icicle'
        ? first * ROW_HEIGHT
        : Math.max(full - v.height - first * ROW_HEIGHT, 0);
  }

  private _onMove(event: MouseEvent): void {
    this._setHover(this.nodeAt(event.clientX, event.clientY), event);
  }

  private _setHover(node: number, event: MouseEvent | null): void {
    if (node !== this._hovered) {
      this._hovered = node;
      this.render();
    }
    this._handlers.hover?.(node, event);
  }

  private _onClick(event: MouseEvent): void {
    const node = this.nodeAt(event.clientX, event.clientY);
    if (node >= 0) {
      this.zoom(node);
      this._handlers.activate?.(node);
    }
  }

  private _orientation: Orientation;
  private _maxHeight: number;
  private _spacer: HTMLDivElement;
  private _focus = 0;
  private _selected = -1; // none yet: nothing outlined
  private _hovered = -1;
  private _search: ISearchResult | null = null;
  private _theme: ITheme = FALLBACK_THEME;
  private _boxes: IBoxes = emptyBoxes();
  private _scrollToRoot = true;
  private _view: IViewport = {
    width: 1,
    height: 1,
    rowHeight: ROW_HEIGHT,
    focus: 0,
    orientation: 'icicle',
    firstRow: 0,
    minWidth: MIN_BOX_DEVICE_PX
  };
}
