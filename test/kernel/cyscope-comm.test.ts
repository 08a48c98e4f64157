/**
 * Kernel integration tests of the cyscope comm: a real ipykernel, driven over
 * ZMQ by test/support/kernel-client.ts, with python-shim/ on PYTHONPATH.
 *
 * The whole suite runs once per interpreter: the project's venv (ipykernel 7)
 * and Debian's /usr/bin/python3 (ipykernel 6.17, the SageMath kernel's
 * interpreter). A missing Debian ipykernel FAILS the suite: CI installs it.
 *
 * Every message the kernel sends on a cyscope comm is validated against
 * protocol/cyscope.schema.json (see CyscopeSession.violations, checked after
 * each test), and every wire message's HMAC signature is verified.
 */
import { spawnSync } from 'child_process';
import { existsSync, realpathSync } from 'fs';
import { join } from 'path';
import {
  DEFAULT_PYTHON,
  KernelClient,
  KernelDiedError,
  PYTHON_SHIM,
  REPO_ROOT
} from '../support/kernel-client';
import { fixture } from '../support/protocol-files';
import {
  CellRun,
  closeDataProblem,
  ConfigMessage,
  connectProblem,
  CyscopeSession,
  HistoryMessage,
  KernelMessage,
  SampleMessage,
  dataOf,
  frontendMessageProblem,
  isType
} from './cyscope-session';

// jest 29 ignores testTimeout inside a `projects` entry of jest.config.js.
jest.setTimeout(120000);

const DEBIAN_PYTHON = '/usr/bin/python3';
const DEFAULT_INTERVAL_MS = 100;

const INTERPRETERS: [string, string][] = [
  [
    process.env.CYSCOPE_TEST_PYTHON ? 'CYSCOPE_TEST_PYTHON' : 'project venv',
    DEFAULT_PYTHON
  ]
];
if (DEFAULT_PYTHON !== DEBIAN_PYTHON) {
  INTERPRETERS.push(['Debian python3', DEBIAN_PYTHON]);
}

/** Why `python` cannot run an ipykernel, or null if it can. */
function ipykernelProblem(python: string): string | null {
  const probe = spawnSync(python, ['-c', 'import ipykernel'], {
    encoding: 'utf8',
    timeout: 30000
  });
  if (probe.error) {
    return `cannot run ${python}: ${probe.error.message}`;
  }
  if (probe.status !== 0) {
    return `${python} cannot import ipykernel:\n${probe.stderr.trim()}`;
  }
  return null;
}

/** Where cyscope.native looks for libcyscope.so (first hit decides). */
function nativeLibraryCandidate(): string | null {
  const candidates = [
    process.env.CYSCOPE_NATIVE_LIB,
    join(PYTHON_SHIM, 'cyscope', '_native', 'libcyscope.so'),
    join(REPO_ROOT, 'native', 'build', 'libcyscope.so')
  ];
  return (
    candidates.find(p => p !== undefined && p !== '' && existsSync(p)) ?? null
  );
}

/** The value of a Python str repr such as 'abc' (no escapes expected). */
function unquote(repr: string): string {
  return repr.replace(/^'(.*)'$/, '$1');
}

