import { defineConfig } from '@playwright/test';
import * as path from 'path';

const REPO = path.resolve(__dirname, '..', '..');

// Debian's Chromium only: never let Playwright download a browser.
export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  outputDir: '../../test-results/e2e',
  timeout: 180000,
  expect: { timeout: 30000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  projects: [
    // Tests named "Notebook 7: ..." run only in the notebook-7 project.
    { name: 'jupyterlab-4.6', grepInvert: /Notebook 7:/ },
    {
      // The extension is built with 4.6's toolchain; it must load in 4.5 too.
      name: 'jupyterlab-4.5',
      grep: /loads cleanly/,
      use: { venvBin: path.join(REPO, '.venv-lab45', 'bin') } as object
    },
    {
      // Debian 12's own jupyter_server + jupyterlab_server (no PyPI) serving
      // the JupyterLab 4.5 of compat/debian-jupyterlab.
      name: 'debian-jupyterlab-4.5',
      grep: /loads cleanly/,
      use: { serverKind: 'debian' } as object
    },
    {
      // JupyterLab's sister front end, Notebook 7 (PyPI, same venv).
      name: 'notebook-7',
      grep: /loads cleanly|Notebook 7:/,
      use: { serverKind: 'notebook7' } as object
    }
  ],
  use: {
    browserName: 'chromium',
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure'
  }
});
