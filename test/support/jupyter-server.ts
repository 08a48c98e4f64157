/**
 * Starts a real JupyterLab server for end-to-end tests: loopback only, a
 * random token, fresh runtime/settings/workspace folders so nothing leaks
 * between runs, and extra kernelspecs for Debian's interpreter.
 *
 * Three kinds of server: `pip` is `jupyter lab` from a virtual environment;
 * `notebook7` is `jupyter notebook` (Notebook 7) from the same environment;
 * `debian` is the JupyterLab 4.5 of compat/debian-jupyterlab served by
 * Debian's own jupyter_server and jupyterlab_server on /usr/bin/python3,
 * where every kernel is Debian's interpreter.
 */
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export const REPO = path.resolve(__dirname, '..', '..');
export const VENV_BIN = path.join(REPO, '.venv', 'bin');
const DEBIAN_LAB = path.join(REPO, 'compat', 'debian-jupyterlab');

export type ServerKind = 'pip' | 'notebook7' | 'debian';

/** A kernel's environment that imports cyscope from this checkout. */
const CYSCOPE_FROM_CHECKOUT = { PYTHONPATH: path.join(REPO, 'python-shim') };

export interface IServerInfo {
  kind: ServerKind;
  url: string;
  token: string;
  rootDir: string;
  pid: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function writeKernelSpec(
  dataDir: string,
  name: string,
  displayName: string,
  argv0: string,
  env: Record<string, string>
): void {
  const dir = path.join(dataDir, 'kernels', name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'kernel.json'),
    JSON.stringify({
      argv: [argv0, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
      display_name: displayName,
      language: 'python',
      env
    })
  );
}

interface IServerPlace {
  port: number;
  token: string;
  rootDir: string;
  base: string;
}

/** The command line of each kind of server, on loopback with a token. */
function serverCommand(
  kind: ServerKind,
  venvBin: string,
  { port, token, rootDir, base }: IServerPlace
): [string, string[]] {
  if (kind === 'debian') {
    return [
      '/usr/bin/python3',
      [
        path.join(DEBIAN_LAB, 'launch.py'),
        `--port=${port}`,
        `--token=${token}`,
        `--root-dir=${rootDir}`,
        `--state-dir=${path.join(base, 'state')}`,
        '--expose-app-in-browser'
      ]
    ];
  }
  if (kind === 'notebook7') {
    return [
      path.join(venvBin, 'jupyter'),
      [
        'notebook',
        '--no-browser',
        '--ServerApp.ip=127.0.0.1',
        `--ServerApp.port=${port}`,
        '--ServerApp.port_retries=0',
        `--IdentityProvider.token=${token}`,
        `--ServerApp.root_dir=${rootDir}`,
        '--ServerApp.allow_root=True',
        '--JupyterNotebookApp.expose_app_in_browser=True',
        `--JupyterNotebookApp.user_settings_dir=${path.join(base, 'settings')}`,
        `--JupyterNotebookApp.workspaces_dir=${path.join(base, 'workspaces')}`
      ]
    ];
  }
  return [
    path.join(venvBin, 'jupyter'),
    [
      'lab',
      '--no-browser',
      '--ServerApp.ip=127.0.0.1',
      `--ServerApp.port=${port}`,
      '--ServerApp.port_retries=0',
      `--IdentityProvider.token=${token}`,
      `--ServerApp.root_dir=${rootDir}`,
      '--ServerApp.allow_root=True',
      '--LabApp.expose_app_in_browser=True',
      `--LabApp.user_settings_dir=${path.join(base, 'settings')}`,
      `--LabApp.workspaces_dir=${path.join(base, 'workspaces')}`,
      '--LabApp.news_url=',
      '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'
    ]
  ];
}

export async function startServer(
  rootFiles: Record<string, string> = {},
  venvBin: string = VENV_BIN,
  kind: ServerKind = 'pip'
): Promise<{ info: IServerInfo; process: ChildProcess; base: string }> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cyscope-e2e-'));
  const rootDir = path.join(base, 'notebooks');
  const dataDir = path.join(base, 'data');
  fs.mkdirSync(rootDir);
  for (const [name, text] of Object.entries(rootFiles)) {
    fs.writeFileSync(path.join(rootDir, name), text);
  }
  // Debian's python3 (the SageMath kernel's interpreter) with only
  // python-shim/ on its path, and the same interpreter without cyscope.
  writeKernelSpec(
    dataDir,
    'debian-python3-cyscope',
    'Debian Python 3 (cyscope from checkout)',
    '/usr/bin/python3',
    CYSCOPE_FROM_CHECKOUT
  );
  writeKernelSpec(
    dataDir,
    'debian-python3-plain',
    'Debian Python 3 (no cyscope)',
    '/usr/bin/python3',
    {}
  );
  // No "news" prompt over the panels in screenshots. (Notebook 7 shows
  // none, and disabling the plugin there makes its settings loader throw.)
  const labConfig = path.join(base, 'config', 'labconfig');
  fs.mkdirSync(labConfig, { recursive: true });
  if (kind !== 'notebook7') {
    fs.writeFileSync(
      path.join(labConfig, 'page_config.json'),
      JSON.stringify({
        disabledExtensions: {
          '@jupyterlab/apputils-extension:announcements': true
        }
      })
    );
  }
  const port = await freePort();
  const token = crypto.randomBytes(24).toString('hex');
  if (kind === 'debian') {
    // No venv there: the default kernel is Debian's python3 too, and the
    // prebuilt extension is found in the data path, as an installed one is.
    writeKernelSpec(
      dataDir,
      'python3',
      'Python 3 (ipykernel)',
      '/usr/bin/python3',
      CYSCOPE_FROM_CHECKOUT
    );
    fs.mkdirSync(path.join(dataDir, 'labextensions'));
    fs.symlinkSync(
      path.join(REPO, 'python-shim', 'cyscope', 'labextension'),
      path.join(dataDir, 'labextensions', 'jupyterlab-cyscope')
    );
  }
  const env = {
    ...process.env,
    JUPYTER_RUNTIME_DIR: path.join(base, 'runtime'),
    JUPYTER_CONFIG_DIR: path.join(base, 'config'),
    JUPYTER_PATH: dataDir,
    IPYTHONDIR: path.join(base, 'ipython'),
    PATH:
      kind === 'debian' ? process.env.PATH : `${venvBin}:${process.env.PATH}`
  };
  const [command, args] = serverCommand(kind, venvBin, {
    port,
    token,
    rootDir,
    base
  });
  const proc = spawn(command, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false
  });
  const log = fs.createWriteStream(path.join(base, 'server.log'));
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60000;
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(
        `jupyter lab exited with ${proc.exitCode}; see ${base}/server.log`
      );
    }
    try {
      const res = await fetch(`${url}/api/status`, {
        headers: { Authorization: `token ${token}` }
      });
      if (res.ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`jupyter lab did not start; see ${base}/server.log`);
    }
    await new Promise(r => setTimeout(r, 250));
  }
  return {
    info: { kind, url, token, rootDir, pid: proc.pid ?? 0 },
    process: proc,
    base
  };
}
