/**
 * FlamegraphView: everything around the canvas (plain DOM, no Lumino, so
 * the output renderer and the main-area panel both wrap it): title and
 * totals, a toolbar (flame or icicle, callers view, native frames
 * collapsed or expanded, reset zoom, search by text or regex), the zoom
 * breadcrumb, a legend, a tooltip, keyboard navigation and what screen
 * readers are told. Redraws when JupyterLab's theme changes.
 */
import { FlameChart } from './chart';
import { CELL_LINE_EVENT, requestCellLine } from './events';
import { announce, describe, formatBytes, percent } from './format';
import { neighbour, Orientation } from './layout';
import { IFlameData } from './payload';
import { search } from './search';
import { KINDS, readTheme } from './theme';
import { calleesOf, callersOf, expandRuns, FlameTree } from './tree';
import { plainTrans, Trans } from '../i18n';

export { CELL_LINE_EVENT };

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function kindName(t: Trans, kind: string): string {
  switch (kind) {
    case 'cell':
      return t.__('cell code');
    case 'python':
      return t.__('Python');
    case 'cython':
      return t.__('Cython');
    case 'native':
      return t.__('native');
    case 'other':
      return t.__('merged small frames');
    default:
      return t.__('total');
  }
}

/** "102 MiB live at the peak": the total and what the view counts. */
function totalOf(t: Trans, view: string, bytes: string): string {
  switch (view) {
    case 'peak':
      return t.__('%1 live at the peak', bytes);
    case 'leaks':
      return t.__('%1 still alive at the end', bytes);
    case 'allocated':
      return t.__('%1 allocated in all', bytes);
    default:
      return t.__('%1 (%2)', bytes, view);
  }
}

export interface IViewOptions {
  /** Largest height of a chart, in CSS pixels. */
  maxHeight?: number;
  /** JupyterLab's translation bundle for cyscope (default: English). */
  trans?: Trans;
}

export class FlamegraphView {
  readonly node: HTMLDivElement;

