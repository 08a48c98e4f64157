/**
 * End to end: `%%cython` diagnostics and annotation drawn in the cell editor
 * (real JupyterLab 4.6, real kernel and compiler, Debian's Chromium).
 */
import { Page } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import {
  CYTHON_ERROR,
  CYTHON_ERROR_DIAGNOSTICS
} from '../support/cython-samples';
import {
  expect,
  notebookJson,
  openNotebook,
  runCell,
  saveShot,
  test
} from './fixtures';

const DIAGNOSTICS_MIME = 'application/vnd.cyscope.diagnostics+json';
const ANNOTATION_MIME = 'application/vnd.cyscope.annotation+json';

const C_ERROR = `%%cython
cdef extern from *:
    """
    int broken( {
    """
    int broken()`;

const ANNOTATED = `%%cython -a
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s`;

/** A fresh notebook of our own in the server's root folder. */
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

const lastCell = (page: Page) =>
  page.locator('.jp-NotebookPanel:visible .jp-CodeCell').last();

/** The payload of a MIME type in the last cell's outputs. */
async function lastPayload(page: Page, mime: string): Promise<any> {
  return page.evaluate(mime => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    const outputs =
      notebook.widgets[notebook.widgets.length - 1].model.outputs.toJSON();
    const found = outputs.find((o: any) => o.data && mime in o.data);
    return found ? found.data[mime] : null;
  }, mime);
}

/** Index (0-based) of every editor line with a class, in the last cell. */
async function linesWith(page: Page, className: string): Promise<number[]> {
  return lastCell(page)
    .locator('.cm-line')
    .evaluateAll(
      (lines, cls) =>
        lines
          .map((line, i) => (line.classList.contains(cls) ? i : -1))
          .filter(i => i >= 0),
      className
    );
}

async function collapseLeft(page: Page): Promise<void> {
  await page.evaluate(() => (window as any).jupyterapp.shell.collapseLeft());
}

test('a Cython error is marked on its cell line, listed, and cleared by an edit', async ({
  page,
  server,
  consoleErrors
}) => {
  await openFresh(page, server, 'cython-editor-error.ipynb');
  await runCell(page, CYTHON_ERROR);
  const payload = await lastPayload(page, DIAGNOSTICS_MIME);
  expect(payload.ok).toBe(false);
  expect(payload.diagnostics[0].line).toBe(3);

  const cell = lastCell(page);
  const third = cell.locator('.cm-line').nth(2);
  await expect(third).toHaveClass(/cyscope-cm-diagnosticLine/);
  await expect(third).toHaveClass(/cyscope-mod-error/);
  expect(await linesWith(page, 'cyscope-cm-diagnosticLine')).toEqual([2]);
  const squiggle = third.locator('.cyscope-cm-squiggle.cyscope-mod-error');
  await expect(squiggle).toHaveText('y');
  const marker = cell.locator(
    '.cyscope-cm-gutter .cyscope-cm-marker.cyscope-mod-error'
  );
  await expect(marker).toHaveCount(1);
  await expect(marker).toHaveAttribute('title', /undeclared name not builtin/);
  // The gutter marker sits on the third line.
  const [markerBox, lineBox] = [
    await marker.boundingBox(),
    await third.boundingBox()
  ];
  expect(Math.abs(markerBox!.y - lineBox!.y)).toBeLessThan(lineBox!.height);

  // Message on hover.
  await squiggle.hover();
  await expect(page.locator('.cyscope-cm-tooltip')).toContainText(
    'undeclared name not builtin: y'
  );
  saveShot('cython-diagnostics.png', await cell.screenshot());

  // The output lists it; clicking the entry puts the cursor on line 3.
  const entry = cell.locator('.cyscope-Diagnostics-entry').first();
  await expect(entry).toHaveText(
    /^line 3, column \d+: error: undeclared name not builtin: y/
  );
  await expect(
    cell.locator('.cyscope-Diagnostics-output summary')
  ).toContainText('Full compiler output');
  await cell.locator('.cm-line').first().click();
  await entry.click();
  const cursorLine = await page.evaluate(() => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    return notebook.activeCell.editor.getCursorPosition().line;
  });
  expect(cursorLine).toBe(2);

  // Any edit drops the markers (the outputs stay until the cell re-runs).
  await page.keyboard.type(' ');
  await expect(cell.locator('.cyscope-cm-diagnosticLine')).toHaveCount(0);
  await expect(cell.locator('.cyscope-cm-marker')).toHaveCount(0);
  await expect(cell.locator('.cyscope-Diagnostics-entry')).toHaveCount(1);

  // Re-running the fixed cell clears the output and draws nothing.
  await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCell.model.sharedModel.setSource(
      '%%cython\ndef add_y(int n):\n    return n + 1'
    );
    await app.commands.execute('notebook:run-cell');
  });
  await expect(cell.locator('.cyscope-Diagnostics')).toHaveCount(0);
  await expect(cell.locator('.cyscope-cm-diagnosticLine')).toHaveCount(0);
  expect(consoleErrors).toEqual([]);
});

