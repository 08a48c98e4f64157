/**
 * Breakpoints in %%cython cells over the real Jupyter protocol, speaking DAP exactly as
 * JupyterLab's debugger does (see debugger-client.ts), against a real ipykernel with
 * debugpy: the project venv (ipykernel 7, Cython 3) and Debian's python3 (ipykernel
 * 6.17, Cython 0.29). Each case of the feature's acceptance list is one test here.
 */
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

import { DEFAULT_PYTHON, KernelClient } from '../support/kernel-client';
import { CyscopeSession, SampleMessage } from './cyscope-session';
import { DapClient, DapEvent, finished, Variable } from './debugger-client';

jest.setTimeout(300000);

// A compile takes a second on a quiet machine; give a busy one room.
const BUILD = { timeoutMs: 180000 };

// Cell line 1 is the %%cython line, as JupyterLab numbers the cell.
const LOOP = [
  '%%cython',
  'def tri(int n):',
  '    cdef int i, s = 0',
  '    for i in range(n):',
  '        s += i', // line 5
  '    return s'
].join('\n');

const TYPES = [
  '%%cython',
  'cdef struct Point:',
  '    double x',
  '    int y',
  '',
  'def values(double[:] data):',
  '    cdef Point pt',
  '    cdef double *p = &data[1]',
  '    cdef double scale = 2.0',
  '    pt.x = 1.5',
  '    pt.y = 7',
  '    return pt.x * scale + p[0]' // line 12
].join('\n');

const CALLER =
  'print("before the loop", flush=True)\ntotal = tri(4)\nprint("total", total)';

async function start(python: string): Promise<KernelClient> {
  const client = await KernelClient.start({
    python,
    env: {
      CYSCOPE_CACHE_DIR: join(mkdtempSync(join(tmpdir(), 'cyscope-dbg-')), 'c')
    }
  });
  const load = await client.execute('%load_ext cyscope', {
    silent: true,
    storeHistory: false
  });
  expect(load.reply.content.status).toBe('ok');
  return client;
}

function byName(vars: Variable[]): Record<string, Variable> {
  return Object.fromEntries(vars.map(v => [v.name, v]));
}

