// Benchmark: cyscope's flamegraph renderer beside d3-flame-graph (the renderer
// memray embeds) on the same data, in Debian's headless Chromium.
//
// Run: npm run bench:flamegraph [-- --reps 5 --sizes 1000,10000,100000]
//
// For each size, one synthetic byte-valued call tree (deterministic, depth up
// to 40, 2,000 distinct function names) is drawn by both, 1,200 px wide:
//   first render  payload in hand -> boxes on screen (cyscope: read and check
//                 the payload, build the tree, lay out, paint; d3: build its
//                 hierarchy, partition, create the SVG)
//   zoom          click-zoom to a node two levels down holding about a third
//   search        highlight every frame matching "func_12" and sum its share
// Each time runs until the next frame has been produced (requestAnimationFrame,
// then a task), so the browser's own style, layout and paint work is counted
// for both; d3-flame-graph's transitions are off (its default animation would
// only add waiting). Median of --reps runs, each on a fresh page element and a
// freshly collected heap (Chromium runs with --expose-gc). The
// page is served from memory through Playwright's request routing: nothing
// listens, nothing is fetched from the network.
import { chromium } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ORIGIN = 'http://bench.cyscope.invalid';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const REPS = Number(option('reps', '5'));
const SIZES = option('sizes', '1000,10000,100000').split(',').map(Number);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/d3-flame-graph/dist/d3-flamegraph.css">
<link rel="stylesheet" href="/style/flamegraph.css">
<script src="/node_modules/d3/dist/d3.min.js"></script>
<script src="/node_modules/d3-flame-graph/dist/d3-flamegraph.umd.min.js"></script>
<style>body { margin: 0; font: 12px sans-serif; } .host { width: 1200px; }</style>
</head><body><div id="host" class="host"></div>
<script type="module">
import { parseFlamegraph } from '/lib/flamegraph/payload';
import { FlamegraphView } from '/lib/flamegraph/view';
window.cyscope = { parseFlamegraph, FlamegraphView };
window.ready = true;
</script></body></html>`;

const TYPES = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.html': 'text/html'
};

/** Files of the checkout; an import without an extension is a .js of lib/. */
function serve(route) {
  const url = new URL(route.request().url());
  if (url.pathname === '/') {
    return route.fulfill({ body: PAGE, contentType: 'text/html' });
  }
  let file = path.join(ROOT, decodeURIComponent(url.pathname));
  if (!path.extname(file)) {
    file += '.js';
  }
  if (!file.startsWith(ROOT) || !fs.existsSync(file)) {
    return route.fulfill({ status: 404, body: `not found: ${url.pathname}` });
  }
  return route.fulfill({
    body: fs.readFileSync(file),
    contentType: TYPES[path.extname(file)] ?? 'application/octet-stream'
  });
}

// Runs in the page: build the data, time both renderers.
async function measure({ size, reps }) {
  const nextFrame = () =>
    new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // [work, to the next frame]: work is the script plus the style and layout
  // it causes (forced by reading a layout figure); the second also counts
  // painting, and waiting for the frame.
  async function timed(fn) {
    // Start each run on a collected heap: the other renderer's garbage is
    // not this one's cost.
    window.gc?.();
    await nextFrame();
    const start = performance.now();
    fn();
    void document.body.offsetHeight;
    const work = performance.now() - start;
    await nextFrame();
    return [work, performance.now() - start];
  }

  // A deterministic call tree: each node hangs under the previous one (deeper)
  // or under an earlier node; leaves carry bytes.
  let seed = 42;
  const random = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const nodes = [{ name: 'cell [3] · peak', children: [], depth: 0, self: 0 }];
  for (let i = 1; i < size; i++) {
    const prev = nodes[i - 1];
    const parent =
      random() < 0.6 && prev.depth < 40
        ? prev
        : nodes[Math.floor(random() * i)];
    const node = {
      name: `func_${Math.floor(random() * 2000)} · cell [3] line ${1 + Math.floor(random() * 300)}`,
      children: [],
      depth: parent.depth + 1,
      self: 0
    };
    parent.children.push(node);
    nodes.push(node);
  }
  for (const n of nodes) {
    if (n.children.length === 0 || random() < 0.2) {
      n.self = Math.floor(1000 + random() ** 4 * 10_000_000);
    }
  }
  const total = n =>
    (n.value = n.self + n.children.reduce((s, c) => s + total(c), 0));
  total(nodes[0]);
  for (const n of nodes) {
    n.children.sort((a, b) => b.value - a.value);
  }
  // The cyscope payload of the same tree (depth-first, largest child first).
  const strings = [''];
  const index = new Map();
  const str = s => {
    if (!index.has(s)) {
      index.set(s, strings.length);
      strings.push(s);
    }
    return index.get(s);
  };
  const frames = {
    label: [],
    name: [],
    file: [],
    kind: [],
    cell: [],
    line: []
  };
  const frameOf = new Map();
  const columns = { level: [], value: [], self: [], count: [], frame: [] };
  const order = [];
  const walk = (n, level) => {
    order.push(n);
    if (!frameOf.has(n.name)) {
      frameOf.set(n.name, frames.label.length);
      frames.label.push(str(n.name));
      frames.name.push(str(n.name.split(' · ')[0]));
      frames.file.push(0);
      frames.kind.push(level === 0 ? 0 : 2);
      frames.cell.push(level === 0 ? 0 : 3);
      frames.line.push(level === 0 ? 0 : Number(n.name.split('line ')[1]));
    }
    columns.level.push(level);
    columns.value.push(n.value);
    columns.self.push(n.self);
    columns.count.push(1);
    columns.frame.push(frameOf.get(n.name));
    n.children.forEach(c => walk(c, level + 1));
  };
  walk(nodes[0], 0);
  // count must cover the children: make it the number of nodes below.
  for (let i = order.length - 1; i >= 0; i--) {
    order[i].count = 1 + order[i].children.reduce((s, c) => s + c.count, 0);
  }
  columns.count = order.map(n => n.count);
  const payload = {
    v: 1,
    title: 'cell [3] · peak',
    view: 'peak',
    unit: 'bytes',
    total: nodes[0].value,
    strings,
    kinds: ['root', 'cell', 'python', 'cython', 'native', 'other'],
    frames,
    nodes: columns
  };
  const d3data = (function toD3(n) {
    n.d3 = { name: n.name, value: n.value, children: n.children.map(toD3) };
    return n.d3;
  })(nodes[0]);
  // The zoom target: two levels down, the child holding most of its parent.
  const target = nodes[0].children[0].children[0] ?? nodes[0].children[0];
  const targetIndex = order.indexOf(target);
  const host = document.getElementById('host');

  const cyscope = { render: [], zoom: [], search: [], boxes: 0 };
  const d3flame = { render: [], zoom: [], search: [], elements: 0 };
  for (let r = 0; r < reps; r++) {
    // cyscope
    host.replaceChildren();
    let view;
    cyscope.render.push(
      await timed(() => {
        const parsed = window.cyscope.parseFlamegraph(payload);
        if (!parsed.ok) {
          throw new Error(parsed.error);
        }
        view = new window.cyscope.FlamegraphView(parsed.value);
        host.appendChild(view.node);
        cyscope.boxes = view.render();
      })
    );
    cyscope.zoom.push(await timed(() => view.chart.zoom(targetIndex)));
    view.chart.zoom(0);
    await nextFrame();
    let share = 0;
    cyscope.search.push(await timed(() => (share = view.find('func_12'))));
    cyscope.share = share;
    view.dispose();

    // d3-flame-graph, as memray configures it (2 px minimum), no transitions
    host.replaceChildren();
    const div = document.createElement('div');
    host.appendChild(div);
    const chart = flamegraph
      .default()
      .width(1200)
      .cellHeight(18)
      .minFrameSize(2)
      .transitionDuration(0)
      .sort(false);
    d3flame.render.push(
      await timed(() => d3.select(div).datum(d3data).call(chart))
    );
    d3flame.elements = div.getElementsByTagName('*').length;
    const root = d3.select(div).datum();
    const d = root.descendants().find(x => x.data === target.d3);
    d3flame.zoom.push(await timed(() => chart.zoomTo(d)));
    chart.resetZoom();
    await nextFrame();
    d3flame.search.push(await timed(() => chart.search('func_12')));
    chart.destroy?.();
  }
  const both = xs => [median(xs.map(x => x[0])), median(xs.map(x => x[1]))];
  return {
    size,
    nodes: order.length,
    cyscope: {
      render: both(cyscope.render),
      zoom: both(cyscope.zoom),
      search: both(cyscope.search),
      boxes: cyscope.boxes,
      share: cyscope.share
    },
    d3: {
      render: both(d3flame.render),
      zoom: both(d3flame.zoom),
      search: both(d3flame.search),
      elements: d3flame.elements
    }
  };
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--js-flags=--expose-gc'
  ]
});
try {
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 }
  });
  await page.route(`${ORIGIN}/**`, serve);
  page.on('pageerror', error => console.error(`page error: ${error}`));
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => window.ready === true);
  const version = browser.version();
  const rows = [];
  for (const size of SIZES) {
    rows.push(await page.evaluate(measure, { size, reps: REPS }));
  }
  const ms = x => `${x < 10 ? x.toFixed(1) : x.toFixed(0)} ms`;
  const ratio = (a, b) => `${(b / a).toFixed(0)}x`;
  console.log(
    `Chromium ${version} (headless, software rendering), 1200 px wide, median of ${REPS}`
  );
  for (const [which, title] of [
    [0, 'Work: the script and the style and layout it causes'],
    [
      1,
      'Until the next frame is painted (also counts painting and the wait for the frame)'
    ]
  ]) {
    console.log('');
    console.log(`${title}:`);
    console.log('');
    console.log(
      '| nodes | cyscope first render | zoom | search | d3-flame-graph first render | zoom | search | cyscope faster (render / zoom / search) |'
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      const c = r.cyscope;
      const d = r.d3;
      console.log(
        `| ${r.nodes.toLocaleString('en-US')} | ${ms(c.render[which])} | ${ms(c.zoom[which])} | ${ms(c.search[which])} ` +
          `| ${ms(d.render[which])} | ${ms(d.zoom[which])} | ${ms(d.search[which])} ` +
          `| ${ratio(c.render[which], d.render[which])} / ${ratio(c.zoom[which], d.zoom[which])} / ${ratio(c.search[which], d.search[which])} |`
      );
    }
  }
  console.log('');
  for (const r of rows) {
    console.log(
      `${r.nodes.toLocaleString('en-US')} nodes: cyscope drew ${r.cyscope.boxes} boxes (search share ${(100 * r.cyscope.share).toFixed(1)}%); d3-flame-graph kept ${r.d3.elements} SVG elements`
    );
  }
  const goals = rows.find(r => r.nodes >= 100000);
  if (goals) {
    const ok = (x, limit) => (x < limit ? 'met' : 'MISSED');
    console.log('');
    const c = goals.cyscope;
    console.log(
      `goals at ${goals.nodes.toLocaleString('en-US')} nodes (work): render < 100 ms ${ok(c.render[0], 100)}, ` +
        `zoom < 16 ms ${ok(c.zoom[0], 16)}, search < 50 ms ${ok(c.search[0], 50)}`
    );
  }
} finally {
  await browser.close();
}
