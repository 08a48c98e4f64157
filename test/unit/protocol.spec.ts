/**
 * The shared protocol fixtures must pass the JSON Schema and the frontend's
 * parser alike; the invalid ones must fail both.
 */
import Ajv2020 from 'ajv/dist/2020';

import {
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
