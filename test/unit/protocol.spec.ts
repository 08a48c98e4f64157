/**
 * The shared protocol fixtures must pass the JSON Schema and the frontend's
 * parser alike; the invalid ones must fail both. A newer kernel's messages
 * (future.json: extra fields everywhere) pass the schema as readers see it
 * and the parser, but not the strict view that senders are held to.
 */
import Ajv2020 from 'ajv/dist/2020';
import * as fs from 'fs';
import * as path from 'path';

import {
  brief,
  closeReason,
  configureMessage,
  connectMessage,
  FRONTEND_CAPABILITIES,
  FRONTEND_VERSION,
  sharedCapabilities,
  parseKernelMessage,
  ProtocolError,
  requestHistoryMessage,
  UnknownKernelMessage
} from '../../src/protocol';
import { fixture, readerSchema, senderSchema } from '../support/protocol-files';

const validate = new Ajv2020({ strict: false }).compile(
  readerSchema('cyscope.schema.json')
);
const validateSent = new Ajv2020({ strict: false }).compile(
  senderSchema('cyscope.schema.json')
);
// Sent by the frontend, or (goodbye) read from a comm close, not a comm message.
const NOT_KERNEL_MESSAGES = new Set([
  'configure',
  'request_history',
  'connect',
  'goodbye'
]);

const KERNEL_TYPES = new Set([
  'cell',
  'config',
  'error',
  'hello',
  'history',
  'sample'
]);

describe('protocol fixtures', () => {
  const valid = fixture('valid.json');
  const invalid = fixture('invalid.json');

  it('has fixtures of every message type', () => {
    const types = new Set(valid.map(m => (m as { type: string }).type));
    expect([...types].sort()).toEqual([
      'cell',
      'config',
      'configure',
      'connect',
      'error',
      'goodbye',
      'hello',
      'history',
      'request_history',
      'sample'
    ]);
  });

  it.each(valid.map(m => [(m as { type: string }).type, m]))(
    'valid %s passes the schema, also as senders are held to it',
    (_, message) => {
      expect(validate(message)).toBe(true);
      expect(validateSent(message)).toBe(true);
    }
  );

  it.each(fixture('future.json').map(m => [(m as { type: string }).type, m]))(
    "a newer peer's %s, with fields this side does not know, is read but would not be sent",
    (type, message) => {
      expect(validate(message)).toBe(true);
      expect(validateSent(message)).toBe(false);
      if (!NOT_KERNEL_MESSAGES.has(type as string)) {
        // Returned as received: the unknown fields stay, nothing reads them.
        expect(parseKernelMessage(message)).toBe(message);
      }
    }
  );

  it.each(
    valid
      .filter(m => !NOT_KERNEL_MESSAGES.has((m as { type: string }).type))
      .map(m => [(m as { type: string }).type, m])
  )('valid kernel message %s passes parseKernelMessage', (_, message) => {
    expect(parseKernelMessage(message)).toEqual(message);
  });

  it.each(invalid.map(m => [JSON.stringify(m), m]))(
    'invalid %s fails the schema, and the parser rejects or ignores it',
    (_, message) => {
      expect(validate(message)).toBe(false);
      const type = (message as { type?: unknown } | null)?.type;
      if (
        (message as { v?: unknown } | null)?.v === 1 &&
        typeof type === 'string' &&
        !KERNEL_TYPES.has(type)
      ) {
        // A type the frontend does not know (a newer kernel's): ignored.
        expect(parseKernelMessage(message)).toBeInstanceOf(
          UnknownKernelMessage
        );
      } else {
        expect(() => parseKernelMessage(message)).toThrow(ProtocolError);
      }
    }
  );

  it('frontend messages it builds pass the strict schema', () => {
    expect(validateSent(configureMessage(100))).toBe(true);
    expect(validateSent(configureMessage(1))).toBe(true); // clamped to 10
    expect(configureMessage(1).interval_ms).toBe(10);
    expect(configureMessage(1e9).interval_ms).toBe(60000);
    expect(validateSent(requestHistoryMessage())).toBe(true);
  });

  it('names the problem in its error', () => {
    expect(() => parseKernelMessage({ v: 1, type: 'sample' })).toThrow(
      "sample: missing field 't_ms'"
    );
    expect(() => parseKernelMessage({ v: 7, type: 'hello' })).toThrow(
      'unsupported protocol version 7'
    );
    expect(() => parseKernelMessage({ ...valid[2], rss_bytes: -5 })).toThrow(
      'sample.rss_bytes: expected an integer >= 0, got -5'
    );
  });

  it('ignores a message of a type it does not know, but not a malformed one of a known type', () => {
    // A newer kernel may send types this frontend has never heard of.
    const unknown = parseKernelMessage({ v: 1, type: 'progress', pct: 5 });
    expect(unknown).toBeInstanceOf(UnknownKernelMessage);
    expect((unknown as UnknownKernelMessage).type).toBe('"progress"');
    // Frontend → kernel types are not the kernel's to send.
    expect(parseKernelMessage({ v: 1, type: 'configure' })).toBeInstanceOf(
      UnknownKernelMessage
    );
    expect(() => parseKernelMessage({ v: 1, type: 'hello' })).toThrow(
      ProtocolError
    );
    // No field a kernel sends makes a known message pass for an unknown one.
    const sample = { ...valid[2], type: 'sample', unknownType: 'x' };
    expect(parseKernelMessage(sample)).toBe(sample);
    // A type that is no string is malformed, not unknown.
    expect(() => parseKernelMessage({ v: 1 })).toThrow(
      'unknown message type undefined'
    );
  });
});

