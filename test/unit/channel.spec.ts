/**
 * KernelChannel's decisions, with a scripted session and kernel (the real
 * ones are exercised by the e2e tests): what it runs in the kernel, when it
 * opens a comm, and when it leaves the kernel alone.
 */
import { Signal } from '@lumino/signaling';

import { IBackoff, KernelChannel } from '../../src/channel';
import { DEFAULT_SETTINGS, ICyscopeSettings } from '../../src/settings';

class FakeComm {
  opened: unknown = undefined;
  closed = false;
  isDisposed = false;
  onMsg: (msg: unknown) => void = () => undefined;
  onClose: (msg: unknown) => void = () => undefined;
  open(data: unknown): void {
    this.opened = data;
  }
  send(): void {
    // not used here
  }
  close(): void {
    this.closed = true;
  }
  dispose(): void {
    this.isDisposed = true;
  }
  /** The kernel closes the comm, with this data. */
  closedByKernel(data: unknown = {}): void {
    this.onClose({ content: { data } });
  }
}

class FakeKernel {
  status = 'idle';
  info = Promise.resolve({ language_info: { name: 'python' } });
  iopubMessage = new Signal<FakeKernel, unknown>(this);
  /** Whether cyscope is loaded in this (pretend) kernel. */
  loaded = false;
  executes: string[] = [];
  comms: FakeComm[] = [];

  requestExecute(content: {
    code: string;
    user_expressions?: Record<string, string>;
  }) {
    if (content.code === '%load_ext cyscope') {
      this.executes.push('load');
      this.loaded = true;
      return { done: Promise.resolve({ content: { status: 'ok' } }) };
    }
    this.executes.push('probe');
    return {
      done: Promise.resolve({
        content: {
          status: 'ok',
          user_expressions: {
            cyscope: {
              status: 'ok',
              data: { 'text/plain': this.loaded ? 'True' : 'False' }
            }
          }
        }
      })
    };
  }

  createComm(): FakeComm {
    const comm = new FakeComm();
    this.comms.push(comm);
    return comm;
  }

  /** The user runs code (it shows on IOPub as execute_input). */
  userRuns(code: string): void {
    this.iopubMessage.emit({
      header: { msg_type: 'execute_input' },
      content: { code }
    });
  }
}

class FakeSession {
  constructor(public kernel: FakeKernel) {}
  get session() {
    return { kernel: this.kernel };
  }
  kernelChanged = new Signal<FakeSession, unknown>(this);
  statusChanged = new Signal<FakeSession, string>(this);
  ready = Promise.resolve();
  status(s: string): void {
    this.kernel.status = s;
    this.statusChanged.emit(s);
  }
}

const BACKOFF: IBackoff = { firstMs: 1000, maxMs: 8000, stableMs: 30000 };

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await Promise.resolve();
  }
}

function setUp(settings: Partial<ICyscopeSettings> = {}) {
  const kernel = new FakeKernel();
  const session = new FakeSession(kernel);
  let current: ICyscopeSettings = { ...DEFAULT_SETTINGS, ...settings };
  const channel = new KernelChannel(session as any, {
    settings: () => current,
    backoff: BACKOFF
  });
  return {
    kernel,
    session,
    channel,
    set: (s: Partial<ICyscopeSettings>) => {
      current = { ...current, ...s };
    }
  };
}

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(() => {
  jest.useRealTimers();
});

