/**
 * End to end in Notebook 7 (JupyterLab's sister front end, from PyPI): the
 * memory panel from the View menu, and `%%cython` diagnostics and annotation
 * in the cell editor. Runs only in the notebook-7 project (the "Notebook 7:"
 * prefix); the "loads cleanly" test of memory-panel.spec.ts runs there too.
 */
import { CYTHON_ERROR } from '../support/cython-samples';
import { expect, openNotebook, runCell, saveShot, test } from './fixtures';

const ANNOTATED = `%%cython -a
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s`;

test('Notebook 7: the memory panel opens from the View menu, and %%cython marks errors and shades lines', async ({
  page,
  server,
  consoleErrors
}) => {
  await openNotebook(page, server, 'nb7.ipynb');
  expect(await page.evaluate(() => (window as any).jupyterapp.name)).toMatch(
    /Notebook/
  );
  const count = await runCell(page, 'data = bytearray(16 << 20)');

  // The View menu has the panel's command; the panel opens in the sidebar.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: 'View' }).click();
  await page
    .locator('.lm-Menu-itemLabel', { hasText: 'Show cyscope Memory Panel' })
    .click();
  const panel = page.locator('#cyscope-memory-panel');
  await expect(panel).toBeVisible();
  await expect(
    panel.locator(`tr[data-execution-count="${count}"]`)
  ).toBeVisible();
  await expect(panel.locator('[data-cyscope="heap-box"]')).toBeVisible();

  // %%cython diagnostics on the cell line.
  await runCell(page, CYTHON_ERROR);
  const cell = page.locator('.jp-NotebookPanel .jp-CodeCell').last();
  const third = cell.locator('.cm-line').nth(2);
  await expect(third).toHaveClass(/cyscope-cm-diagnosticLine/);
  await expect(
    cell.locator('.cyscope-cm-gutter .cyscope-cm-marker.cyscope-mod-error')
  ).toHaveCount(1);
  await expect(cell.locator('.cyscope-Diagnostics-entry').first()).toHaveText(
    /^line 3, column \d+: error: undeclared name not builtin: y/
  );

  // %%cython -a shading, and the C of a line.
  await runCell(page, ANNOTATED);
  const annotated = page.locator('.jp-NotebookPanel .jp-CodeCell').last();
  await expect(annotated.locator('.cm-line.cyscope-cm-shade')).not.toHaveCount(
    0
  );
  saveShot('notebook7-memory-panel.png', await page.screenshot());
  expect(consoleErrors).toEqual([]);
});