  constructor(
    readonly data: IFlameData,
    options: IViewOptions = {}
  ) {
    this._maxHeight = options.maxHeight;
    this._t = options.trans ?? plainTrans;
    this._collapsed = FlameTree.fromData(data);
    this._tree = this._collapsed;
    this.node = el('div', 'cyscope-Flamegraph');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute(
      'aria-label',
      this._t.__('Flamegraph: %1', data.title)
    );
    this.node.append(
      this._header(),
      this._toolbar(),
      this._breadcrumb,
      this._legend(),
      this._charts,
      this._tooltip,
      this._status
    );
    this._tooltip.setAttribute('role', 'tooltip');
    this._tooltip.hidden = true;
    this._status.setAttribute('aria-live', 'polite');
    this._main = this._chart(this._tree, 'icicle');
    this._mainOnly = [this._main];
    this._showMain();
    // (jsdom, in the unit tests, has no ResizeObserver.)
    this._resize =
      typeof ResizeObserver === 'undefined'
        ? null
        : new ResizeObserver(() => this.render());
    this._resize?.observe(this.node);
    this._themeWatch = new MutationObserver(() => this.refreshTheme());
    this._themeWatch.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light']
    });
  }

  /** The chart of the whole tree (the sandwich view has two more). */
  get chart(): FlameChart {
    return this._main;
  }

  get tree(): FlameTree {
    return this._tree;
  }

  /** Draw every chart shown; returns how many boxes were drawn. */
  render(): number {
    if (!this._themed && this.node.isConnected) {
      this.refreshTheme();
      return this._drawn;
    }
    this._drawn = 0;
    for (const chart of this._shown) {
      this._drawn += chart.render();
    }
    this._updateBreadcrumb();
    return this._drawn;
  }

  /** Read the theme's colours again (JupyterLab switched themes). */
  refreshTheme(): void {
    if (!this.node.isConnected) {
      return;
    }
    this._themed = true;
    const theme = readTheme(this.node);
    for (const chart of this._allCharts()) {
      chart.theme = theme;
    }
    this.render();
  }

  /** Search the frames; returns the share matched (0..1). */
  find(query: string, regex = this._regex.checked): number {
    this._searchInput.value = query;
    this._regex.checked = regex;
    return this._runSearch();
  }

  setOrientation(o: Orientation): void {
    this._main.orientation = o;
    const t = this._t;
    this._orientationButton.textContent =
      o === 'icicle' ? t.__('Icicle') : t.__('Flame');
    this._orientationButton.setAttribute(
      'aria-label',
      o === 'icicle'
        ? t.__('Orientation: icicle, the root on top; switch')
        : t.__('Orientation: flame, the root at the bottom; switch')
    );
    this.render();
  }

  /** Show the callers and callees of the selected frame's function. */
  showCallers(on: boolean): void {
    const node = this._main.selected;
    if (on && node > 0) {
      this._sandwich = [
        this._chart(callersOf(this._tree, node), 'flame'),
        this._chart(calleesOf(this._tree, node), 'icicle')
      ];
      this._charts.replaceChildren(
        el(
          'div',
          'cyscope-Flamegraph-chartTitle',
          this._t.__('Callers of %1', this._tree.label(node))
        ),
        this._sandwich[0].node,
        el(
          'div',
          'cyscope-Flamegraph-chartTitle',
          this._t.__('What %1 calls', this._tree.label(node))
        ),
        this._sandwich[1].node
      );
      this._shown = this._sandwich;
      this._themed = false;
    } else {
      this._showMain();
    }
    this._callersButton.setAttribute(
      'aria-pressed',
      String(this._shown !== this._mainOnly)
    );
    this.render();
    this._runSearch();
  }

  /** Show each collapsed run of native frames frame by frame, or not. */
  expandNative(expand: boolean): void {
    this._tree = expand ? expandRuns(this._collapsed) : this._collapsed;
    this._main.tree = this._tree;
    this._runsButton.textContent = expand
      ? this._t.__('Native frames: all')
      : this._t.__('Native frames: runs');
    this._runsButton.setAttribute('aria-pressed', String(expand));
    this.render();
    this._runSearch();
  }

  dispose(): void {
    this._resize?.disconnect();
    this._themeWatch.disconnect();
    this.node.remove();
  }

  // -- parts ---------------------------------------------------------------

  private _header(): HTMLElement {
    const d = this.data;
    const t = this._t;
    const header = el('div', 'cyscope-Flamegraph-header');
    header.append(el('span', 'cyscope-Flamegraph-title', d.title));
    const bits = [
      totalOf(t, d.view, formatBytes(d.total)),
      d.exact ? t.__('every allocation') : t.__('sampled stacks')
    ];
    if (d.totals && d.totals.peak_bytes !== undefined) {
      bits.push(t.__('peak %1', formatBytes(d.totals.peak_bytes)));
    }
    if (d.compare) {
      bits.push(
        t.__(
          'compared with %1 (%2)',
          d.compare.title,
          formatBytes(d.compare.total)
        )
      );
    }
    if (d.inverted) {
      bits.push(t.__('inverted: allocating frames at the root'));
    }
    header.append(el('span', 'cyscope-Flamegraph-summary', bits.join(' · ')));
    return header;
  }

  private _button(
    label: string,
    title: string,
    action: () => void
  ): HTMLButtonElement {
    const b = el('button', 'cyscope-Flamegraph-button', label);
    b.type = 'button';
    b.title = title;
    b.addEventListener('click', action);
    return b;
  }

  private _toolbar(): HTMLElement {
    const bar = el('div', 'cyscope-Flamegraph-toolbar');
    bar.setAttribute('role', 'toolbar');
    const t = this._t;
    bar.setAttribute('aria-label', t.__('Flamegraph tools'));
    this._orientationButton = this._button(
      t.__('Icicle'),
      t.__('Root on top (icicle) or at the bottom (flame)'),
      () =>
        this.setOrientation(
          this._main.orientation === 'icicle' ? 'flame' : 'icicle'
        )
    );
    this._callersButton = this._button(
      t.__('Callers'),
      t.__(
        'Who calls the selected function, and what it calls (sandwich view)'
      ),
      () => this.showCallers(this._shown === this._mainOnly)
    );
    this._callersButton.setAttribute('aria-pressed', 'false');
    this._runsButton = this._button(
      t.__('Native frames: runs'),
      t.__(
        'Runs of native frames of one library are one box; show every frame'
      ),
      () => this.expandNative(this._tree === this._collapsed)
    );
    this._runsButton.setAttribute('aria-pressed', 'false');
    this._runsButton.hidden = this.data.frames.runs.size === 0;
    const reset = this._button(
      t.__('Reset zoom'),
      t.__('Show the whole graph (Esc zooms out one level)'),
      () => this._main.zoom(0)
    );
    this._searchInput = el('input', 'cyscope-Flamegraph-search');
    this._searchInput.type = 'search';
    this._searchInput.placeholder = t.__('Search frames (/)');
    this._searchInput.setAttribute('aria-label', t.__('Search frames by name'));
    this._searchInput.addEventListener('input', () => this._runSearch());
    this._searchInput.addEventListener('keydown', e => {
      if (e.key === 'Escape') {
        this.find('');
        this._main.canvas.focus();
      } else if (e.key === 'Enter') {
        this._main.canvas.focus();
      }
      e.stopPropagation();
    });
    const regexLabel = el('label', 'cyscope-Flamegraph-regex');
    this._regex = el('input', '');
    this._regex.type = 'checkbox';
    this._regex.addEventListener('change', () => this._runSearch());
    regexLabel.append(this._regex, document.createTextNode(t.__('regex')));
    regexLabel.title = t.__('Search with a regular expression');
    this._searchResult.setAttribute('aria-live', 'polite');
    bar.append(
      this._orientationButton,
      this._callersButton,
      this._runsButton,
      reset,
      this._searchInput,
      regexLabel,
      this._searchResult
    );
    return bar;
  }

  private _legend(): HTMLElement {
    const legend = el('div', 'cyscope-Flamegraph-legend');
    const t = this._t;
    legend.setAttribute('aria-label', t.__('Colours'));
    if (this.data.nodes.base) {
      for (const [cls, text] of [
        ['grow', t.__('grew')],
        ['shrink', t.__('shrank')],
        ['same', t.__('unchanged')]
      ]) {
        const item = el(
          'span',
          `cyscope-Flamegraph-legendItem cyscope-mod-${cls}`
        );
        item.append(
          el('span', 'cyscope-Flamegraph-swatch'),
          document.createTextNode(text)
        );
        legend.append(item);
      }
      return legend;
    }
    const present = new Set(this.data.frames.kind);
    for (const kind of KINDS) {
      if (kind === 'root' || !present.has(kind)) {
        continue;
      }
      const item = el(
        'span',
        `cyscope-Flamegraph-legendItem cyscope-mod-${kind}`
      );
      item.append(
        el('span', 'cyscope-Flamegraph-swatch'),
        document.createTextNode(kindName(t, kind))
      );
      legend.append(item);
    }
    return legend;
  }

  private _chart(tree: FlameTree, orientation: Orientation): FlameChart {
    const chart: FlameChart = new FlameChart(
      tree,
      {
        activate: node => this._activate(chart, node),
        hover: (node, event) => this._hover(chart, node, event),
        changed: () => this._changed(chart)
      },
      { orientation, maxHeight: this._maxHeight }
    );
    const canvas = chart.canvas;
    canvas.tabIndex = 0;
    canvas.setAttribute('role', 'application');
    canvas.setAttribute('aria-roledescription', this._t.__('flamegraph'));
    canvas.setAttribute(
      'aria-label',
      this._t.__(
        "%1. Arrow keys move between frames, Enter zooms in (and goes to a cell's line), Escape zooms out, slash searches.",
        tree.rootLabel
      )
    );
    canvas.addEventListener('keydown', e => this._onKey(chart, e));
    return chart;
  }

  private _showMain(): void {
    this._charts.replaceChildren(this._main.node);
    this._shown = this._mainOnly;
    this._sandwich = [];
  }

  private _allCharts(): FlameChart[] {
    return [this._main, ...this._sandwich];
  }

  private _activate(chart: FlameChart, node: number): void {
    const tree = chart.tree;
    const cell = tree.cell(node);
    const line = tree.line(node);
    if (cell > 0 && line > 0) {
      requestCellLine(this.node, {
        cell,
        cellId: this.data.cellIds.get(cell) ?? null,
        line
      });
    }
  }

  private _hover(
    chart: FlameChart,
    node: number,
    event: MouseEvent | null
  ): void {
    const tip = this._tooltip;
    if (node < 0 || !event) {
      tip.hidden = true;
      return;
    }
    const lines = describe(chart.tree, node, this._t);
    tip.replaceChildren(
      el('div', 'cyscope-Flamegraph-tipTitle', lines[0]),
      ...lines.slice(1).map(l => el('div', '', l))
    );
    tip.hidden = false;
    // Beside the pointer, inside the view (outputs clip what overflows).
    const box = this.node.getBoundingClientRect();
    const x = event.clientX - box.left + 12;
    const below = event.clientY - box.top + 14;
    const above = event.clientY - box.top - 8 - tip.offsetHeight;
    tip.style.left = `${Math.max(0, Math.min(x, box.width - tip.offsetWidth - 4))}px`;
    tip.style.top = `${below + tip.offsetHeight <= box.height || above < 0 ? below : above}px`;
  }

  private _changed(chart: FlameChart): void {
    if (chart === this._main) {
      this._updateBreadcrumb();
      this._callersButton.disabled = chart.selected === 0;
    }
    this._status.textContent = announce(chart.tree, chart.selected, this._t);
  }

  private _onKey(chart: FlameChart, e: KeyboardEvent): void {
    const t = chart.tree;
    const icicle = chart.orientation === 'icicle';
    const moves: Record<string, 'parent' | 'child' | 'previous' | 'next'> = {
      ArrowUp: icicle ? 'parent' : 'child',
      ArrowDown: icicle ? 'child' : 'parent',
      ArrowLeft: 'previous',
      ArrowRight: 'next'
    };
    if (e.key in moves) {
      chart.select(neighbour(t, chart.selected, moves[e.key]));
    } else if (e.key === 'Enter') {
      chart.zoom(chart.selected);
      this._activate(chart, chart.selected);
    } else if (e.key === 'Escape') {
      if (chart.focus > 0) {
        chart.zoom(t.parent[chart.focus]);
      } else if (this._searchInput.value) {
        this.find('');
      } else {
        return;
      }
    } else if (e.key === '/') {
      this._searchInput.focus();
    } else if (e.key === 'Home') {
      chart.zoom(0);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }

  private _updateBreadcrumb(): void {
    const chart = this._main;
    const path = chart.tree.path(chart.focus);
    const crumbs = this._breadcrumb;
    crumbs.replaceChildren();
    crumbs.hidden = path.length < 2 || this._shown !== this._mainOnly;
    path.forEach((node, k) => {
      if (k > 0) {
        crumbs.append(el('span', 'cyscope-Flamegraph-crumbSep', '›'));
      }
      const b = this._button(
        k === 0 ? this._t.__('all') : chart.tree.label(node),
        this._t.__('Zoom to %1', chart.tree.label(node)),
        () => chart.zoom(node)
      );
      if (k === path.length - 1) {
        b.setAttribute('aria-current', 'true');
      }
      crumbs.append(b);
    });
  }

  private _runSearch(): number {
    const query = this._searchInput.value;
    const regex = this._regex.checked;
    const t = this._t;
    let share = 0;
    let text = '';
    let failed = false;
    for (const chart of this._allCharts()) {
      const result = query ? search(chart.tree, query, { regex }) : null;
      chart.search = result;
      if (
        chart ===
        (this._shown === this._mainOnly ? this._main : this._sandwich[1])
      ) {
        if (result?.error) {
          failed = true;
          text = t.__('not a regular expression: %1', result.error);
        } else if (result) {
          share = result.share;
          text = result.nodes
            ? t._n(
                '%4 frame · %2 (%3)',
                '%4 frames · %2 (%3)',
                result.nodes,
                percent(result.value, chart.tree.value[0]),
                formatBytes(result.value),
                result.nodes.toLocaleString('en-US')
              )
            : t.__('no match');
        }
      }
    }
    this._searchResult.textContent = text;
    this._searchResult.classList.toggle('cyscope-mod-error', failed);
    return share;
  }

  private _maxHeight: number | undefined;
  private _t: Trans;
  private _collapsed: FlameTree;
  private _tree: FlameTree;
  private _main: FlameChart;
  private _sandwich: FlameChart[] = [];
  private _mainOnly: FlameChart[];
  private _shown: FlameChart[] = [];
  private _themed = false;
  private _drawn = 0;
  private _resize: ResizeObserver | null;
  private _themeWatch: MutationObserver;
  private _charts = el('div', 'cyscope-Flamegraph-charts');
  private _breadcrumb = el('nav', 'cyscope-Flamegraph-breadcrumb');
  private _tooltip = el('div', 'cyscope-Flamegraph-tooltip');
  private _status = el('div', 'cyscope-Flamegraph-status');
  private _searchResult = el('span', 'cyscope-Flamegraph-searchResult');
  private _searchInput!: HTMLInputElement;
  private _regex!: HTMLInputElement;
  private _orientationButton!: HTMLButtonElement;
  private _callersButton!: HTMLButtonElement;
  private _runsButton!: HTMLButtonElement;
}
