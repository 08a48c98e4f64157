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

/** Every figure of a row, from its details view (opened, read, closed). */
async function figuresOf(
  page: import('@playwright/test').Page,
  count: number
): Promise<Record<string, string>> {
  const row = rowFor(page, count);
  await row.locator('.cyscope-CellTable-toggle').click();
  const details = page.locator(
    '#cyscope-memory-panel .cyscope-CellTable-details'
  );
  await expect(details).toBeVisible();
  const figures = await details.evaluate(node => {
    const out: Record<string, string> = {};
    for (const dt of node.querySelectorAll('dt')) {
      out[dt.textContent ?? ''] = dt.nextElementSibling?.textContent ?? '';
    }
    return out;
  });
  await row.locator('.cyscope-CellTable-toggle').click();
  await expect(details).toHaveCount(0);
  return figures;
}

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
  // The row says which cell: its count and the first line of its source.
  await expect(row.locator('.cyscope-CellTable-count')).toHaveText('[2]');
  await expect(row.locator('.cyscope-CellTable-firstLine')).toHaveText(
    'import time'
  );
  // Every figure is in the row's details, whatever fits the sidebar.
  const figures = await figuresOf(page, 2);
  expect(
    parseBytes(figures['RSS'].replace(/.*\(\+?(.*)\)$/, '$1'))
  ).toBeGreaterThan(150 * 1024 * 1024);

  // The native tracker's exact figures: 200 MiB allocated and kept.
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="heap-box"]')
  ).toBeVisible();
  expect(parseBytes(figures['Heap peak'])).toBeGreaterThan(190 * 1024 * 1024);
  expect(parseBytes(figures['Net'].replace(/^\+/, ''))).toBeGreaterThan(
    190 * 1024 * 1024
  );
  // The bar: nearly all of the heap peaks of the two cells is cell 2's.
  const share = await row
    .locator('.cyscope-Bar')
    .evaluate(bar => parseFloat((bar as HTMLElement).style.width));
  expect(share).toBeGreaterThan(95);

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
  // The malformed sample is reported; the message of a type this frontend
  // does not know, sent after it, is a newer kernel's: ignored quietly.
  await runCell(
    page,
    `from cyscope.extension import current_state
current_state(get_ipython()).hub.broadcast({"v": 1, "type": "sample", "rss_bytes": -1})
current_state(get_ipython()).hub.broadcast({"v": 1, "type": "bogus"})`
  );
  const notice = page.locator('#cyscope-memory-panel [data-cyscope="notice"]');
  await expect(notice).toContainText(
    'malformed message from the kernel: sample'
  );
  const count = await runCell(page, '"still fine"');
  expect(await lastOutput(page)).toContain('still fine');
  await expect(rowFor(page, count!)).toBeVisible();
  // Both messages have arrived by now: the unknown one left no trace.
  await expect(notice).toContainText(
    'malformed message from the kernel: sample'
  );
  await expect(notice).not.toContainText('bogus');
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
hub.broadcast({"v": 1, "type": "sample", "rss_bytes": -1})`
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

/** Run Python in the kernel and return what it printed (adds a cell). */
async function kernelSays(
  page: import('@playwright/test').Page,
  code: string
): Promise<string> {
  await runCell(page, code);
  return (await lastOutput(page)).trim();
}

const TRACKING_NOW =
  'from cyscope.extension import current_state; print(current_state(get_ipython()).tracking)';

test('the Settings Editor switches memory tracking off and on in the running kernel', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'settings.ipynb');
  await openMemoryPanel(page);
  const heapBox = page.locator(
    '#cyscope-memory-panel [data-cyscope="heap-box"]'
  );
  await runCell(page, 'a = bytearray(8 << 20)');
  await expect(heapBox).toBeVisible();
  expect(await kernelSays(page, TRACKING_NOW)).toBe('sampled');

  // The Settings Editor shows cyscope's settings with their titles.
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('settingeditor:open', {
      query: 'cyscope'
    })
  );
  const editor = page.locator('.jp-SettingsPanel');
  await expect(editor.getByText('Track memory per cell')).toBeVisible();
  await expect(editor.getByText('Load cyscope into new kernels')).toBeVisible();
  await expect(editor.getByText('Memory tracking mode')).toBeVisible();
  const checkbox = editor.getByRole('checkbox', {
    name: /Track memory per cell/
  });
  await expect(checkbox).toBeChecked();
  await checkbox.uncheck();

  // No reload: the kernel drops its hooks and the panel its heap figure.
  await expect(heapBox).toBeHidden();
  await page.evaluate(() => {
    const app = (window as any).jupyterapp;
    for (const w of app.shell.widgets('main')) {
      if (w.sessionContext) {
        app.shell.activateById(w.id);
      }
    }
  });
  expect(await kernelSays(page, TRACKING_NOW)).toBe('off');
  const offCount = await runCell(page, 'b = bytearray(8 << 20)');
  await expect(rowFor(page, offCount!)).toBeVisible();
  // A row without tracker figures: none in its details either.
  const offFigures = await figuresOf(page, offCount!);
  expect(offFigures['Heap peak']).toBeUndefined();
  expect(offFigures['RSS']).toMatch(/→/);

  // Back on, in another mode, through the command the Kernel menu offers.
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('cyscope:set-tracking-mode', {
      mode: 'exact'
    })
  );
  await expect(heapBox).toBeVisible();
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="heap-label"]')
  ).toHaveText('heap (tracked, exact)');
  expect(await kernelSays(page, TRACKING_NOW)).toBe('exact');
  // The user's settings keep it.
  const saved = await page.evaluate(async ({ url, token }) => {
    const res = await fetch(
      `${url}/lab/api/settings/jupyterlab-cyscope:plugin?token=${token}`
    );
    return (await res.json()).settings;
  }, server);
  expect(saved).toMatchObject({ memoryTracking: true, trackingMode: 'exact' });
  // Later tests on this server expect the default mode.
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('cyscope:set-tracking-mode', {
      mode: 'sampled'
    })
  );
  await expect(
    page.locator('#cyscope-memory-panel [data-cyscope="heap-label"]')
  ).toHaveText('heap (tracked, sampled)');
});

test('the memory panel comes back after a reload', async ({ page, server }) => {
  await openNotebook(page, server, 'restore.ipynb');
  await openMemoryPanel(page);
  await runCell(page, 'x = 1');
  // Let JupyterLab save the layout, then reload without resetting it.
  await page.waitForTimeout(1500);
  await page.goto(`${server.url}/lab/tree/restore.ipynb?token=${server.token}`);
  await page.waitForFunction(
    () => (window as any).jupyterapp?.started !== undefined
  );
  await expect(page.locator('#cyscope-memory-panel')).toBeVisible({
    timeout: 60000
  });
  await expect(
    page.locator('.jp-SideBar [data-id="cyscope-memory-panel"]')
  ).toHaveClass(/lm-mod-current/);
});

test('the status-bar item follows a cell that allocates and opens the panel', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'status.ipynb');
  const status = page.locator('#jp-main-statusbar [data-cyscope="status"]');
  await expect(status).toHaveText(/^Heap: /, { timeout: 30000 });
  const seen = new Set<string>();
  await runCell(page, ALLOCATE_200MB, false);
  await expect(status).toHaveClass(/cyscope-mod-running/);
  while (
    await status.evaluate(n => n.classList.contains('cyscope-mod-running'))
  ) {
    seen.add(await status.innerText());
    await page.waitForTimeout(50);
  }
  // It moved while the cell ran, not only at its end.
  expect(seen.size).toBeGreaterThanOrEqual(4);
  const final = parseBytes((await status.innerText()).replace(/^Heap: /, ''));
  expect(final).toBeGreaterThan(190 * 1024 * 1024);
  await expect(page.locator('#cyscope-memory-panel')).toBeHidden();
  await status.click();
  await expect(page.locator('#cyscope-memory-panel')).toBeVisible();
});

test('the memory panel works from the keyboard alone', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'keyboard.ipynb');
  await runCell(page, 'small = bytearray(1 << 20)');
  await runCell(page, 'big = bytearray(40 << 20)');
  await runCell(page, 'medium = bytearray(10 << 20)');
  // The shortcut opens the panel and puts the focus on the newest row.
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Alt+m');
  const panel = page.locator('#cyscope-memory-panel');
  await expect(panel).toBeVisible();
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      return (
        el.dataset.executionCount ??
        el.closest('th')?.dataset.column ??
        el.tagName
      );
    });
  await expect.poll(focused).toBe('3');
  // The focus is visible.
  const outline = await page.evaluate(
    () => getComputedStyle(document.activeElement as Element).outlineStyle
  );
  expect(outline).toBe('solid');
  // One tab stop for the whole table.
  expect(await panel.locator('table [tabindex="0"]').count()).toBe(1);

  await page.keyboard.press('ArrowDown');
  expect(await focused()).toBe('2');
  // Enter takes the notebook to that cell.
  await page.keyboard.press('Enter');
  expect(
    await page.evaluate(
      () =>
        (window as any).jupyterapp.shell.currentWidget.content.activeCellIndex
    )
  ).toBe(1);
  // Right shows every figure of the row, Left hides them.
  await panel.focus();
  await page.keyboard.press('Control+Alt+m');
  await expect.poll(focused).toBe('2');
  await page.keyboard.press('ArrowRight');
  await expect(panel.locator('.cyscope-CellTable-details')).toContainText(
    'Heap peak'
  );
  await page.keyboard.press('ArrowLeft');
  await expect(panel.locator('.cyscope-CellTable-details')).toHaveCount(0);
  // Up into the header, along to "Heap peak", Enter: the biggest cell first.
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowUp');
  expect(await focused()).toBe('cell');
  await page.keyboard.press('ArrowRight');
  expect(await focused()).toBe('heap-peak');
  await page.keyboard.press('Enter');
  await expect(panel.locator('th[data-column="heap-peak"]')).toHaveAttribute(
    'aria-sort',
    'descending'
  );
  await page.keyboard.press('ArrowDown');
  expect(await focused()).toBe('2');
  await page.keyboard.press('ArrowRight');
  await expect(panel.locator('.cyscope-CellTable-details')).toBeVisible();
  saveShot('memory-panel-details.png', await panel.screenshot());
  await page.keyboard.press('ArrowLeft');
  // Tab leaves the table in one step.
  await page.keyboard.press('Tab');
  expect(
    await page.evaluate(() =>
      Boolean(document.activeElement?.closest('#cyscope-memory-panel table'))
    )
  ).toBe(false);
});

test('%unload_ext is respected until the user loads cyscope again', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'unload.ipynb');
  await openMemoryPanel(page);
  const notice = page.locator('#cyscope-memory-panel [data-cyscope="notice"]');
  await runCell(page, '%unload_ext cyscope');
  await expect(notice).toContainText('unloaded from this kernel');
  for (let i = 0; i < 3; i++) {
    await runCell(page, `n${i} = ${i}`);
  }
  await page.waitForTimeout(1000);
  expect(
    await kernelSays(
      page,
      "print('cyscope' in get_ipython().extension_manager.loaded)"
    )
  ).toBe('False');
  await expect(notice).toContainText('unloaded from this kernel');

  await runCell(page, '%load_ext cyscope');
  await expect(notice).toBeHidden();
  const count = await runCell(page, 'back = 1');
  await expect(rowFor(page, count!)).toBeVisible();
});

test('a kernel that refuses the comm is asked again after a growing delay, not on every idle', async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'refuse.ipynb');
  await openMemoryPanel(page);
  await runCell(page, 'x = 1');
  // The back-off clock starts when the kernel closes the comm, after this.
  const start = Date.now();
  // Note when comms are opened, then make cyscope refuse them (its comm
  // target gone, the extension still loaded: the frontend must not reload it).
  await runCell(
    page,
    `from cyscope.extension import current_state