describe.each([
  ['project venv', DEFAULT_PYTHON],
  ['Debian python3', '/usr/bin/python3']
])('breakpoints in %%cython cells over DAP on %s', (_, python) => {
  let client: KernelClient;
  let dap: DapClient;
  let loopPath: string;
  let cython3: boolean; // else 0.29

  beforeAll(async () => {
    client = await start(python);
    dap = new DapClient(client);
    cython3 =
      (await client.evaluate("__import__('Cython').__version__[0]")) === "'3'";
  });

  afterAll(async () => {
    dap?.dispose();
    await client?.shutdown();
  });

  /** Run `code` and wait for the stop it must reach. */
  async function runToStop(
    code: string
  ): Promise<{ run: Promise<any>; stopped: DapEvent }> {
    dap.drain();
    const run = client.startExecute(code, { timeoutMs: 240000 }).done;
    const stopped = await dap.nextEvent('stopped', 60000);
    return { run, stopped };
  }

  /** The debugger on and LOOP built with probes (each test can run alone). */
  async function prepare(): Promise<void> {
    const info = await dap.request('debugInfo');
    if (!info.body.isStarted) {
      await dap.start();
    }
    if (!loopPath) {
      loopPath = (await dap.setBreakpoints(LOOP, [])).path;
      expect((await client.execute(LOOP, BUILD)).reply.content.status).toBe(
        'ok'
      );
    }
  }

  async function resume(threadId: number, command = 'continue') {
    const reply = await dap.request(command, { threadId });
    expect(reply.success).toBe(true);
  }

  it('a cell built before the debugger was on answers verified:false, saying to run it again', async () => {
    const plain = await client.execute(LOOP.replace('tri', 'tri_plain'), BUILD);
    expect(plain.reply.content.status).toBe('ok');
    await dap.start();
    const { reply } = await dap.setBreakpoints(
      LOOP.replace('tri', 'tri_plain'),
      [{ line: 5 }]
    );
    const [bp] = reply.body.breakpoints;
    expect(bp.verified).toBe(false);
    expect(bp.message).toMatch(
      /built without the debugger; run the cell again/
    );
  });

  it('stops on the loop line with i = 0 of type int; next and continue give i = 1; the calling cell is the next frame', async () => {
    if ((await dap.request('debugInfo')).body.isStarted !== true) {
      await dap.start();
    }
    const set = await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    loopPath = set.path;
    // Not built yet: pending, and it says so.
    expect(set.reply.body.breakpoints[0].verified).toBe(false);
    dap.drain();
    const build = await client.execute(LOOP, BUILD);
    expect(build.reply.content.status).toBe('ok');
    const changed = await dap.nextEvent('breakpoint');
    expect(changed.body.breakpoint).toMatchObject({ verified: true, line: 5 });

    const callerPath = (await dap.request('dumpCell', { code: CALLER })).body
      .sourcePath;
    const t0 = Date.now();
    const { run, stopped } = await runToStop(CALLER);
    expect(stopped.body.reason).toBe('breakpoint');
    expect(Date.now() - t0).toBeLessThan(30000);
    const tid = stopped.body.threadId;
    // Output printed before the stop has already arrived.
    expect(
      client.iopubLog.some(
        m =>
          m.header.msg_type === 'stream' &&
          String(m.content.text).includes('before the loop')
      )
    ).toBe(true);

    const frames = await dap.frames(tid);
    expect(frames[0]).toMatchObject({ name: 'tri', line: 5 });
    expect(frames[0].source.path).toBe(loopPath);
    expect(frames[1]).toMatchObject({ name: '<module>', line: 2 });
    expect(frames[1].source.path).toBe(callerPath);
    const scopes = await dap.scopes(frames[0].id);
    expect(scopes.map((s: any) => s.name)).toEqual(['Locals', 'Globals']);
    const locals = byName(await dap.variables(scopes[0].variablesReference));
    expect(locals.i).toMatchObject({ value: '0', type: 'int' });
    expect(locals.n).toMatchObject({ value: '4', type: 'int' });

    const ev = await dap.evaluate('i + n * 10', frames[0].id);
    expect(ev.body.result).toBe('40');
    // The Python frame below shows its locals too (the calling cell's: its globals).
    const pyScopes = await dap.scopes(frames[1].id);
    expect(pyScopes[0].name).toBe('Locals');
    const pyLocals = byName(
      await dap.variables(pyScopes[0].variablesReference)
    );
    expect(pyLocals.tri?.value).toMatch(/tri/);

    // Next: Cython 3 marks the loop header on every pass (line 4, after it has set
    // i = 1); Cython 0.29 marks it once, so the next line is line 5 of the next pass.
    await resume(tid, 'next');
    const step = await dap.nextEvent('stopped');
    const stepped = (await dap.frames(tid))[0];
    const afterNext = (await dap.locals(tid)).i.value;
    expect([stepped.line, afterNext]).toEqual(cython3 ? [4, '1'] : [5, '1']);
    if (cython3) {
      expect(step.body.reason).toBe('step');
    }
    // Continue: the breakpoint on the next pass.
    await resume(tid, 'continue');
    await dap.nextEvent('stopped');
    expect((await dap.frames(tid))[0].line).toBe(5);
    expect((await dap.locals(tid)).i.value).toBe(cython3 ? '1' : '2');

    await dap.setBreakpoints(LOOP, []);
    await resume(tid);
    const done = await finished(run);
    expect(done.reply.content.status).toBe('ok');
    expect(await client.evaluate('total')).toBe('6');
  });

  it('a condition i == 500 stops once, there; a hit count of 3 stops on the third pass', async () => {
    await prepare();
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    // JupyterLab's own requests carry lines only; cyscope's gutter command sends these.
    let reply = await dap.request('setBreakpoints', {
      source: { path: loopPath },
      breakpoints: [{ line: 5, condition: 'i == 500' }],
      sourceModified: false
    });
    expect(reply.body.breakpoints[0].verified).toBe(true);
    let { run, stopped } = await runToStop('cond = tri(1000)');
    expect((await dap.locals(stopped.body.threadId)).i.value).toBe('500');
    await resume(stopped.body.threadId);
    expect((await finished(run)).reply.content.status).toBe('ok');
    expect(await client.evaluate('cond')).toBe(String((999 * 1000) / 2));

    reply = await dap.request('setBreakpoints', {
      source: { path: loopPath },
      breakpoints: [{ line: 5, hitCondition: '3' }],
      sourceModified: false
    });
    ({ run, stopped } = await runToStop('hits = tri(10)'));
    expect((await dap.locals(stopped.body.threadId)).i.value).toBe('2');
    await dap.setBreakpoints(LOOP, []);
    await resume(stopped.body.threadId);
    expect((await finished(run)).reply.content.status).toBe('ok');
  });

  it('a struct, a double* and a memoryview local show their values', async () => {
    await prepare();
    const { path } = await dap.setBreakpoints(TYPES, [{ line: 12 }]);
    expect((await client.execute(TYPES, BUILD)).reply.content.status).toBe(
      'ok'
    );
    const { run, stopped } = await runToStop(
      'import numpy as np\nv = values(np.arange(5, dtype=np.float64) / 2)'
    );
    const tid = stopped.body.threadId;
    const locals = await dap.locals(tid);
    expect(locals.pt).toMatchObject({
      type: 'Point',
      value: 'Point {x=1.5, y=7}'
    });
    const fields = byName(await dap.variables(locals.pt.variablesReference));
    expect(fields.x).toMatchObject({ value: '1.5', type: 'double' });
    expect(locals.p.type).toBe('double *');
    expect(locals.p.value).toMatch(/^0x[0-9a-f]+ → 0.5$/);
    expect(locals.data.value).toBe(
      'double[:] shape=(5,) [0.0, 0.5, 1.0, 1.5, 2.0]'
    );
    const items = byName(await dap.variables(locals.data.variablesReference));
    expect(items.shape.value).toBe('(5,)');
    expect(items['[4]'].value).toBe('2.0');
    expect(locals.scale).toMatchObject({ value: '2.0', type: 'double' });
    await dap.setBreakpoints(TYPES, []);
    void path;
    await resume(tid);
    expect((await finished(run)).reply.content.status).toBe('ok');
    expect(await client.evaluate('v')).toBe('3.5');
  });

  it('a breakpoint on a line that cannot stop moves to the next one, and the reply says where', async () => {
    await prepare();
    const { reply } = await dap.setBreakpoints(LOOP, [{ line: 2 }]);
    const [bp] = reply.body.breakpoints;
    expect(bp).toMatchObject({ verified: true, line: 3 });
    expect(bp.message).toMatch(/moved from line 2 to line 3/);
    // debugInfo, which JupyterLab restores its breakpoints from, has the moved line.
    const info = await dap.request('debugInfo');
    const entry = info.body.breakpoints.find((b: any) => b.source === loopPath);
    expect(entry.breakpoints).toEqual([{ line: 3 }]);
    await dap.setBreakpoints(LOOP, []);
  });

  it('while stopped the kernel is healthy: heartbeat, control, live memory samples, the heap by cell', async () => {
    await prepare();
    const session = await CyscopeSession.attach(client, { load: false });
    await session.hello();
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    const { run, stopped } = await runToStop('health = tri(3)');
    const tid = stopped.body.threadId;
    expect(await client.ping()).toBe(true);
    const info = await client.controlRequest('kernel_info_request', {});
    expect(info.header.msg_type).toBe('kernel_info_reply');
    const debugInfo = await dap.request('debugInfo');
    expect(debugInfo.body.stoppedThreads).toContain(tid);
    // The memory panel's live figures keep coming while the cell is stopped.
    const before = session.messages.received.length;
    await new Promise(ok => setTimeout(ok, 800));
    const samples = session.messages.received
      .slice(before)
      .map(m => m.content.data as SampleMessage)
      .filter(d => d.type === 'sample' && d.running);
    expect(samples.length).toBeGreaterThanOrEqual(2);
    const [top] = await dap.frames(tid);
    const heap = await dap.evaluate(
      '__import__("cyscope").memory.live_by_cell()',
      top.id
    );
    expect(heap.success).toBe(true);
    expect(heap.body.type).toBe('dict');
    await dap.setBreakpoints(LOOP, []);
    await resume(tid);
    expect((await finished(run)).reply.content.status).toBe('ok');
    session.dispose();
  });

  it('stale and malformed requests get success:false, never a hang', async () => {
    await prepare();
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    const { run, stopped } = await runToStop('stale = tri(2)');
    const tid = stopped.body.threadId;
    const [top] = await dap.frames(tid);
    const [locals] = await dap.scopes(top.id);
    expect(
      (await dap.request('scopes', { frameId: top.id + 999999 })).success
    ).toBe(false);
    expect((await dap.raw({ type: 'request', seq: 1 })).success).toBe(false);
    const bad = await dap.request('setBreakpoints', {
      source: { path: loopPath },
      breakpoints: 'line 5'
    });
    expect(bad.success).toBe(false);
    expect((await dap.request('evaluate', { frameId: top.id })).success).toBe(
      false
    );
    await dap.setBreakpoints(LOOP, []);
    await resume(tid);
    await dap.nextEvent('continued');
    // After continue: the thread, its frames and its variables are gone.
    for (const [command, args] of [
      ['stackTrace', { threadId: tid }],
      ['scopes', { frameId: top.id }],
      ['variables', { variablesReference: locals.variablesReference }],
      ['continue', { threadId: tid }],
      ['next', { threadId: tid }]
    ] as const) {
      const reply = await dap.request(command, args);
      expect(reply.success).toBe(false);
      expect(reply.message).toBeTruthy();
    }
    expect((await finished(run)).reply.content.status).toBe('ok');
  });

  it('a Python breakpoint in a Python cell still stops through debugpy, after Cython stops', async () => {
    await prepare();
    const code =
      'def py_side(k):\n    doubled = k * 2\n    return doubled\nresult = py_side(21)';
    const { reply } = await dap.setBreakpoints(code, [{ line: 3 }]);
    expect(reply.body.breakpoints[0].verified).toBe(true);
    const { run, stopped } = await runToStop(code);
    expect(stopped.body.reason).toBe('breakpoint');
    const tid = stopped.body.threadId;
    expect(tid).toBeLessThan(2 ** 40); // debugpy's thread, not cyscope's
    const frames = await dap.frames(tid);
    expect(frames[0]).toMatchObject({ name: 'py_side', line: 3 });
    const locals = byName(
      await dap.variables(
        (await dap.scopes(frames[0].id))[0].variablesReference
      )
    );
    expect(locals.doubled.value).toBe('42');
    await dap.setBreakpoints(code, []);
    await resume(tid);
    expect((await finished(run)).reply.content.status).toBe('ok');
  });

  it('1,000 stops in a loop leave the kernel and the tracker flat', async () => {
    await prepare();
    const measure = async (): Promise<number[]> => {
      const rss = Number(
        await client.evaluate(
          'int(open("/proc/self/statm").read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")'
        )
      );
      const tracker = Number(
        await client.evaluate(
          '__import__("cyscope").memory.stats().get("tracker_bytes", 0)'
        )
      );
      return [rss, tracker];
    };
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    let sizes: number[][] = [];
    for (const round of [0, 1]) {
      const count = round === 0 ? 200 : 1000;
      const { run, stopped } = await runToStop(`many = tri(${count})`);
      let tid = stopped.body.threadId;
      for (let k = 0; k < count; k++) {
        if (k > 0) {
          tid = (await dap.nextEvent('stopped')).body.threadId;
        }
        if (k % 50 === 0) {
          const locals = await dap.locals(tid);
          expect(locals.i.value).toBe(String(k));
        }
        await resume(tid);
      }
      expect((await finished(run)).reply.content.status).toBe('ok');
      sizes.push(await measure());
    }
    const [warm, after] = sizes;
    expect(after[0] - warm[0]).toBeLessThan(8 * 1024 * 1024);
    expect(after[1] - warm[1]).toBeLessThan(2 * 1024 * 1024);
    await dap.setBreakpoints(LOOP, []);
    sizes = [];
  });

  it('interrupt while stopped ends the cell with KeyboardInterrupt; the kernel carries on', async () => {
    await prepare();
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    const { run, stopped } = await runToStop('interrupted = tri(5)');
    process.kill(client.pid!, 'SIGINT');
    const continued = await dap.nextEvent('continued');
    expect(continued.body.threadId).toBe(stopped.body.threadId);
    const done = await finished(run);
    expect(done.reply.content.status).toBe('error');
    expect(done.reply.content.ename).toBe('KeyboardInterrupt');
    const error = done.iopub.find(m => m.header.msg_type === 'error');
    const trace = (error?.content.traceback as string[]).join('\n');
    expect(trace).not.toMatch(/cyscope[/\\]debugger/);
    expect(await client.ping()).toBe(true);
    await dap.setBreakpoints(LOOP, []);
    expect((await client.execute('after = tri(3)')).reply.content.status).toBe(
      'ok'
    );
    expect(await client.evaluate('after')).toBe('3');
  });

  it('a restart while stopped: the kernel shuts down at once and the new one has nothing stopped', async () => {
    await prepare();
    await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    const { run: cut, stopped } = await runToStop('restarted = tri(5)');
    expect(stopped.body.reason).toBe('breakpoint');
    cut.catch(() => undefined); // the kernel goes away before (or just after) it replies
    const t0 = Date.now();
    await client.controlRequest('shutdown_request', { restart: true }, 10000);
    // A stopped cell would keep the kernel from ever exiting (jupyter_server kills it
    // after a wait); cyscope ends the stop first. A busy machine can take seconds.
    const exited = await new Promise<boolean>(ok => {
      const check = setInterval(() => {
        if (!client.isAlive) {
          clearInterval(check);
          ok(true);
        } else if (Date.now() - t0 > 20000) {
          clearInterval(check);
          ok(false);
        }
      }, 50);
    });
    if (!exited) {
      console.log(client.processOutput.slice(-4000));
    }
    expect(exited).toBe(true);
    await client.restart();
    const load = await client.execute('%load_ext cyscope', {
      silent: true,
      storeHistory: false
    });
    expect(load.reply.content.status).toBe('ok');
    dap.drain();
    const info = await dap.request('debugInfo');
    expect(info.body.isStarted).toBe(false);
    expect(info.body.stoppedThreads).toEqual([]);
    await dap.start();
    const { reply } = await dap.setBreakpoints(LOOP, [{ line: 5 }]);
    expect(reply.body.breakpoints[0].verified).toBe(false); // a new kernel: run the cell
    expect((await client.execute(LOOP, BUILD)).reply.content.status).toBe('ok');
    const { run, stopped: again } = await runToStop('fresh = tri(2)');
    await dap.setBreakpoints(LOOP, []);
    await resume(again.body.threadId);
    expect((await finished(run)).reply.content.status).toBe('ok');
  });
});
