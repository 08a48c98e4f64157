/**
 * Playwright fixtures: one real JupyterLab server per worker, and a page
 * that records every console error so tests can insist on none.
 */
import { expect, Page, test as base } from '@playwright/test';
import { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import {
  IServerInfo,
  REPO,
  ServerKind,
  startServer,
  VENV_BIN
} from '../support/jupyter-server';

export function notebookJson(kernelName: string, displayName: string): string {
  return JSON.stringify({
    cells: [
      {
        cell_type: 'code',
        execution_count: null,
        id: 'first-cell',
        metadata: {},
        outputs: [],
        source: ''
      }
    ],
    metadata: {
      kernelspec: {
        name: kernelName,
        display_name: displayName,
        language: 'python'
      }
    },
    nbformat: 4,
    nbformat_minor: 5
  });
}

export const NOTEBOOKS: Record<string, string> = {
  'venv.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'restart.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'malformed.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'reconnect.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'cython.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'settings.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'restore.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'status.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'keyboard.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'unload.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'refuse.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'nb7.ipynb': notebookJson('python3', 'Python 3 (ipykernel)'),
  'debian.ipynb': notebookJson(
    'debian-python3-cyscope',
    'Debian Python 3 (cyscope from checkout)'
  ),
  'plain.ipynb': notebookJson(
    'debian-python3-plain',
    'Debian Python 3 (no cyscope)'
  )
};

/** The Playwright project whose screenshots illustrate the docs. */
const DOCS_PROJECT = 'jupyterlab-4.6';

type WorkerFixtures = {
  server: IServerInfo;
  venvBin: string;
  serverKind: ServerKind;
};
type TestFixtures = { consoleErrors: string[] };

export const test = base.extend<TestFixtures, WorkerFixtures>({
  // Which JupyterLab serves the tests: the project venv (4.6) by default,
  // .venv-lab45 for the 4.5 compatibility project (playwright.config.ts).
  venvBin: [VENV_BIN, { option: true, scope: 'worker' }],
  // 'debian': Debian's own Jupyter server packages instead of a venv's.
  serverKind: ['pip', { option: true, scope: 'worker' }],
  server: [
    async ({ venvBin, serverKind }, use) => {
      const {
        info,
        process: proc,
        base: serverDir
      } = await startServer(NOTEBOOKS, venvBin, serverKind);
      await use(info);
      await stop(proc);
      // The server's notebooks, settings and logs: kept only on request,
      // for a look after a failure (CYSCOPE_KEEP_E2E_DIRS=1).
      if (process.env.CYSCOPE_KEEP_E2E_DIRS === '1') {
        console.log(`server folder kept: ${serverDir}`);
      } else {
        fs.rmSync(serverDir, { recursive: true, force: true });
      }
    },
    { scope: 'worker' }
  ],
  consoleErrors: async ({ page, serverKind }, use) => {
    const errors: string[] = [];
    page.on('console', msg => {
      // A shared-module warning means cyscope asked the host for a version of
      // a JupyterLab package it does not provide (package.json's
      // jupyterlab.sharedPackages declares the range cyscope supports).
      if (
        msg.type() === 'error' ||
        (msg.type() === 'warning' && /Unsatisfied version/.test(msg.text()))
      ) {
        errors.push(msg.text());
      }
    });
    page.on('pageerror', err => {
      // Notebook 7.6's own race (jupyter/notebook#7862): its shortcuts
      // plugin reads a plugin's schema before it is loaded; it happens with
      // no extension installed. Only this exact error, only there.
      if (
        serverKind === 'notebook7' &&
        String(err) ===
          "TypeError: Cannot read properties of undefined (reading 'schema')" &&
        /notebook_core/.test(err.stack ?? '')
      ) {
        return;
      }
      errors.push(String(err));
    });
    // Name the resource behind a "Failed to load resource" console error.
    page.on('response', res => {
      if (res.status() >= 400) {
        errors.push(
          `HTTP ${res.status()} ${res.url().replace(/token=\w+/, 'token=…')}`
        );
      }
    });
    await use(errors);
  }
});

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) {
    return;
  }
  proc.kill('SIGTERM');
  const exited = new Promise(resolve => proc.once('exit', resolve));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
}