test('a C compiler error in verbatim C is marked on its cell line', async ({
  page,
  server,
  consoleErrors
}) => {
  await openFresh(page, server, 'cython-editor-cc.ipynb');
  await runCell(page, C_ERROR);
  const payload = await lastPayload(page, DIAGNOSTICS_MIME);
  const errors = payload.diagnostics.filter(
    (d: any) => d.source === 'cc' && d.severity === 'error' && d.line
  );
  expect(errors.length).toBeGreaterThan(0);
  const line = errors[0].line as number;
  expect(line).toBe(4);
  const cell = lastCell(page);
  await expect(cell.locator('.cm-line').nth(line - 1)).toHaveClass(
    /cyscope-cm-diagnosticLine/
  );
  expect(await linesWith(page, 'cyscope-mod-error')).toContain(line - 1);
  await expect(
    cell.locator('.cyscope-cm-gutter .cyscope-cm-marker.cyscope-mod-error')
  ).not.toHaveCount(0);
  await expect(cell.locator('.cyscope-Diagnostics-source').first()).toHaveText(
    '[C compiler]'
  );
  expect(consoleErrors).toEqual([]);
});

test('a saved notebook shows its markers on open; a malformed payload is refused', async ({
  page,
  server,
  consoleErrors
}) => {
  const cell = (id: string, source: string, data: object) => ({
    cell_type: 'code',
    execution_count: 1,
    id,
    metadata: {},
    outputs: [{ output_type: 'display_data', data, metadata: {} }],
    source
  });
  const notebook = JSON.parse(notebookJson('python3', 'Python 3 (ipykernel)'));
  notebook.cells = [
    cell('saved', CYTHON_ERROR, {
      [DIAGNOSTICS_MIME]: CYTHON_ERROR_DIAGNOSTICS,
      'text/plain': 'line 3, column 16: error: undeclared name not builtin: y'
    }),
    cell('future', CYTHON_ERROR, {
      [DIAGNOSTICS_MIME]: { v: 2, ok: false, diagnostics: [], output: '' },
      'text/plain': 'line 3: error: from a newer kernel'
    })
  ];
  fs.writeFileSync(
    path.join(server.rootDir, 'cython-editor-saved.ipynb'),
    JSON.stringify(notebook)
  );
  await openNotebook(page, server, 'cython-editor-saved.ipynb');
  const cells = page.locator('.jp-NotebookPanel:visible .jp-CodeCell');
  await expect(cells.nth(0).locator('.cm-line').nth(2)).toHaveClass(
    /cyscope-cm-diagnosticLine/
  );
  await expect(cells.nth(0).locator('.cyscope-Diagnostics-entry')).toHaveText(
    /^line 3, column 16: error/
  );
  const refused = cells.nth(1);
  await expect(refused.locator('.cyscope-CythonOutput-error')).toHaveText(
    /^Malformed cyscope diagnostics payload: version 2 is not supported/
  );
  await expect(refused.locator('.cyscope-CythonOutput-plain')).toHaveText(
    'line 3: error: from a newer kernel'
  );
  await expect(refused.locator('.cyscope-cm-diagnosticLine')).toHaveCount(0);
  expect(consoleErrors).toEqual([]);
});

/** Shaded lines, clicking one shows its C; returns the annotation payload. */
async function annotateAndOpen(page: Page): Promise<any> {
  await runCell(page, ANNOTATED);
  const payload = await lastPayload(page, ANNOTATION_MIME);
  expect(payload).not.toBeNull();
  const cell = lastCell(page);
  const shaded = await linesWith(page, 'cyscope-cm-shade');
  const expected = payload.lines
    .filter((l: any) => l.score > 0)
    .map((l: any) => l.line - 1);
  expect(expected.length).toBeGreaterThan(0);
  expect(shaded).toEqual(expected);

  // The darkest line (the def, which builds a Python function) is line 2.
  const darkest = payload.lines.reduce((a: any, b: any) =>
    b.score > a.score ? b : a
  );
  await cell
    .locator('.cm-line')
    .nth(darkest.line - 1)
    .click();
  const panel = page.locator('#cyscope-cython-code');
  await expect(panel).toBeVisible();
  const code = panel.locator('.cyscope-CythonCodePanel-code');
  await expect(code).toHaveAttribute('data-line', String(darkest.line));
  expect(await code.textContent()).toBe(darkest.code);
  expect(darkest.code).toContain('__pyx');

  // The gutter "+" of another line switches the view to that line.
  const other = payload.lines.find(
    (l: any) => l.line !== darkest.line && l.code.trim() !== ''
  );
  const plus = cell
    .locator('.cyscope-cm-gutter .cm-gutterElement')
    .filter({ has: page.locator('.cyscope-mod-annotation') })
    .nth(
      payload.lines
        .filter((l: any) => l.code.trim() !== '' || l.score > 0)
        .findIndex((l: any) => l.line === other.line)
    );
  await plus.click();
  await expect(code).toHaveAttribute('data-line', String(other.line));
  expect(await code.textContent()).toBe(other.code);

  // The output is a compact summary; its "line N" opens that line too.
  await expect(cell.locator('.cyscope-Annotation-summary')).toContainText(
    `darkest line ${darkest.line}`
  );
  await cell.locator('.cyscope-Annotation-line').click();
  await expect(code).toHaveAttribute('data-line', String(darkest.line));

  // Keyboard route: the command shows the C of the cursor's line.
  await page.evaluate(async line => {
    const app = (window as any).jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCell.editor.setCursorPosition({ line, column: 0 });
    await app.commands.execute('cyscope:show-cython-code');
  }, other.line - 1);
  await expect(code).toHaveAttribute('data-line', String(other.line));
  await cell.locator('.cyscope-Annotation-line').click();
  return payload;
}

