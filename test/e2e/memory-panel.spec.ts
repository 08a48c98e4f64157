/**
 * End to end: a real JupyterLab 4.6 server, real kernels, Debian's Chromium.
 */
import {
  expect,
  lastOutput,
  openMemoryPanel,
  openNotebook,
  parseBytes,
  runCell,
  saveShot,
  test
} from './fixtures';

const PLUGIN_ID = 'jupyterlab-cyscope:plugin';

// Allocates 200 MiB in 20 steps over about 2 s, touching every page so RSS
// really grows (bytes(n) alone would be lazily mapped zero pages).
const ALLOCATE_200MB = `import time
chunks = []
for _ in range(20):
    chunks.append(b"x" * (10 * 1024 * 1024))
    time.sleep(0.1)
len(chunks)`;

const rssText = (page: import('@playwright/test').Page) =>
  page.locator('#cyscope-memory-panel [data-cyscope="rss"]').innerText();

const rowFor = (page: import('@playwright/test').Page, count: number) =>
  page.locator(`#cyscope-memory-panel tr[data-execution-count="${count}"]`);

test('loads cleanly, loads cyscope silently, streams live memory, adds a row per cell', async ({
  page,
  server,
  consoleErrors
}) => {
  await openNotebook(page, server, 'venv.ipynb');

  const activated = await page.evaluate(
    id => (window as any).jupyterapp.isPluginActivated(id),
    PLUGIN_ID
  );
  expect(activated).toBe(true);

  const first = await runCell(
    page,
    "'cyscope' in get_ipython().extension_manager.loaded"
  );
  expect(await lastOutput(page)).toContain('True');
  // The silent %load_ext left no trace in the numbering.
  expect(first).toBe(1);

  await openMemoryPanel(page);
  await expect(rowFor(page, 1)).toBeVisible();

  const before = parseBytes(await rssText(page));
  const seen = new Set<string>();
  await runCell(page, ALLOCATE_200MB, false);
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="running"]')
  ).toHaveText(/running cell \[2\]/);
  while (
    (
      await page
        .locator('#cyscope-memory-panel [data-cyscope="running"]')
        .innerText()
    ).startsWith('running')
  ) {
    seen.add(await rssText(page));
    await page.waitForTimeout(50);
  }
  // The figure moved several times while the cell ran, not just at its end.
  expect(seen.size).toBeGreaterThanOrEqual(4);

  const row = rowFor(page, 2);
  await expect(row).toBeVisible();
  const after = parseBytes(await rssText(page));
  expect(after - before).toBeGreaterThan(150 * 1024 * 1024);
  const column = (name: string) =>
    row.locator(`td[data-column="${name}"]`).innerText();
  expect(await column('cell')).toBe('[2]');
  expect(
    parseBytes((await column('rss-delta')).replace(/^\+/, ''))
  ).toBeGreaterThan(150 * 1024 * 1024);

  // The native tracker's exact figures: 200 MiB allocated and kept.
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="heap-box"]')
  ).toBeVisible();
  expect(parseBytes(await column('heap-peak'))).toBeGreaterThan(
    190 * 1024 * 1024
  );
  expect(
    parseBytes((await column('heap-net')).replace(/^\+/, ''))
  ).toBeGreaterThan(190 * 1024 * 1024);

  // Clicking a row takes the notebook to that cell.
  await page.evaluate(() => {
    (window as any).jupyterapp.shell.currentWidget.content.activeCellIndex = 1;
  });
  await rowFor(page, 1).click();
  expect(
    await page.evaluate(
      () =>
        (window as any).jupyterapp.shell.currentWidget.content.activeCellIndex
    )
  ).toBe(0);

  // A sidebar wide enough for every column (users drag it; the test sets it).
  await page.evaluate(() => {
    const shell = (window as any).jupyterapp.shell;
    shell._hsplitPanel?.setRelativeSizes([0.34, 0.66, 0]);
  });
  await page.waitForTimeout(300);
  const shot = await page.locator('#cyscope-memory-panel').screenshot();
  saveShot('memory-panel.png', shot);

  expect(consoleErrors).toEqual([]);
});

