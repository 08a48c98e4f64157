/**
 * End to end: a `%%cython` cell really crashes the kernel (real JupyterLab
 * 4.6, real kernel, compiler and gdb, Debian's Chromium). After JupyterLab
 * restarts the kernel, the report is in the crashed cell's output, the
 * cell lines are marked in the `%%cython` cell, and a notification says
 * which cell crashed and that the kernel's state was lost.
 */
import { Page } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import {
  expect,
  notebookJson,
  openNotebook,
  runCell,
  saveShot,
  test
} from './fixtures';

const CRASH_MIME = 'application/vnd.cyscope.crash.v1+json';

// read_at is called from line 10; it dereferences a NULL pointer at line 6.
const CRASHING = `%%cython
# A helper that trusts its caller with a pointer.
cdef int read_at(int *p, int n) noexcept nogil:
    return p[n]

ctypedef int (*reader_t)(int *, int) noexcept nogil
cdef reader_t reader = read_at  # a pointer: kept out of line

def first_value(int n, size_t address=0):
    return reader(<int *>address, n)`;
const SITE_LINE = 4;
const CALL_LINE = 10;

const cells = (page: Page) =>
  page.locator('.jp-NotebookPanel:visible .jp-CodeCell');

/** Cell-line numbers (1-based) of a cell's lines with a class. */
async function linesWith(
  page: Page,
  index: number,
  className: string
): Promise<number[]> {
  return cells(page)
    .nth(index)
    .locator('.cm-line')
    .evaluateAll(
      (lines, cls) =>
        lines
          .map((line, i) => (line.classList.contains(cls) ? i + 1 : -1))
          .filter(i => i >= 0),
      className
    );
}

test('a crashing %%cython cell: the report in its output after the restart, the line marked', async ({
  page,
  server,
  consoleErrors
}) => {
  test.setTimeout(300000);
  fs.writeFileSync(
    path.join(server.rootDir, 'crash.ipynb'),
    notebookJson('python3', 'Python 3 (ipykernel)')
  );
  await openNotebook(page, server, 'crash.ipynb');
  expect(await runCell(page, CRASHING)).toBe(1);
  await runCell(page, 'print("before")\nfirst_value(3)', false);

  // JupyterLab says the kernel died and restarts it; dismiss its dialog.
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor({ timeout: 90000 });
  await dialog.locator('button').last().click();

  // The restarted kernel hands over the report: it lands in the cell that crashed.
  const report = cells(page).nth(1).locator('.cyscope-CrashReport');
  await expect(report).toBeVisible({ timeout: 90000 });
  // Its prompt shows the number the report calls it by ("cell [2]"), not "[ ]".
  await expect(cells(page).nth(1).locator('.jp-InputArea-prompt')).toHaveText(
    '[2]:'
  );
  await expect(report.locator('.cyscope-CrashReport-headline')).toHaveText(
    `Kernel crashed: SIGSEGV (segmentation fault (invalid memory access)) at address 0xc: address not mapped to object in cell [1] line ${SITE_LINE} (read_at)`
  );
  await expect(report).toContainText(
    'its state (variables, imports, loaded modules) was lost'
  );
  await expect(report.locator('.cyscope-CrashReport-cellLine')).toHaveText([
    `cell [1] line ${SITE_LINE}`,
    `cell [1] line ${CALL_LINE}`,
    'cell [2] line 2'
  ]);
  const payload = await page.evaluate(mime => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    const outputs = notebook.widgets[1].model.outputs.toJSON();
    return outputs.find((o: any) => o.data && mime in o.data)?.data[mime];
  }, CRASH_MIME);
  expect(payload.source).toBe('gdb');
  expect(payload.cell.cell_id).toBe(
    await page.evaluate(
      () =>
        (window as any).jupyterapp.shell.currentWidget.content.widgets[1].model
          .id
    )
  );

  // The %%cython cell's lines on the stack are marked, the crash site strongest.
  await expect
    .poll(() => linesWith(page, 0, 'cyscope-cm-crashLine'))
    .toEqual([SITE_LINE, CALL_LINE]);
  expect(await linesWith(page, 0, 'cyscope-mod-site')).toEqual([SITE_LINE]);
  expect(await linesWith(page, 1, 'cyscope-cm-crashLine')).toEqual([2]);

  // A notification names the cell and says the state was lost.
  const toast = page.locator('.jp-Notification-Toast-error', {
    hasText: 'Kernel crashed in cell [2] (SIGSEGV, cell [1] line 4).'
  });
  await expect(toast).toBeVisible();
  await expect(toast).toContainText('its state (variables, imports) was lost');

  // A link in the report goes to the cell line.
  await report.locator('.cyscope-CrashReport-cellLine').nth(1).click();
  await expect
    .poll(() =>
      page.evaluate(() => {
        const notebook = (window as any).jupyterapp.shell.currentWidget.content;
        return [
          notebook.activeCellIndex,
          notebook.activeCell.editor.getCursorPosition().line + 1
        ];
      })
    )
    .toEqual([0, CALL_LINE]);

  // The picture for the docs: the notebook, the notification over it.
  await page.evaluate(() => (window as any).jupyterapp.shell.collapseLeft());
  await page.setViewportSize({ width: 1400, height: 700 });
  await expect(toast).toBeVisible();
  const box = await page.locator('#jp-main-dock-panel').boundingBox();
  if (!box) {
    throw new Error('no main area to photograph');
  }
  saveShot(
    'crash-report.png',
    await page.screenshot({
      clip: { x: box.x, y: box.y, width: 1400 - box.x, height: 700 - box.y }
    })
  );
  expect(
    consoleErrors.filter(e => !/kernel|restart|websocket|WebSocket/i.test(e))
  ).toEqual([]);
});