describe('errors about hostile kernel messages', () => {
  const huge = 'x'.repeat(10 * 1024 * 1024);

  const reason = (data: unknown): string => {
    try {
      parseKernelMessage(data);
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError);
      return (error as Error).message;
    }
    throw new Error(`accepted ${brief(data)}`);
  };

  it('quote at most a little of a huge value', () => {
    const ignored = parseKernelMessage({ v: 1, type: huge });
    expect(ignored).toBeInstanceOf(UnknownKernelMessage);
    const { type } = ignored as UnknownKernelMessage;
    expect(type).toMatch(/^"x+"\.\.\. \(10,485,760/);
    expect(type.length).toBeLessThan(200);
    const versionError = reason({ v: huge, type: 'hello' });
    expect(versionError).toMatch(/^unsupported protocol version "x+"\.\.\./);
    expect(versionError.length).toBeLessThan(200);
  });

  it('describe containers instead of printing them', () => {
    expect(reason({ v: 1, type: ['hello'] })).toBe(
      'unknown message type a list of 1 item(s)'
    );
    expect(reason({ v: true, type: 'hello' })).toMatch(
      /^unsupported protocol version true/
    );
  });
});

describe('what the frontend says of itself', () => {
  it('its version is the package version', () => {
    const pkg = JSON.parse(
      fs.readFileSync(
        path.resolve(__dirname, '..', '..', 'package.json'),
        'utf8'
      )
    );
    expect(FRONTEND_VERSION).toBe(pkg.version);
  });

  it('a connect message it builds passes the strict schema', () => {
    const connect = connectMessage({
      intervalMs: 5,
      tracking: 'off',
      cythonMagic: 'cython'
    });
    expect(validateSent(connect)).toBe(true);
    expect(connect.interval_ms).toBe(10);
    expect(connect.capabilities).toEqual([...FRONTEND_CAPABILITIES]);
  });

  it('reads why the kernel closed the comm, and nothing else', () => {
    expect(closeReason({ v: 1, type: 'goodbye', reason: 'unloaded' })).toBe(
      'unloaded'
    );
    expect(
      closeReason({ v: 1, type: 'goodbye', reason: 'moving', extra: 1 })
    ).toBe('moving');
    expect(closeReason({})).toBeNull();
    expect(closeReason({ v: 1, type: 'goodbye' })).toBeNull();
    expect(closeReason(undefined)).toBeNull();
  });

  it('uses a feature only when the kernel lists it too', () => {
    expect([...sharedCapabilities(null)]).toEqual([]);
    expect([
      ...sharedCapabilities({ capabilities: ['config', 'teleport'] })
    ]).toEqual(['config']);
  });
});
