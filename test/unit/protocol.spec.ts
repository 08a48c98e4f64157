/**
 * The shared protocol fixtures must pass the JSON Schema and the frontend's
 * parser alike; the invalid ones must fail both.
 */
import Ajv2020 from 'ajv/dist/2020';

import {
  brief,
  configureMessage,
  parseKernelMessage,
  ProtocolError,
  requestHistoryMessage
} from '../../src/protocol';
import { fixture, protocolJson } from '../support/protocol-files';

const schema = protocolJson('cyscope.schema.json');

const validate = new Ajv2020({ strict: false }).compile(schema);
const FRONTEND_TYPES = new Set(['configure', 'request_history']);

describe('protocol fixtures', () => {
  const valid = fixture('valid.json');
  const invalid = fixture('invalid.json');

  it('has fixtures of every message type', () => {
    const types = new Set(valid.map(m => (m as { type: string }).type));
    expect([...types].sort()).toEqual([
      'cell',
      'configure',
      'error',
      'hello',
      'history',
      'request_history',
      'sample'
    ]);
  });

  it.each(valid.map(m => [(m as { type: string }).type, m]))(
    'valid %s passes the schema',
    (_, message) => {
      expect(validate(message)).toBe(true);
    }
  );

  it.each(
    valid
      .filter(m => !FRONTEND_TYPES.has((m as { type: string }).type))
      .map(m => [(m as { type: string }).type, m])
  )('valid kernel message %s passes parseKernelMessage', (_, message) => {
    expect(parseKernelMessage(message)).toEqual(message);
  });

  it.each(invalid.map(m => [JSON.stringify(m), m]))(
    'invalid %s fails the schema and the parser',
    (_, message) => {
      expect(validate(message)).toBe(false);
      expect(() => parseKernelMessage(message)).toThrow(ProtocolError);
    }
  );

  it('frontend messages it builds pass the schema', () => {
    expect(validate(configureMessage(100))).toBe(true);
    expect(validate(configureMessage(1))).toBe(true); // clamped to 10
    expect(configureMessage(1).interval_ms).toBe(10);
    expect(configureMessage(1e9).interval_ms).toBe(60000);
    expect(validate(requestHistoryMessage())).toBe(true);
  });

  it('names the problem in its error', () => {
    expect(() => parseKernelMessage({ v: 1, type: 'sample' })).toThrow(
      "sample: missing field 't_ms'"
    );
    expect(() => parseKernelMessage({ v: 7, type: 'hello' })).toThrow(
      'unsupported protocol version 7'
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
    const typeError = reason({ v: 1, type: huge });
    expect(typeError).toMatch(/^unknown message type "x+"\.\.\. \(10,485,760/);
    expect(typeError.length).toBeLessThan(200);
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
