/**
 * The test client itself: message signing and verification (pure), and the
 * process-level failure modes the cyscope suite relies on being loud.
 */
import {
  JupyterMessage,
  KernelClient,
  decodeMessage,
  encodeMessage
} from '../support/kernel-client';

jest.setTimeout(120000);

const KEY = 'a'.repeat(64);

function sample(): JupyterMessage {
  return {
    channel: 'iopub',
    header: {
      msg_id: 'm1',
      msg_type: 'status',
      session: 's1',
      username: 'u',
      date: '2026-01-01T00:00:00.000Z',
      version: '5.3'
    },
    parent_header: {},
    metadata: {},
    content: { execution_state: 'idle' },
    buffers: []
  };
}

describe('wire format', () => {
  test('a correctly signed message decodes, after any routing prefix', () => {
    const frames = [Buffer.from('topic'), ...encodeMessage(sample(), KEY)];
    const decoded = decodeMessage(frames, KEY, 'iopub');
    expect(decoded).toEqual({ message: sample() });
  });

  test('a message signed with another key is rejected', () => {
    const frames = encodeMessage(sample(), 'b'.repeat(64));
    expect(decodeMessage(frames, KEY, 'iopub')).toEqual({
      error: expect.stringMatching(/bad signature/)
    });
  });

  test('a tampered content frame is rejected', () => {
    const frames = encodeMessage(sample(), KEY);
    frames[5] = Buffer.from(JSON.stringify({ execution_state: 'busy' }));
    expect(decodeMessage(frames, KEY, 'iopub')).toEqual({
      error: expect.stringMatching(/bad signature/)
    });
  });

  test('frames without the delimiter are rejected', () => {
    const frames = encodeMessage(sample(), KEY).slice(1);
    expect(decodeMessage(frames, KEY, 'shell')).toEqual({
      error: expect.stringMatching(/malformed/)
    });
  });
});

describe('process failures', () => {
  test('a missing interpreter fails start() quickly with the spawn error', async () => {
    const started = Date.now();
    await expect(
      KernelClient.start({ python: '/nonexistent/python3' })
    ).rejects.toThrow(/exited during startup[\s\S]*ENOENT/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
