import { MAX_SAMPLES, MemoryModel } from '../../src/model';
import { FRONTEND_CAPABILITIES } from '../../src/protocol';
import { FakeChannel } from './fakeChannel';
import { hello, record, sample } from './messages';

describe('MemoryModel', () => {
  let channel: FakeChannel;
  let model: MemoryModel;
  let changes: number;

  beforeEach(() => {
    channel = new FakeChannel();
    model = new MemoryModel(channel, 100);
    changes = 0;
    model.changed.connect(() => changes++);
  });

  it('asks for the interval and the history on handshake', () => {
    model.handshake();
    expect(channel.sent).toEqual([
      { v: 1, type: 'configure', interval_ms: 100 },
      { v: 1, type: 'request_history' }
    ]);
  });

  it('tracks the latest sample and the running cell', () => {
    channel.emit(sample(10, true, 4));
    expect(model.latest?.rss_bytes).toBe(10);
    expect(model.runningCell).toBe(4);
    channel.emit(sample(20, false, 4));
    expect(model.runningCell).toBeNull();
    expect(changes).toBe(2);
  });

  it('keeps a bounded window of samples', () => {
    for (let i = 0; i < MAX_SAMPLES + 50; i++) {
      channel.emit(sample(i));
    }
    expect(model.samples.length).toBe(MAX_SAMPLES);
    expect(model.samples[0].rss_bytes).toBe(50);
  });

  it('adds rows in start order and merges an overlapping history', () => {
    channel.emit({ v: 1, type: 'cell', record: record(2) });
    channel.emit({ v: 1, type: 'cell', record: record(1) });
    expect(model.rows.map(r => r.execution_count)).toEqual([1, 2]);
    channel.emit({
      v: 1,
      type: 'history',
      records: [record(1), record(2), record(3)]
    });
    expect(model.rows.map(r => r.execution_count)).toEqual([1, 2, 3]);
  });

  it('starts afresh when a new kernel process says hello', () => {
    channel.emit(hello(100));
    channel.emit({ v: 1, type: 'cell', record: record(1) });
    channel.emit(hello(100)); // same process, a second comm
    expect(model.rows.length).toBe(1);
    channel.emit(hello(200)); // restarted kernel
    expect(model.rows.length).toBe(0);
    expect(model.samples.length).toBe(0);
  });

  it('reports kernel errors and rejected messages', () => {
    channel.emit({ v: 1, type: 'error', message: 'unknown message type' });
    expect(model.lastError).toBe('unknown message type');
    channel.reject('sample: missing field');
    expect(model.lastError).toContain('malformed message');
    expect(model.lastError).toContain('sample: missing field');
    // A new connection's greeting clears what was said of the old one.
    channel.emit(hello(100));
    expect(model.lastError).toBeNull();
  });

  it('sends a configure message when the interval changes', () => {
    model.intervalMs = 250;
    expect(channel.sent).toEqual([
      { v: 1, type: 'configure', interval_ms: 250 }
    ]);
  });

  it('sends the kernel only the settings it says it understands', () => {
    model.settings = {
      intervalMs: 100,
      tracking: 'off',
      cythonMagic: 'cython'
    };
    // No hello yet, or a kernel without capabilities: the interval only.
    expect(channel.sent.pop()).toEqual({
      v: 1,
      type: 'configure',
      interval_ms: 100
    });
    channel.emit({
      ...hello(100),
      capabilities: ['configure.tracking', 'teleport']
    });
    expect([...model.capabilities]).toEqual(['configure.tracking']);
    model.settings = {
      intervalMs: 50,
      tracking: 'exact',
      cythonMagic: 'cython'
    };
    expect(channel.sent.pop()).toEqual({
      v: 1,
      type: 'configure',
      interval_ms: 50,
      tracking: 'exact'
    });
    channel.emit({ ...hello(100), capabilities: [...FRONTEND_CAPABILITIES] });
    model.handshake();
    expect(channel.sent.slice(-2)).toEqual([
      {
        v: 1,
        type: 'configure',
        interval_ms: 50,
        tracking: 'exact',
        cython_magic: 'cython'
      },
      { v: 1, type: 'request_history' }
    ]);
  });

  it("keeps the kernel's config and forgets it (and the capabilities) when the comm goes", () => {
    channel.emit({ ...hello(100), capabilities: ['config'] });
    channel.emit({
      v: 1,
      type: 'config',
      interval_ms: 100,
      tracking: 'off',
      tracking_modes: ['off'],
      cython_magic: 'cyscope',
      problems: ['memory tracking is off: no native library']
    });
    expect(model.config?.tracking).toBe('off');
    channel.setState('waiting');
    expect(model.config).toBeNull();
    expect(model.capabilities.size).toBe(0);
  });

  it('names a row by its first line, from the kernel or else from the notebook', () => {
    model.lookupFirstLine = id =>
      id === 'cell-2' ? 'from the notebook' : null;
    const withLine = { ...record(1), first_line: 'from the kernel' };
    expect(model.firstLine(withLine)).toBe('from the kernel');
    expect(model.firstLine(record(2))).toBe('from the notebook');
    expect(model.firstLine({ ...record(3), cell_id: null })).toBeNull();
  });

  it('counts row changes, not samples', () => {
    const before = model.rowsVersion;
    channel.emit(sample(1));
    expect(model.rowsVersion).toBe(before);
    channel.emit({ v: 1, type: 'cell', record: record(1) });
    expect(model.rowsVersion).toBe(before + 1);
  });
});