describe('KernelChannel', () => {
  it('loads cyscope and opens the comm with a connect message carrying the settings', async () => {
    const { kernel, channel } = setUp({
      memoryTracking: false,
      cythonMagic: 'cython'
    });
    await flush();
    expect(kernel.executes).toEqual(['load']);
    expect(channel.state.status).toBe('ready');
    expect(kernel.comms[0].opened).toMatchObject({
      v: 1,
      type: 'connect',
      tracking: 'off',
      cython_magic: 'cython',
      interval_ms: 100
    });
  });

  it('with loading off, only asks whether cyscope is loaded, and attaches when the user loads it', async () => {
    const { kernel, session, channel } = setUp({ autoLoad: false });
    await flush();
    expect(kernel.executes).toEqual(['probe']);
    expect(channel.state.status).toBe('off');
    // Idle after idle: nothing is run.
    for (let i = 0; i < 5; i++) {
      session.status('busy');
      session.status('idle');
    }
    await flush();
    expect(kernel.executes).toEqual(['probe']);
    // The user loads it; the next idle finds it.
    kernel.userRuns('%load_ext cyscope');
    kernel.loaded = true;
    session.status('idle');
    await flush();
    expect(kernel.executes).toEqual(['probe', 'probe']);
    expect(channel.state.status).toBe('ready');
    expect(kernel.comms).toHaveLength(1);
  });

  it('turning loading on loads cyscope into a kernel left alone', async () => {
    const { kernel, channel, set } = setUp({ autoLoad: false });
    await flush();
    set({ autoLoad: true });
    channel.settingsChanged();
    await flush();
    expect(kernel.executes).toEqual(['probe', 'load']);
    expect(channel.state.status).toBe('ready');
  });

  it('respects %unload_ext until the user loads it again or the kernel restarts', async () => {
    const { kernel, session, channel } = setUp();
    await flush();
    kernel.loaded = false;
    kernel.comms[0].closedByKernel({
      v: 1,
      type: 'goodbye',
      reason: 'unloaded'
    });
    expect(channel.state.status).toBe('unloaded');
    for (let i = 0; i < 5; i++) {
      session.status('busy');
      session.status('idle');
      jest.advanceTimersByTime(60000);
    }
    // A dropped websocket: the same process, still unloaded.
    session.status('unknown');
    session.status('idle');
    await flush();
    expect(kernel.executes).toEqual(['load', 'probe']);
    expect(kernel.comms).toHaveLength(1);
    expect(channel.state.status).toBe('unloaded');
    // Code that does not name cyscope changes nothing.
    kernel.userRuns('x = 1');
    session.status('idle');
    await flush();
    expect(kernel.executes).toEqual(['load', 'probe']);
    // The user loads it again: attached without a load of ours.
    kernel.userRuns('%load_ext cyscope');
    kernel.loaded = true;
    session.status('idle');
    await flush();
    expect(kernel.executes).toEqual(['load', 'probe', 'probe']);
    expect(channel.state.status).toBe('ready');
    // Unloaded again, then a restart: a new process gets cyscope as usual.
    kernel.comms[1].closedByKernel({
      v: 1,
      type: 'goodbye',
      reason: 'unloaded'
    });
    kernel.loaded = false;
    session.status('restarting');
    session.status('idle');
    await flush();
    expect(kernel.executes.slice(-1)).toEqual(['load']);
    expect(channel.state.status).toBe('ready');
  });

  it('ignores kernel messages of an unknown type quietly, and reports malformed ones of a known type', async () => {
    const { kernel, channel } = setUp();
    await flush();
    expect(channel.state.status).toBe('ready');
    const received: unknown[] = [];
    const rejected: string[] = [];
    channel.received.connect((_, m) => received.push(m));
    channel.rejected.connect((_, r) => rejected.push(r));
    const debug = jest.spyOn(console, 'debug').mockImplementation(() => {});
    try {
      const comm = kernel.comms[0];
      const deliver = (data: unknown) => comm.onMsg({ content: { data } });
      // A newer kernel's message: no error, no message, a debug line.
      deliver({ v: 1, type: 'progress', pct: 50 });
      expect(rejected).toEqual([]);
      expect(received).toEqual([]);
      expect(debug).toHaveBeenCalledTimes(1);
      expect(String(debug.mock.calls[0][0])).toContain('"progress"');
      // A known type with a bad field, or a type that is no string: errors.
      deliver({ v: 1, type: 'sample', rss_bytes: -1 });
      deliver({ v: 1, type: 7 });
      expect(rejected).toHaveLength(2);
      expect(rejected[0]).toMatch(/^sample: /);
      expect(rejected[1]).toBe('unknown message type 7');
      expect(received).toEqual([]);
      expect(channel.state.status).toBe('ready');
    } finally {
      debug.mockRestore();
    }
  });

  it('backs off after a refused or closed comm instead of retrying on every idle', async () => {
    const { kernel, session, channel } = setUp();
    await flush();
    const idle = async (times: number) => {
      for (let i = 0; i < times; i++) {
        session.status('busy');
        session.status('idle');
      }
      await flush();
    };
    const refuse = () => kernel.comms[kernel.comms.length - 1].closedByKernel();

    refuse();
    expect(channel.state).toEqual({
      status: 'retrying',
      detail: 'the kernel closed the cyscope comm; trying again in 1 s'
    });
    await idle(10);
    expect(kernel.comms).toHaveLength(1);
    jest.advanceTimersByTime(1000);
    await flush();
    expect(kernel.comms).toHaveLength(2);

    refuse();
    expect(channel.state.detail).toMatch(/in 2 s/);
    jest.advanceTimersByTime(1999);
    await idle(10);
    expect(kernel.comms).toHaveLength(2);
    jest.advanceTimersByTime(1);
    await flush();
    expect(kernel.comms).toHaveLength(3);

    refuse();
    expect(channel.state.detail).toMatch(/in 4 s/);
    jest.advanceTimersByTime(4000);
    await flush();
    refuse();
    expect(channel.state.detail).toMatch(/in 8 s/);
    jest.advanceTimersByTime(8000);
    await flush();
    refuse();
    // Capped.
    expect(channel.state.detail).toMatch(/in 8 s/);
    jest.advanceTimersByTime(8000);
    await flush();
    expect(channel.state.status).toBe('ready');
    // A comm that stays open wipes the slate.
    jest.advanceTimersByTime(BACKOFF.stableMs);
    refuse();
    expect(channel.state.detail).toMatch(/in 1 s/);
  });

  it('while busy at the retry time, connects at the next idle', async () => {
    const { kernel, session } = setUp();
    await flush();
    kernel.comms[0].closedByKernel();
    session.status('busy');
    jest.advanceTimersByTime(5000);
    await flush();
    expect(kernel.comms).toHaveLength(1);
    session.status('idle');
    await flush();
    expect(kernel.comms).toHaveLength(2);
  });

  it('loads on request, whatever the settings or an unload said', async () => {
    const { kernel, channel } = setUp({ autoLoad: false });
    await flush();
    expect(channel.state.status).toBe('off');
    await channel.load();
    await flush();
    expect(kernel.executes).toEqual(['probe', 'load']);
    expect(channel.state.status).toBe('ready');
  });
});
