/**
 * %%cython over the real Jupyter protocol: a build error fails the execute
 * request and publishes the diagnostics MIME bundle, which must match
 * protocol/diagnostics.schema.json (the frontend's renderer reads it).
 * Runs on the project venv (Cython 3) and Debian's python3 (Cython 0.29).
 */
import Ajv2020 from 'ajv/dist/2020';
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

import {
  DEFAULT_PYTHON,
  JupyterMessage,
  KernelClient
} from '../support/kernel-client';
import { senderSchema } from '../support/protocol-files';

jest.setTimeout(180000);

const DIAGNOSTICS_MIME = 'application/vnd.cyscope.diagnostics+json';
const validateDiagnostics = new Ajv2020({ strict: false }).compile(
  senderSchema('diagnostics.schema.json')
);

interface IDiagnostic {
  severity: string;
  line: number;
  column: number | null;
  message: string;
  source: string;
}

function bundles(iopub: JupyterMessage[]): Record<string, unknown>[] {
  return iopub
    .filter(m => m.header.msg_type === 'display_data')
    .map(m => (m.content as { data: Record<string, unknown> }).data);
}

describe.each([
  ['project venv', DEFAULT_PYTHON],
  ['Debian python3', '/usr/bin/python3']
])('%%cython over the wire on %s', (_, python) => {
  let client: KernelClient;

  beforeAll(async () => {
    client = await KernelClient.start({
      python,
      // A private, empty cache: every build here is a real compile.
      env: {
        CYSCOPE_CACHE_DIR: join(
          mkdtempSync(join(tmpdir(), 'cyscope-cache-')),
          'c'
        )
      }
    });
    const load = await client.execute('%load_ext cyscope', {
      silent: true,
      storeHistory: false
    });
    expect(load.reply.content.status).toBe('ok');
  });

  afterAll(async () => {
    await client?.shutdown();
  });

  it('builds a cell and puts its names in the user namespace', async () => {
    const build = await client.execute(
      '%%cython\ndef add(int a, int b):\n    return a + b'
    );
    expect(build.reply.content.status).toBe('ok');
    expect(await client.evaluate('add(40, 2)')).toBe('42');
  });

  it('lets two cells share one utility module (Cython 3.1+; 0.29: none)', async () => {
    const util = "__import__('cyscope.cython.utility').cython.utility";
    const shared =
      "__import__('cyscope.cython').cython.last_result(get_ipython()).shared_utility";
    // The first cell (above) started the shared module's background build.
    expect(await client.evaluate(`${util}.wait(600)`)).toBe('True');
    for (const [name, body] of [
      ['first', 'def first(int n):\n    return n * 2'],
      ['second', 'def second(double[::1] v):\n    return v[0]']
    ]) {
      const run = await client.execute(`%%cython\n${body}`);
      expect(run.reply.content.status).toBe('ok');
      await client.execute(`_cy_${name} = ${shared}`);
    }
    expect(
      await client.evaluate(
        `(_cy_first == _cy_second, (_cy_first is not None) == ${util}.available())`
      )
    ).toBe('(True, True)');
    expect(
      await client.evaluate(
        "first(21), second(__import__('array').array('d', [2.5]))"
      )
    ).toBe('(42, 2.5)');
  });

  it('fails the request on a Cython error and publishes diagnostics on the cell line', async () => {
    const run = await client.execute(
      '%%cython\n# line 2\ncdef int x = "not an int"\n',
      { stopOnError: false }
    );
    expect(run.reply.content.status).toBe('error');
    const payload = bundles(run.iopub)
      .map(data => data[DIAGNOSTICS_MIME])
      .find(Boolean) as { diagnostics: IDiagnostic[]; ok: boolean };
    expect(payload).toBeDefined();
    expect(validateDiagnostics(payload)).toBe(true);
    expect(payload.ok).toBe(false);
    const errors = payload.diagnostics.filter(d => d.severity === 'error');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0].line).toBe(3);
    expect(errors[0].source).toBe('cython');
    // The kernel is unharmed.
    expect(await client.evaluate('1 + 1')).toBe('2');
  });

  it('rejects an unknown option with a clear error and keeps the kernel', async () => {
    const run = await client.execute('%%cython --no-such-option\npass\n', {
      stopOnError: false
    });
    expect(run.reply.content.status).toBe('error');
    expect(`${run.reply.content.ename}: ${run.reply.content.evalue}`).toContain(
      '--no-such-option'
    );
    expect(await client.ping()).toBe(true);
  });
});