import time
kernel = get_ipython().kernel
opens = []
handle = kernel.shell_handlers['comm_open']
def counting(*args, **kwargs):
    opens.append(time.time())
    return handle(*args, **kwargs)
kernel.shell_handlers['comm_open'] = counting
current_state(get_ipython()).hub.unregister('maintenance')`
  );
  const notice = page.locator('#cyscope-memory-panel [data-cyscope="notice"]');
  await expect(notice).toContainText('trying again in 2 s');
  // Ten idles: without a back-off each would open a comm.
  for (let i = 0; i < 10; i++) {
    await runCell(page, `i${i} = ${i}`);
  }
  // Two retries, 2 s and then 4 s after a refusal, however fast the cells
  // ran. The kernel handles a comm_open before it closes the comm, so once
  // the third delay is shown both opens are noted.
  await expect(notice).toContainText(/trying again in (8|16|32) s/);
  const opens = JSON.parse(
    await kernelSays(page, 'import json; print(json.dumps(opens))')
  ) as number[];
  const elapsed = (Date.now() - start) / 1000;
  // Retries wait 2, 4, 8... s after each refusal: at most k of them fit
  // in the time since the clock started (2 + 4 + ... + 2^k <= elapsed).
  let fit = 0;
  while (2 ** (fit + 2) - 2 <= elapsed) {
    fit++;
  }
  expect(opens.length).toBeGreaterThanOrEqual(2);
  // Eleven idles went by (the ten cells and the count); one open
  // per idle would be far more than fit in these few seconds.
  expect(opens.length).toBeLessThanOrEqual(fit);
  // The delay grows: the second retry came at least 4 s after the first
  // (whose refusal started the clock), the third at least 8 s after it.
  opens.slice(1).forEach((at, i) => {
    expect(at - opens[i]).toBeGreaterThanOrEqual(2 ** (i + 2) - 0.05);
  });
});

test("the View, Kernel and Settings menus offer cyscope's commands", async ({
  page,
  server
}) => {
  await openNotebook(page, server, 'restore.ipynb');
  const menuItems = async (menu: string): Promise<string[]> => {
    await page.locator('.lm-MenuBar-itemLabel', { hasText: menu }).click();
    const labels = await page
      .locator('.lm-Menu:visible .lm-Menu-itemLabel')
      .allInnerTexts();
    return labels;
  };
  expect(await menuItems('View')).toContain('Show cyscope Memory Panel');
  await page.keyboard.press('Escape');
  const kernel = await menuItems('Kernel');
  expect(kernel).toEqual(
    expect.arrayContaining([
      'Load cyscope in the Kernel',
      'Track Memory per Cell',
      'Memory Tracking Mode'
    ])
  );
  await page
    .locator('.lm-Menu:visible .lm-Menu-itemLabel', {
      hasText: 'Memory Tracking Mode'
    })
    .hover();
  const modes = page.locator('.lm-Menu:visible .lm-Menu-item', {
    hasText: 'Memory Tracking: '
  });
  await expect(modes).toHaveCount(3);
  // The mode in effect is ticked.
  await expect(
    page.locator('.lm-Menu:visible .lm-Menu-item.lm-mod-toggled', {
      hasText: 'Memory Tracking: Sampled Stacks'
    })
  ).toHaveCount(1);
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  expect(await menuItems('Settings')).toEqual(
    expect.arrayContaining([
      'Load cyscope into New Kernels',
      'Use cyscope’s %%cython'
    ])
  );
  await page.keyboard.press('Escape');
  // And the command palette finds them.
  await page.keyboard.press('Control+Shift+c');
  await page.keyboard.type('cyscope');
  const found = page.locator('.lm-CommandPalette-itemLabel');
  for (const label of [
    'Show cyscope Memory Panel',
    'Track Memory per Cell',
    'Memory Tracking: With Native Frames',
    'Load cyscope into New Kernels'
  ]) {
    await expect(found.filter({ hasText: label })).toHaveCount(1);
  }
  await page.keyboard.press('Escape');
});