/** Poll `get` until it returns something (or fail after `timeoutMs`). */
async function waitFor<T>(
  get: () => T | undefined,
  timeoutMs: number,
  what: string
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = get();
    if (found !== undefined) {
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(ok => setTimeout(ok, 50));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function intervals(samples: SampleMessage[]): number[] {
  return samples.slice(1).map((s, i) => s.t_ms - samples[i].t_ms);
}

/** Checks shared by every streamed cell: samples name the cell, at least
 * `minRunningSamples` while it runs, one final sample, a consistent record. */
function expectWellFormedRun(run: CellRun, minRunningSamples: number): void {
  const { record } = run.cell;
  expect(run.result.reply.content.status).toBe('ok');
  expect(record.execution_count).toBe(run.executionCount);
  expect(record.success).toBe(true);
  // Every sample streamed while the cell ran names the cell's count.
  expect(run.samples.map(s => s.execution_count)).toEqual(
    run.samples.map(() => run.executionCount)
  );
  expect(run.runningSamples.length).toBeGreaterThanOrEqual(minRunningSamples);
  expect(run.finalSamples).toHaveLength(1);
  // The cell's own time (duration_ms) ends before the allocation tracker
  // writes its report, and the sampler may sample while it does: what holds
  // is that no running sample is taken, or arrives, after the final one.
  const [final] = run.finalSamples;
  expect(run.samples[run.samples.length - 1]).toBe(final);
  for (const sample of run.runningSamples) {
    expect(sample.t_ms).toBeGreaterThanOrEqual(record.started_ms - 5);
    expect(sample.t_ms).toBeLessThanOrEqual(final.t_ms);
    expect(record.rss_peak).toBeGreaterThanOrEqual(sample.rss_bytes);
  }
  expect(record.rss_peak).toBeGreaterThanOrEqual(record.rss_after);
  expect(record.rss_peak).toBeGreaterThanOrEqual(record.rss_before);
  expect(record.rss_before).toBeGreaterThan(0);
}

describe.each(INTERPRETERS)('cyscope comm on %s (%s)', (_label, python) => {
  let client: KernelClient | null = null;
  let session: CyscopeSession | null = null;
  const sessions: CyscopeSession[] = [];
  const clients: KernelClient[] = [];

  async function startKernel(): Promise<KernelClient> {
    const problem = ipykernelProblem(python);
    if (problem !== null) {
      const why =
        python === DEBIAN_PYTHON
          ? "These tests must also pass on Debian's interpreter (the " +
            'SageMath kernel runs on it): apt-get install python3-ipykernel ' +
            '(npm run setup does, as CI does).'
          : 'Run `npm run setup` to create the project venv.';
      throw new Error(`${problem}\n${why}`);
    }
    const started = await KernelClient.start({ python });
    clients.push(started);
    return started;
  }

  async function attach(
    to: KernelClient,
    options: { load?: boolean; open?: Record<string, unknown> } = {}
  ): Promise<CyscopeSession> {
    const attached = await CyscopeSession.attach(to, options);
    sessions.push(attached);
    return attached;
  }

  /** The shared kernel with cyscope loaded and a comm open (test 1 does it
   * with assertions; later tests attach on their own if run alone). */
  async function sharedSession(): Promise<CyscopeSession> {
    if (client === null) {
      throw new Error('kernel did not start (see beforeAll)');
    }
    session ??= await attach(client);
    await session.hello();
    return session;
  }

  beforeAll(async () => {
    client = await startKernel();
  });

  afterEach(() => {
    // Problems are reported once, by the test during which they arrived.
    const violations = sessions.flatMap(s => s.violations.splice(0));
    const wireErrors = clients.flatMap(c => c.wireErrors.splice(0));
    expect({ violations, wireErrors }).toEqual({
      violations: [],
      wireErrors: []
    });
  });

  afterAll(async () => {
    for (const s of sessions) {
      s.dispose();
    }
    await Promise.all(clients.map(c => c.shutdown()));
  });

  test('loads silently, greets, streams samples through a 1 s cell, then reports it', async () => {
    const kernel = client;
    if (kernel === null) {
      throw new Error('kernel did not start');
    }
    expect(await kernel.ping()).toBe(true);
    const loadedExpr = "'cyscope' in get_ipython().extension_manager.loaded";
    const countExpr = 'get_ipython().execution_count';
    expect(await kernel.evaluate(loadedExpr)).toBe('False');
    const countBefore = await kernel.evaluate(countExpr);

    session = await attach(kernel);
    const load = session.load;
    expect(load?.reply.content.status).toBe('ok');
    const loadTypes = load?.iopub.map(m => m.header.msg_type) ?? [];
    expect(loadTypes).not.toContain('execute_input');
    expect(loadTypes).not.toContain('error');
    expect(loadTypes).toContain('status');
    expect(await kernel.evaluate(loadedExpr)).toBe('True');
    expect(await kernel.evaluate(countExpr)).toBe(countBefore);

    const hello = await session.hello();
    expect(hello.v).toBe(1);
    expect(hello.pid).toBe(kernel.pid);
    expect(hello.interval_ms).toBe(DEFAULT_INTERVAL_MS);
    expect(hello.python).toBe(
      unquote(await kernel.evaluate("__import__('platform').python_version()"))
    );
    expect(hello.cyscope_version).toBe(
      unquote(await kernel.evaluate("__import__('cyscope').__version__"))
    );
    // native.loaded is reported, and agrees with what is on disk.
    const library = nativeLibraryCandidate();
    if (library !== null) {
      expect(hello.native).toEqual(
        expect.objectContaining({
          loaded: true,
          abi: 1,
          path: realpathSync(library),
          error: null
        })
      );
    } else {
      expect(hello.native.loaded).toBe(false);
      expect(hello.native.error).toMatch(/not found/);
    }
    // The greeting is hello plus one sample taken at once (so a panel has a
    // figure before any cell runs); an idle kernel sends nothing after it.
    await new Promise(ok => setTimeout(ok, 300));
    expect(session.data().map(d => d.type)).toEqual(['hello', 'sample']);
    const greeting = session.data()[1] as SampleMessage;
    expect(greeting.running).toBe(false);
    expect(greeting.execution_count).toBeNull();
    expect(greeting.rss_bytes).toBeGreaterThan(0);

    const run = await session.runCell('import time; time.sleep(1)');
    expect(String(run.executionCount)).toBe(countBefore);
    expectWellFormedRun(run, 5);
    expect(run.runningSamples.every(s => s.running)).toBe(true);
    expect(run.cell.record.duration_ms).toBeGreaterThanOrEqual(980);
    expect(run.cell.record.duration_ms).toBeLessThan(1500);
    const cellsForRun = session
      .data()
      .filter(
        d =>
          d.type === 'cell' && d.record.execution_count === run.executionCount
      );
    expect(cellsForRun).toHaveLength(1);
    // The end-of-cell sample comes after the running ones, before the record.
    const types = session.data().map(d => d.type);
    expect(types.lastIndexOf('sample')).toBeLessThan(types.indexOf('cell'));
  });

  test('request_history returns every cell record so far, oldest first', async () => {
    const s = await sharedSession();
    const kernel = s.client;
    await s.runCell('x = 41 + 1');
    await kernel.evaluate('x'); // silent: must leave no record
    const failed = await s.runCell('raise ValueError("cyscope test")');
    expect(failed.result.reply.content.status).toBe('error');
    expect(failed.cell.record.success).toBe(false);

    const request = { v: 1, type: 'request_history' };
    expect(frontendMessageProblem(request)).toBeNull();
    const answer = await s.request(request);
    expect(answer.type).toBe('history');
    const { records } = answer as HistoryMessage;
    const streamed = s
      .data()
      .flatMap(d => (d.type === 'cell' ? [d.record] : []));
    expect(streamed.length).toBeGreaterThanOrEqual(2);
    expect(records).toEqual(streamed);
    const counts = records.map(r => r.execution_count);
    // One record per non-silent cell; the silent evaluations left none.
    expect(counts).toEqual(s.cellsRun);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(new Set(counts).size).toBe(counts.length);
  });

  test('samples taken while the tracker writes its cell report come before the final sample', async () => {
    const s = await sharedSession();
    // A tracker whose report takes 600 ms (an exact report of a big cell on
    // a loaded machine): the cell's own time has ended, its record is still
    // open, and the sampler goes on sampling it.
    const slow = `from cyscope.extension import current_state as _cs
import time as _time
_monitor = _cs(get_ipython()).monitor
_real_tracker = _monitor._tracker
class _SlowReport:
    def cell_started(self, count, cell_id):
        if _real_tracker is not None:
            _real_tracker.cell_started(count, cell_id)
    def cell_finished(self):
        _time.sleep(0.6)
        return _real_tracker.cell_finished() if _real_tracker is not None else None
    def snapshot(self):
        return _real_tracker.snapshot() if _real_tracker is not None else None
_monitor.set_tracker(_SlowReport())`;
    const setUp = await s.client.execute(slow, { silent: true });
    expect(setUp.reply.content.status).toBe('ok');
    try {
      const run = await s.runCell('y = 1');
      const { record } = run.cell;
      const end = record.started_ms + record.duration_ms;
      // The report's samples are later than the cell's own end...
      expect(
        run.runningSamples.filter(x => x.t_ms > end + 100).length
      ).toBeGreaterThanOrEqual(1);
      // ...and still well-formed: before the final one, in the record's peak.
      expectWellFormedRun(run, 1);
    } finally {
      await s.client.execute('_monitor.set_tracker(_real_tracker)', {
        silent: true
      });
    }
  });

  test('answers each malformed message with an error naming the problem, and carries on', async () => {
    const s = await sharedSession();
    // A known baseline, so a wrongly accepted configure below would show.
    const baseline = {
      v: 1,
      type: 'configure',
      interval_ms: DEFAULT_INTERVAL_MS
    };
    expect(frontendMessageProblem(baseline)).toBeNull();
    const baselineId = await s.send(baseline);

    const cases: [string, unknown, RegExp[]][] = [
      ['wrong v', { v: 2, type: 'request_history' }, [/version/, /\b2\b/]],
      ['v as a string', { v: '1', type: 'request_history' }, [/version/]],
      ['no v', { type: 'request_history' }, [/version/]],
      [
        'unknown type',
        { v: 1, type: 'bogus' },
        [/unknown message type/, /bogus/]
      ],
      ['a list', [1, 2, 3], [/JSON object/, /list/]],
      ['a string', 'request_history', [/JSON object/, /str/]],
      ['null', null, [/JSON object/]],
      [
        'interval_ms "100"',
        { v: 1, type: 'configure', interval_ms: '100' },
        [/interval_ms/, /'100'/]
      ],
      [
        'interval_ms 1',
        { v: 1, type: 'configure', interval_ms: 1 },
        [/interval_ms/, /\b1$/]
      ],
      [
        'interval_ms 100.5',
        { v: 1, type: 'configure', interval_ms: 100.5 },
        [/interval_ms/, /100\.5/]
      ],
      [
        'interval_ms true',
        { v: 1, type: 'configure', interval_ms: true },
        [/interval_ms/, /True/]
      ],
      [
        'interval_ms 60001',
        { v: 1, type: 'configure', interval_ms: 60001 },
        [/interval_ms/, /60001/]
      ],
      [
        'configure without interval_ms',
        { v: 1, type: 'configure' },
        [/missing/, /interval_ms/]
      ]
    ];
    const problems: string[] = [];
    const sent: [string, string][] = [];
    for (const [label, data, patterns] of cases) {
      if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
        // The test's own premise: each case is invalid per the schema too.
        expect([label, frontendMessageProblem(data)]).not.toEqual([
          label,
          null
        ]);
      }
      let answer: KernelMessage;
      try {
        const msgId = await s.send(data);
        sent.push([label, msgId]);
        answer = dataOf(
          await s.messages.find(
            m => m.parent_header.msg_id === msgId,
            5000,
            `the answer to ${label}`
          )
        );
      } catch (error) {
        problems.push(`${label}: ${String(error)}`);
        continue;
      }
      if (answer.type !== 'error') {
        problems.push(`${label}: answered ${JSON.stringify(answer)}`);
        continue;
      }
      for (const pattern of patterns) {
        if (!pattern.test(answer.message)) {
          problems.push(
            `${label}: ${JSON.stringify(answer.message)} !~ ${pattern}`
          );
        }
      }
    }
    expect(problems).toEqual([]);

    // The comm still works, and each bad message got exactly one answer
    // (the history answer is sent after all of them, so they are all in).
    const history = await s.request({ v: 1, type: 'request_history' });
    expect(history.type).toBe('history');
    expect(s.answersTo(baselineId)).toEqual([]);
    for (const [label, msgId] of sent) {
      expect([label, s.answersTo(msgId).length]).toEqual([label, 1]);
    }

    // The kernel still executes and streams, at the unchanged interval.
    const run = await s.runCell('import time; time.sleep(0.6)');
    expectWellFormedRun(run, 3);
    expect(run.runningSamples.length).toBeLessThanOrEqual(9);
    expect(median(intervals(run.runningSamples))).toBeGreaterThan(80);
  });

  test('hostile input gets a short protocol error, never an internal one', async () => {
    const s = await sharedSession();
    const huge = 'x'.repeat(10 * 1024 * 1024);
    const manyFields: Record<string, unknown> = {
      v: 1,
      type: 'request_history'
    };
    for (let i = 0; i < 50000; i++) {
      manyFields[`field_${String(i).padStart(5, '0')}_${'y'.repeat(30)}`] = i;
    }
    const cases: [string, unknown, RegExp][] = [
      [
        'v true',
        { v: true, type: 'request_history' },
        /unsupported protocol version True/
      ],
      [
        'type a list',
        { v: 1, type: ['request_history'] },
        /unknown message type a list of 1 item/
      ],
      [
        'type an object',
        { v: 1, type: { request_history: 1 } },
        /unknown message type an object with 1 field/
      ],
      [
        'a 10 MB type',
        { v: 1, type: huge },
        /unknown message type 'x+'\.\.\. \(10,485,760 characters\)/
      ],
      [
        'a 10 MB interval_ms',
        { v: 1, type: 'configure', interval_ms: huge },
        /interval_ms must be an integer .*10,485,760 characters/
      ],
      // Accepted: unknown fields are ignored (a newer frontend may send
      // them); the test is that they cost no long answer.
      ['50,000 unknown fields', manyFields, /./]
    ];
    const problems: string[] = [];
    for (const [label, data, pattern] of cases) {
      if (label !== '50,000 unknown fields') {
        expect([label, frontendMessageProblem(data)]).not.toEqual([
          label,
          null
        ]);
      }
      const msgId = await s.send(data);
      const answer = await s.messages.find(
        m => m.parent_header.msg_id === msgId,
        30000,
        `the answer to ${label}`
      );
      const size = JSON.stringify(answer.content.data).length;
      const reply = dataOf(answer);
      if (label === '50,000 unknown fields') {
        if (reply.type !== 'history') {
          problems.push(`${label}: answered ${reply.type}`);
        }
        continue;
      }
      if (size > 1000) {
        problems.push(`${label}: a ${size}-character answer`);
      }
      if (reply.type === 'error') {
        // Quoted briefly here too: a failing case may be megabytes long.
        const quoted = JSON.stringify(reply.message.slice(0, 200));
        if (!pattern.test(reply.message)) {
          problems.push(`${label}: ${quoted} !~ ${pattern}`);
        }
        if (/internal error/.test(reply.message)) {
          problems.push(`${label}: ${quoted}`);
        }
      } else {
        problems.push(`${label}: answered ${reply.type}`);
      }
    }
    expect(problems).toEqual([]);
    // The kernel is alive and still streams.
    const run = await s.runCell('import time; time.sleep(0.3)');
    expectWellFormedRun(run, 1);
  });

  test("a newer frontend's messages, with fields this kernel does not know, are accepted", async () => {
    const s = await sharedSession();
    const future = fixture('future.json').filter(
      (m: { type: string }) =>
        m.type === 'configure' || m.type === 'request_history'
    );
    expect(
      [...new Set(future.map((m: { type: string }) => m.type))].sort()
    ).toEqual(['configure', 'request_history']);
    for (const message of future) {
      // Extra fields at the top level: not what this frontend may send...
      expect(frontendMessageProblem(message)).toMatch(/additional/);
    }
    const configure = future.find(
      (m: { type: string }) => m.type === 'configure'
    );
    const configureId = await s.send({ ...configure, interval_ms: 50 });
    const history = await s.request(
      future.find((m: { type: string }) => m.type === 'request_history')
    );
    // ...but the kernel, a reader, takes both: no error, and each acts.
    expect(history.type).toBe('history');
    expect(s.answersTo(configureId)).toEqual([]);
    try {
      const run = await s.runCell('import time; time.sleep(0.6)');
      expectWellFormedRun(run, 6);
      expect(median(intervals(run.runningSamples))).toBeLessThan(75);
    } finally {
      await s.send({
        v: 1,
        type: 'configure',
        interval_ms: DEFAULT_INTERVAL_MS
      });
    }
  });

  test('a frontend that connects with its settings has them applied before anything is tracked, is told them, and gets a goodbye on unload', async () => {
    const kernel = await startKernel();
    const connect = {
      v: 1,
      type: 'connect',
      cyscope_version: '0.1.0',
      capabilities: [
        'config',
        'configure.tracking',
        'configure.cython_magic',
        'goodbye'
      ],
      interval_ms: 50,
      tracking: 'off',
      cython_magic: 'cython'
    };
    expect(connectProblem(connect)).toBeNull();
    const s = await attach(kernel, { open: connect });
    const hello = await s.hello();
    expect(hello.capabilities).toEqual(
      expect.arrayContaining([
        'connect',
        'config',
        'configure.tracking',
        'configure.cython_magic',
        'goodbye',
        'record.first_line'
      ])
    );
    expect(hello.interval_ms).toBe(50);
    const config = dataOf(
      await s.messages.find(m => isType(m, 'config'), 5000, 'the config')
    ) as ConfigMessage;
    expect(config).toMatchObject({
      interval_ms: 50,
      tracking: 'off',
      cython_magic: 'cython',
      problems: []
    });
    // Tracking off from the start: no tracker was ever attached.
    const state =
      "__import__('cyscope.extension').extension.current_state(get_ipython())";
    expect(await kernel.evaluate(`${state}._tracker is None`)).toBe('True');
    expect(
      await kernel.evaluate(
        "type(get_ipython().magics_manager.magics['cell']['cython'].__self__).__module__"
      )
    ).toBe("'Cython.Build.IpythonMagic'");
    const untracked = await s.runCell('a = bytearray(1 << 20)');
    expect(untracked.cell.record.memory).toBeNull();

    // Switched in the running kernel, and reported.
    const configured = await s.send({
      v: 1,
      type: 'configure',
      interval_ms: 50,
      tracking: 'exact',
      cython_magic: 'cyscope'
    });
    const reply = await s.messages.find(
      m => m.parent_header.msg_id === configured && isType(m, 'config'),
      5000,
      'the config after configure'
    );
    expect(dataOf(reply)).toMatchObject({
      tracking: 'exact',
      cython_magic: 'cyscope'
    });
    const tracked = await s.runCell('\n  b = bytearray(3 << 20)  # kept\n');
    expect(tracked.cell.record.memory).toMatchObject({ exact: true });
    expect(tracked.cell.record.memory!.peak_bytes).toBeGreaterThan(3 << 20);
    expect(tracked.cell.record.first_line).toBe(
      'b = bytearray(3 << 20)  # kept'
    );

    // %unload_ext closes the comm saying why.
    await kernel.execute('%unload_ext cyscope');
    const close = await waitFor(
      () =>
        kernel.iopubLog.find(
          m =>
            m.header.msg_type === 'comm_close' &&
            (m.content as { comm_id?: string }).comm_id === s.commId
        ),
      5000,
      'the comm_close of the unload'
    );
    const data = (close.content as { data?: unknown }).data;
    expect(closeDataProblem(data)).toBeNull();
    expect(data).toEqual({ v: 1, type: 'goodbye', reason: 'unloaded' });
  });

  test('configure interval_ms 50 raises the sample rate', async () => {
    const s = await sharedSession();
    const configure = { v: 1, type: 'configure', interval_ms: 50 };
    expect(frontendMessageProblem(configure)).toBeNull();
    const configureId = await s.send(configure);
    // Shell messages are handled in order: once history is in, an error about
    // the configure would be too.
    await s.request({ v: 1, type: 'request_history' });
    expect(s.answersTo(configureId)).toEqual([]);

    try {
      const run = await s.runCell('import time; time.sleep(1)');
      expectWellFormedRun(run, 12);
      expect(median(intervals(run.runningSamples))).toBeLessThan(75);

      // A frontend attaching now is told the new interval; once it closes
      // its comm, the kernel stops sending to it.
      const other = await attach(s.client, { load: false });
      expect((await other.hello()).interval_ms).toBe(50);
      await other.messages.find(
        m => isType(m, 'sample'),
        5000,
        'the greeting sample'
      );
      await other.close();
      const heard = other.messages.received.length;
      const after = await s.runCell('import time; time.sleep(0.3)');
      expectWellFormedRun(after, 3);
      expect(other.messages.received.length).toBe(heard);
    } finally {
      await s.send({
        v: 1,
        type: 'configure',
        interval_ms: DEFAULT_INTERVAL_MS
      });
    }
  });

  test('after SIGKILL during a streaming cell, a restarted kernel greets and streams again', async () => {
    const kernel = await startKernel();
    const first = await attach(kernel);
    const firstHello = await first.hello();
    const oldPid = kernel.pid;
    expect(firstHello.pid).toBe(oldPid);

    const long = kernel.startExecute('import time; time.sleep(60)');
    const outcome = long.done.then(
      () => 'finished',
      (error: unknown) => error
    );
    let running = 0;
    await first.messages.find(
      m =>
        isType(m, 'sample') &&
        (dataOf(m) as SampleMessage).running &&
        ++running >= 3,
      10000,
      '3 running samples of the long cell'
    );

    await kernel.kill();
    expect(await outcome).toBeInstanceOf(KernelDiedError);
    expect(await kernel.ping(500)).toBe(false);
    const heardBeforeRestart = first.messages.received.length;

    await kernel.restart();
    expect(kernel.pid).not.toBe(oldPid);
    expect(await kernel.ping()).toBe(true);

    const second = await attach(kernel);
    const hello = await second.hello();
    expect(hello.pid).toBe(kernel.pid);
    expect(
      await kernel.evaluate(
        "'cyscope' in get_ipython().extension_manager.loaded"
      )
    ).toBe('True');
    const run = await second.runCell('import time; time.sleep(0.6)');
    expectWellFormedRun(run, 3);
    expect(run.executionCount).toBe(1); // a fresh kernel
    expect(first.messages.received.length).toBe(heardBeforeRestart);
  });
});
