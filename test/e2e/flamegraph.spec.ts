/**
 * End to end: inline flamegraphs in a real JupyterLab 4.6, real kernel and
 * compiler, Debian's Chromium. A %%cython function allocates 100 MB; under
 * %%memory the widest frame below the cell is the allocating cell line;
 * clicking it puts the cursor on that line; search finds it; the memory
 * panel's row action opens the same cell's flamegraph without running it
 * again; after a reload the saved output draws again.
 */
import { Locator, Page } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import {
  expect,
  notebookJson,
  openMemoryPanel,
  openNotebook,
  runCell,
  saveShot,
  test
} from './fixtures';

const MIME = 'application/vnd.cyscope.flamegraph.v1+json';
const ROW = 18; // src/flamegraph/chart.ts ROW_HEIGHT

// Line 6 (the %%cython line is line 1) allocates 100 blocks of 1 MB.
const GROW = `%%cython
cdef list kept = []

def grow(int n):
    for _ in range(n):
        kept.append(bytearray(1_000_000))
    return len(kept)`;
const GROW_LINE = 6;

// A Python helper in a cell of its own: its frames name that cell.
const TABLE = `def table(n):
    return [bytearray(20_000) for _ in range(n)]`;

const MEASURE = `%%memory
small = [bytearray(50_000) for _ in range(20)]
rows = table(300)
total = grow(100)
total`;

async function openFresh(
  page: Page,
  server: { rootDir: string } & Parameters<typeof openNotebook>[1],
  name: string
): Promise<void> {
  fs.writeFileSync(
    path.join(server.rootDir, name),
    notebookJson('python3', 'Python 3 (ipykernel)')
  );
  await openNotebook(page, server, name);
}

/** The flamegraph in the output of the notebook's cell [n]. */
function flamegraphOf(page: Page, index: number): Locator {
  return page
    .locator('.jp-NotebookPanel:visible .jp-CodeCell')
    .nth(index)
    .locator('.jp-OutputArea .cyscope-Flamegraph');
}

/** The payload in the outputs of the notebook's cell at `index`. */
async function payloadOf(page: Page, index: number): Promise<any> {
  return page.evaluate(
    ([i, mime]) => {
      const nb = (window as any).jupyterapp.shell.currentWidget.content;
      const outputs = nb.widgets[i].model.outputs.toJSON();
      const found = outputs.find((o: any) => o.data && o.data[mime]);
      return found ? found.data[mime] : null;
    },
    [index, MIME] as const
  );
}

/** Labels from the root's widest child down, always the widest child. */
function widestPath(data: any): string[] {
  const { level, value, frame } = data.nodes;
  const label = (i: number) => data.strings[data.frames.label[frame[i]]];
  const out: string[] = [];
  let node = 0;
  for (;;) {
    let best = -1;
    for (let i = node + 1; i < level.length && level[i] > level[node]; i++) {
      if (
        level[i] === level[node] + 1 &&
        (best < 0 || value[i] > value[best])
      ) {
        best = i;
      }
    }
    if (best < 0) {
      return out;
    }
    out.push(label(best));
    node = best;
  }
}

async function cursor(page: Page): Promise<{ cell: number; line: number }> {
  return page.evaluate(() => {
    const app = (window as any).jupyterapp;
    const panel = [...app.shell.widgets('main')].find(
      (w: any) => w.context?.path === 'flamegraph.ipynb'
    );
    const nb = panel.content;
    const pos = nb.activeCell.editor.getCursorPosition();
    return { cell: nb.activeCellIndex, line: pos.line + 1 };
  });
}

async function setTheme(page: Page, theme: string): Promise<void> {
  await page.evaluate(
    name =>
      (window as any).jupyterapp.commands.execute('apputils:change-theme', {
        theme: name
      }),
    theme
  );
  await page.waitForFunction(
    name => document.body.dataset.jpThemeName === name,
    theme
  );
}

/** Text of a file the page downloads when `click` runs. */
async function downloaded(
  page: Page,
  click: () => Promise<void>
): Promise<[string, string]> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    click()
  ]);
  const file = await download.path();
  return [download.suggestedFilename(), fs.readFileSync(file!, 'utf8')];
}