export { expect };

/** Open a notebook of the test server and wait for its kernel to be idle. */
export async function openNotebook(
  page: Page,
  server: IServerInfo,
  name: string
): Promise<void> {
  const where =
    server.kind === 'notebook7'
      ? `notebooks/${name}?token=${server.token}`
      : `lab/tree/${name}?token=${server.token}&reset`;
  await page.goto(`${server.url}/${where}`);
  await page.waitForFunction(
    () => (window as any).jupyterapp?.started !== undefined
  );
  await page.waitForSelector('.jp-NotebookPanel .jp-Cell', { timeout: 60000 });
  await page.waitForFunction(
    () => {
      const w = (window as any).jupyterapp.shell.currentWidget;
      return w?.sessionContext?.session?.kernel?.status === 'idle';
    },
    undefined,
    { timeout: 90000 }
  );
}

/**
 * Put `code` in a new last cell and run it; resolves when the kernel has
 * given the cell its execution count (or immediately with wait=false).
 */
export async function runCell(
  page: Page,
  code: string,
  wait = true
): Promise<number | null> {
  const index = await page.evaluate(async source => {
    const app = (window as any).jupyterapp;
    const panel = app.shell.currentWidget;
    const notebook = panel.content;
    const last = notebook.widgets[notebook.widgets.length - 1];
    if (
      last.model.sharedModel.getSource() !== '' ||
      last.model.executionCount !== null
    ) {
      notebook.activeCellIndex = notebook.widgets.length - 1;
      await app.commands.execute('notebook:insert-cell-below');
    }
    notebook.activeCellIndex = notebook.widgets.length - 1;
    notebook.activeCell.model.sharedModel.setSource(source);
    void app.commands.execute('notebook:run-cell');
    return notebook.widgets.length - 1;
  }, code);
  if (!wait) {
    return null;
  }
  const handle = await page.waitForFunction(
    i => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      const cell = panel.content.widgets[i];
      const kernel = panel.sessionContext.session?.kernel;
      return cell.model.executionCount !== null && kernel?.status === 'idle'
        ? cell.model.executionCount
        : false;
    },
    index,
    { timeout: 120000 }
  );
  return (await handle.jsonValue()) as number;
}

/** Text of the output area of the last cell. */
export async function lastOutput(page: Page): Promise<string> {
  return page.evaluate(() => {
    const notebook = (window as any).jupyterapp.shell.currentWidget.content;
    const last = notebook.widgets[notebook.widgets.length - 1];
    return (
      (last.node.querySelector('.jp-OutputArea') as HTMLElement)?.innerText ??
      ''
    );
  });
}

export async function openMemoryPanel(page: Page): Promise<void> {
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('cyscope:show-memory-panel')
  );
  await expect(page.locator('#cyscope-memory-panel')).toBeVisible();
}

/** Parse "123.4 MiB" (as the panel prints it) to bytes. */
export function parseBytes(text: string): number {
  const m = /^(-?[\d.]+) (B|KiB|MiB|GiB|TiB)$/.exec(text.trim());
  if (!m) {
    throw new Error(`not a byte figure: ${JSON.stringify(text)}`);
  }
  const power = ['B', 'KiB', 'MiB', 'GiB', 'TiB'].indexOf(m[2]);
  return parseFloat(m[1]) * 1024 ** power;
}

/**
 * Keep a screenshot with the test's other output. The docs' images come from
 * the main project (JupyterLab 4.6) only, on request
 * (CYSCOPE_UPDATE_DOCS_SCREENSHOTS=1): the compatibility projects run the
 * same test and would otherwise overwrite them.
 */
export function saveShot(name: string, shot: Buffer): void {
  const info = test.info();
  fs.writeFileSync(info.outputPath(name), shot);
  if (
    process.env.CYSCOPE_UPDATE_DOCS_SCREENSHOTS === '1' &&
    info.project.name === DOCS_PROJECT
  ) {
    fs.writeFileSync(path.join(REPO, 'docs', 'images', name), shot);
  }
}