test('-a shades the cell lines by score; clicking a line shows its C', async ({
  page,
  server,
  consoleErrors
}) => {
  await openFresh(page, server, 'cython-editor-annotate.ipynb');
  await collapseLeft(page);
  await annotateAndOpen(page);
  await page.mouse.move(0, 0);
  saveShot('cython-annotation-light.png', await page.screenshot());
  // Editing the cell drops the shading.
  const cell = lastCell(page);
  await cell.locator('.cm-line').first().click();
  await page.keyboard.press('End');
  await page.keyboard.type(' ');
  await expect(cell.locator('.cyscope-cm-shade')).toHaveCount(0);
  expect(consoleErrors).toEqual([]);
});

/** Contrast of each shaded line's text with its effective background. */
async function shadeReadability(page: Page) {
  return lastCell(page)
    .locator('.cm-line.cyscope-cm-shade')
    .evaluateAll(lines => {
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 1;
      const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
      // Any CSS colour (rgb(), color(srgb …), color-mix results) as RGBA 0..1.
      const rgba = (css: string): number[] => {
        ctx.clearRect(0, 0, 1, 1);
        ctx.fillStyle = css;
        ctx.fillRect(0, 0, 1, 1);
        const d = ctx.getImageData(0, 0, 1, 1).data;
        return [d[0] / 255, d[1] / 255, d[2] / 255, d[3] / 255];
      };
      const over = (top: number[], bottom: number[]): number[] => {
        const a = top[3];
        return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
      };
      const luminance = (c: number[]) => {
        const lin = c
          .slice(0, 3)
          .map(v => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
      };
      const contrast = (a: number[], b: number[]) => {
        const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (l1 + 0.05) / (l2 + 0.05);
      };
      return lines.map(line => {
        const shade = rgba(getComputedStyle(line).backgroundColor);
        // Stack the backgrounds from the page up to the line.
        const chain: Element[] = [];
        for (let e: Element | null = line; e; e = e.parentElement) {
          chain.unshift(e);
        }
        let background = [1, 1, 1, 1];
        for (const e of chain) {
          background = over(
            rgba(getComputedStyle(e).backgroundColor),
            background
          );
        }
        const text = over(rgba(getComputedStyle(line).color), background);
        const spans = [...line.querySelectorAll('span')];
        const tokenInfo = spans.map(
          span => `${span.textContent}:${getComputedStyle(span).color}`
        );
        const tokens = spans.map(span =>
          contrast(
            over(rgba(getComputedStyle(span).color), background),
            background
          )
        );
        return {
          alpha: shade[3],
          contrast: contrast(text, background),
          minTokenContrast: Math.min(contrast(text, background), ...tokens),
          tokens: tokenInfo.map((t, i) => `${t}=${tokens[i].toFixed(2)}`),
          background: background.map(v => Math.round(v * 255))
        };
      });
    });
}

test('-a shading is readable in the dark theme', async ({
  page,
  server,
  consoleErrors
}) => {
  await openFresh(page, server, 'cython-editor-dark.ipynb');
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme: 'JupyterLab Dark'
    })
  );
  await page.waitForFunction(
    () => document.body.dataset.jpThemeLight === 'false'
  );
  await collapseLeft(page);
  try {
    await annotateAndOpen(page);
    // Click away from the cell so the line shows its resting look.
    await page.mouse.move(0, 0);
    const lines = await shadeReadability(page);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.alpha).toBeGreaterThan(0);
      expect(line.alpha).toBeLessThan(1);
      expect(line.contrast).toBeGreaterThanOrEqual(3);
      // Syntax colours too, not only the default text colour.
      expect(line.minTokenContrast).toBeGreaterThanOrEqual(3);
      // A dark theme's background stays dark under the shade.
      expect(Math.max(...line.background.slice(0, 3))).toBeLessThan(200);
    }
    console.log('dark shade readability', JSON.stringify(lines));
    saveShot('cython-annotation-dark.png', await page.screenshot());
  } finally {
    await page.evaluate(() =>
      (window as any).jupyterapp.commands.execute('apputils:change-theme', {
        theme: 'JupyterLab Light'
      })
    );
    await page.waitForFunction(
      () => document.body.dataset.jpThemeLight === 'true'
    );
  }
  expect(consoleErrors).toEqual([]);
});