test('a %%memory flamegraph: widest frame, click to the line, search, panel action, exports, reload', async ({
  page,
  server,
  consoleErrors
}) => {
  await openFresh(page, server, 'flamegraph.ipynb');
  const build = await runCell(page, GROW);
  await runCell(page, TABLE);
  const measured = await runCell(page, MEASURE);
  const chart = flamegraphOf(page, 2);
  await expect(chart).toBeVisible();
  await expect(chart.locator('.cyscope-Flamegraph-title')).toHaveText(
    `cell [${measured}] · peak`
  );

  // The widest frame below the cell's own line is grow's allocating line.
  const data = await payloadOf(page, 2);
  expect(widestPath(data)).toEqual([
    `cell [${measured}] line 4`,
    `grow · cell [${build}] line ${GROW_LINE}`
  ]);
  expect(data.nodes.value[0]).toBeGreaterThanOrEqual(100_000_000);
  // The text and HTML forms ride along for other frontends.
  const bundle = await page.evaluate(() => {
    const nb = (window as any).jupyterapp.shell.currentWidget.content;
    return nb.widgets[2].model.outputs
      .toJSON()
      .find((o: any) => o.data && o.data['text/html']).data;
  });
  expect(bundle['text/html']).toContain('<svg');
  expect(bundle['text/html']).not.toContain('<script');

  // Hover the leftmost box of row 2 (icicle: the root is row 0).
  const canvas = chart.locator('canvas');
  await canvas.hover({ position: { x: 5, y: 2 * ROW + ROW / 2 } });
  const tooltip = chart.locator('.cyscope-Flamegraph-tooltip');
  await expect(tooltip).toBeVisible();
  await expect(tooltip).toContainText(
    `grow · cell [${build}] line ${GROW_LINE}`
  );
  await expect(tooltip).toContainText('of the total');
  // For the docs: the tooltip of the Python helper's line, at the right.
  const width = (await canvas.boundingBox())!.width;
  await canvas.hover({ position: { x: width * 0.97, y: 2 * ROW + ROW / 2 } });
  await expect(tooltip).toContainText('table · cell [');
  saveShot('flamegraph-light.png', await chart.screenshot());

  // Search finds it, with its share of the total.
  const search = chart.locator('.cyscope-Flamegraph-search');
  await search.fill('grow');
  await expect(chart.locator('.cyscope-Flamegraph-searchResult')).toHaveText(
    /^1 frame · (9\d|100)\.\d% \(9\d(\.\d)? MiB\)$/
  );
  await search.fill('');

  // Clicking it zooms, and selects the %%cython cell with the cursor on line 6.
  await canvas.click({ position: { x: 5, y: 2 * ROW + ROW / 2 } });
  await expect.poll(() => cursor(page)).toEqual({ cell: 0, line: GROW_LINE });
  await expect(
    chart.locator('.cyscope-Flamegraph-breadcrumb [aria-current="true"]')
  ).toHaveText(`grow · cell [${build}] line ${GROW_LINE}`);

  // Dark theme: the canvas is drawn again in the theme's colours.
  const before = await canvas.screenshot();
  await setTheme(page, 'JupyterLab Dark');
  await expect
    .poll(async () => (await canvas.screenshot()).equals(before))
    .toBe(false);
  await chart.locator('.cyscope-Flamegraph-breadcrumb button').first().click();
  await search.fill('table');
  await expect(chart.locator('.cyscope-Flamegraph-searchResult')).toContainText(
    'frame'
  );
  await page.mouse.move(0, 0);
  saveShot('flamegraph-dark.png', await chart.screenshot());
  await search.fill('');
  await setTheme(page, 'JupyterLab Light');

  // The memory panel's row action opens the same cell's flamegraph beside
  // the notebook, from the kernel's history: nothing runs again.
  await openMemoryPanel(page);
  const row = page.locator(
    `#cyscope-memory-panel tr[data-execution-count="${measured}"]`
  );
  await expect(row).toBeVisible();
  const rowsBefore = await page
    .locator('#cyscope-memory-panel tr[data-execution-count]')
    .count();
  await row.locator('button[data-action="flamegraph"]').click();
  const panel = page.locator('.cyscope-FlamegraphPanel');
  await expect(panel.locator('.cyscope-Flamegraph-title')).toHaveText(
    `cell [${measured}] · peak`
  );
  await expect(
    page.locator('.lm-TabBar-tab', {
      hasText: `Flamegraph · cell [${measured}]`
    })
  ).toBeVisible();
  await panel
    .locator('canvas')
    .hover({ position: { x: 5, y: 2 * ROW + ROW / 2 } });
  await expect(panel.locator('.cyscope-Flamegraph-tooltip')).toContainText(
    `grow · cell [${build}] line ${GROW_LINE}`
  );
  saveShot('flamegraph-panel.png', await page.screenshot());
  await panel.locator('[role="tab"]', { hasText: 'Leaks' }).click();
  await expect(panel.locator('.cyscope-Flamegraph-title')).toHaveText(
    `cell [${measured}] · leaks`
  );
  await page.waitForTimeout(500);
  expect(
    await page.locator('#cyscope-memory-panel tr[data-execution-count]').count()
  ).toBe(rowsBefore);
  // A cell frame clicked there goes to the notebook's cell line too.
  await panel
    .locator('canvas')
    .click({ position: { x: 5, y: 2 * ROW + ROW / 2 } });
  await expect.poll(() => cursor(page)).toEqual({ cell: 0, line: GROW_LINE });

  // Exports from the panel's toolbar.
  const toolbar = page.locator('#cyscope-memory-panel');
  // JupyterLab's toolbar buttons are <jp-button>s named by their label.
  const exportButton = (label: string) =>
    toolbar.locator(`.jp-ToolbarButtonComponent[aria-label="${label}"]`);
  const [csvName, csv] = await downloaded(page, () =>
    exportButton('CSV').click()
  );
  expect(csvName).toMatch(/^flamegraph-cells-.*\.csv$/);
  expect(csv.split('\r\n')[0]).toMatch(/^execution_count,cell_id,/);
  expect(csv).toContain(`\r\n${measured},`);
  const [ssName, ss] = await downloaded(page, () =>
    exportButton('speedscope').click()
  );
  expect(ssName).toMatch(/\.speedscope\.json$/);
  const speedscope = JSON.parse(ss);
  expect(speedscope.profiles.map((p: any) => p.name)).toContain(
    `cell [${measured}] (peak)`
  );
  const [, folded] = await downloaded(page, () =>
    exportButton('folded').click()
  );
  expect(folded).toContain(
    `cell [${measured}] line 4;grow · cell [${build}] line ${GROW_LINE} `
  );

  // Saved and reloaded: the output draws again from the notebook file.
  await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    for (const widget of app.shell.widgets('main')) {
      if (widget.context?.path === 'flamegraph.ipynb') {
        await widget.context.save();
      }
    }
  });
  await page.reload();
  await page.waitForSelector('.jp-NotebookPanel .jp-Cell', { timeout: 60000 });
  await expect(flamegraphOf(page, 2)).toBeVisible();
  await expect(
    flamegraphOf(page, 2).locator('.cyscope-Flamegraph-title')
  ).toHaveText(`cell [${measured}] · peak`);
  expect(consoleErrors).toEqual([]);
});