test('a kernel killed mid-stream restarts and the panel carries on', async ({
  page,
  server,
  consoleErrors
}) => {
  await openNotebook(page, server, 'restart.ipynb');
  await openMemoryPanel(page);
  await runCell(page, 'x = 1');
  await expect(rowFor(page, 1)).toBeVisible();

  // The kernel kills itself 1 s into a streaming cell; the server restarts it.
  await runCell(
    page,
    `import os, threading, time
threading.Timer(1.0, lambda: os.kill(os.getpid(), 9)).start()
for _ in range(50):
    time.sleep(0.1)`,
    false
  );
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="running"]')
  ).toHaveText(/running cell/);
  // JupyterLab tells the user the kernel restarted; dismiss it.
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor({ timeout: 60000 });
  await dialog.locator('button').last().click();
  await page.waitForFunction(
    () =>
      (window as any).jupyterapp.shell.currentWidget.sessionContext.session
        ?.kernel?.status === 'idle',
    undefined,
    { timeout: 60000 }
  );

  const count = await runCell(page, 'y = [0] * 1000; "alive"');
  expect(await lastOutput(page)).toContain('alive');
  expect(count).toBe(1);
  await expect(rowFor(page, 1)).toBeVisible();
  // Rows of the dead process are gone: the panel follows the new kernel.
  await expect(page.locator('#cyscope-memory-panel tbody tr')).toHaveCount(1);
  expect(
    consoleErrors.filter(e => !/kernel|restart|websocket|WebSocket/i.test(e))
  ).toEqual([]);
});

test('a malformed message from the kernel is reported and ignored', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'malformed.ipynb');
  await openMemoryPanel(page);
  await runCell(
    page,
    `from cyscope.extension import current_state
current_state(get_ipython()).hub.broadcast({"v": 1, "type": "bogus"})
current_state(get_ipython()).hub.broadcast({"v": 1, "type": "sample", "rss_bytes": -1})`
  );
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="notice"]')
  ).toContainText('malformed message');
  const count = await runCell(page, '"still fine"');
  expect(await lastOutput(page)).toContain('still fine');
  await expect(rowFor(page, count!)).toBeVisible();
});

test('a dropped websocket reconnects with one comm, and old notices clear', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'reconnect.ipynb');
  await openMemoryPanel(page);
  const notice = page.locator('#cyscope-memory-panel [data-cyscope="notice"]');
  await runCell(
    page,
    `from cyscope.extension import current_state
hub = current_state(get_ipython()).hub
hub.broadcast({"v": 1, "type": "bogus"})`
  );
  await expect(notice).toContainText('malformed message');

  // The websocket drops and comes back; the kernel process is the same.
  await page.evaluate(() =>
    (
      window as any
    ).jupyterapp.shell.currentWidget.sessionContext.session.kernel.reconnect()
  );
  // Once the new connection greets the panel, nothing is left to notice:
  // neither "connecting" nor the old connection's error.
  await expect(notice).toBeHidden();
  // The kernel keeps exactly one cyscope comm open: the frontend's new one.
  await runCell(page, 'print(len(hub._comms))');
  expect((await lastOutput(page)).trim()).toBe('1');
});

test("Debian's python3 kernel with only python-shim/ on its path is served", async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'debian.ipynb');
  await openMemoryPanel(page);
  await runCell(
    page,
    `import sys, cyscope, cyscope.native
print(sys.executable, 'cyscope' in get_ipython().extension_manager.loaded, cyscope.native.status().loaded)`
  );
  expect(await lastOutput(page)).toContain('/usr/bin/python3 True True');
  await expect(rowFor(page, 1)).toBeVisible();
});

test('a kernel without cyscope gets a clear notice and keeps working', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'plain.ipynb');
  await openMemoryPanel(page);
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="notice"]')
  ).toContainText(
    "cyscope is not available in this kernel (ModuleNotFoundError: No module named 'cyscope')"
  );
  const count = await runCell(page, '6 * 7');
  expect(count).toBe(1);
  expect(await lastOutput(page)).toContain('42');
});

test('%%cython cells are highlighted as Cython, build, and report errors on the cell line', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'cython.ipynb');
  await runCell(page, '%%cython\ndef triple(int n):\n    return 3 * n');
  const mime = await page.evaluate(() => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    return notebook.widgets[notebook.widgets.length - 1].model.mimeType;
  });
  expect(mime).toBe('text/x-cython');
  await runCell(page, 'triple(14)');
  expect(await lastOutput(page)).toContain('42');
  // Typing %%cython into a plain cell switches its editor to Cython too.
  await runCell(page, '%%cython\n# comment\ncdef int x = "not an int"');
  expect(await lastOutput(page)).toMatch(/line 3/);
  const editorMime = await page.evaluate(() => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    return notebook.widgets[notebook.widgets.length - 1].model.mimeType;
  });
  expect(editorMime).toBe('text/x-cython');
});
