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
    { name: 'jupyterlab-4.6' },
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
