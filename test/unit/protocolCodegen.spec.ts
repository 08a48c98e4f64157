/**
 * scripts/protocol-codegen.js and src/schemaRuntime.ts on made-up schemas:
 * the generated readers agree with JSON Schema (Ajv) on what they accept,
 * ignore fields they do not know, name problems by path, and the generator
 * refuses what its readers would not check.
 */
import Ajv2020 from 'ajv/dist/2020';
import * as ts from 'typescript';

import * as runtime from '../../src/schemaRuntime';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const codegen = require('../../scripts/protocol-codegen.js');

/** Generate, type-check-free transpile and load a module for `schema`. */
function load(schema: object, file = 'made.schema.json'): Record<string, any> {
  const source: string = codegen.generate(file, schema);
  const js = ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2020
    }
  }).outputText;
  const exports: Record<string, any> = {};
  const requireRuntime = (name: string) => {
    if (name === '../schemaRuntime') {
      return runtime;
    }
    throw new Error(`unexpected import ${name}`);
  };
  new Function('require', 'exports', js)(requireRuntime, exports);
  return exports;
}

const SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://cyscope.invalid/protocol/made.schema.json',
  title: 'test schema',
  oneOf: [{ $ref: '#/$defs/ping' }, { $ref: '#/$defs/report' }],
  $defs: {
    count: { type: 'integer', minimum: 0 },
    ping: {
      type: 'object',
      required: ['type', 'seq'],
      properties: {
        type: { const: 'ping' },
        seq: { $ref: '#/$defs/count' },
        note: { type: ['string', 'null'], maxLength: 5 }
      }
    },
    report: {
      type: 'object',
      required: ['type', 'items', 'level'],
      properties: {
        type: { const: 'report' },
        level: { enum: ['low', 'high'] },
        ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        items: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', minLength: 1, pattern: '^[a-z]+$' },
              size: { oneOf: [{ $ref: '#/$defs/count' }, { type: 'null' }] }
            }
          }
        },
        tags: { type: 'object', additionalProperties: { type: 'string' } },
        both: { allOf: [{ type: 'integer' }, { minimum: 3 }] },
        either: { anyOf: [{ type: 'boolean' }, { const: 'auto' }] }
      }
    }
  }
};

const SAMPLES: unknown[] = [
  { type: 'ping', seq: 0 },
  { type: 'ping', seq: 3, note: null, extra: { deep: [1] } },
  { type: 'ping', seq: -1 },
  { type: 'ping', seq: 1.5 },
  { type: 'ping', seq: 2, note: 'toolong' },
  { type: 'ping' },
  { type: 'pong', seq: 1 },
  { type: 7 },
  {
    type: 'report',
    level: 'low',
    items: [{ name: 'a', size: 1, future: true }],
    future: 'x'
  },
  { type: 'report', level: 'mid', items: [{ name: 'a' }] },
  { type: 'report', level: 'high', items: [] },
  { type: 'report', level: 'high', items: [{ name: 'A' }] },
  { type: 'report', level: 'high', items: [{ name: '' }] },
  { type: 'report', level: 'high', items: [{ name: 'b', size: -2 }] },
  { type: 'report', level: 'high', items: [{ name: 'b', size: null }] },
  { type: 'report', level: 'high', items: [{ name: 'b' }], ratio: 0 },
  { type: 'report', level: 'high', items: [{ name: 'b' }], ratio: 1 },
  { type: 'report', level: 'high', items: [{ name: 'b' }], tags: { a: 'x' } },
  { type: 'report', level: 'high', items: [{ name: 'b' }], tags: { a: 1 } },
  { type: 'report', level: 'high', items: [{ name: 'b' }], both: 2 },
  { type: 'report', level: 'high', items: [{ name: 'b' }], both: 3 },
  { type: 'report', level: 'high', items: [{ name: 'b' }], either: 'auto' },
  { type: 'report', level: 'high', items: [{ name: 'b' }], either: 'no' },
  { type: 'report', level: 'high', items: [{ name: 'b' }], either: false },
  null,
  [],
  'text',
  42
];

describe('generated readers', () => {
  const made = load(SCHEMA);
  const ajv = new Ajv2020({ strict: false }).compile(SCHEMA);

  it('accept exactly what JSON Schema accepts', () => {
    const disagreements = SAMPLES.filter(
      sample => ajv(sample) !== (made.checkMade(sample) === null)
    ).map(sample => `${JSON.stringify(sample)}: ${made.checkMade(sample)}`);
    expect(disagreements).toEqual([]);
    // The samples cover both answers.
    expect(SAMPLES.filter(s => ajv(s)).length).toBeGreaterThan(5);
    expect(SAMPLES.filter(s => !ajv(s)).length).toBeGreaterThan(5);
  });

  it('name the problem by its path, quoting the value briefly', () => {
    expect(made.checkMade({ type: 'ping', seq: -1 })).toBe(
      'ping.seq: expected an integer >= 0, got -1'
    );
    expect(made.checkMade({ type: 'ping' })).toBe("ping: missing field 'seq'");
    expect(made.checkMade({ type: 'pong' })).toBe('unknown type "pong"');
    expect(
      made.checkMade({
        type: 'report',
        level: 'low',
        items: [{ name: 'ok' }, { name: 'X'.repeat(1000) }]
      })
    ).toMatch(
      /^report\.items\[1\]\.name: expected a non-empty string matching \/\^\[a-z\]\+\$\/, got "X{60}"\.\.\. \(1,000 characters\)$/
    );
    expect(made.checkMade({ type: 'ping', seq: 1, note: 'abcdef' })).toBe(
      'ping.note: expected a string of at most 5 characters or null, got "abcdef"'
    );
    expect(made.checkMade([1, 2])).toBe(
      'expected a JSON object, got a list of 2 item(s)'
    );
  });

  it('export a checker and a type guard per definition', () => {
    expect(made.checkCount(3)).toBeNull();
    expect(made.isCount(-3)).toBe(false);
    expect(made.isPing({ type: 'ping', seq: 1, added_later: 1 })).toBe(true);
    expect(made.SCHEMA_ID).toBe(SCHEMA.$id);
  });

  it('emit TypeScript types for the definitions', () => {
    const source: string = codegen.generate('made.schema.json', SCHEMA);
    expect(source).toContain('export interface IPing {');
    expect(source).toContain('  note?: string | null;');
    expect(source).toContain('  level: "low" | "high";');
    expect(source).toContain('export type Count = number;');
    expect(source).toContain('  tags?: { [key: string]: string };');
    expect(source).toContain('export type Made = IPing | IReport;');
  });
});

describe('the generator refuses', () => {
  const refuses = (schema: object, reason: RegExp) =>
    expect(() => codegen.generate('bad.schema.json', schema)).toThrow(reason);

  it('additionalProperties: false (readers must take unknown fields)', () => {
    refuses(
      {
        type: 'object',
        properties: { a: { type: 'string' } },
        additionalProperties: false
      },
      /bad\.schema\.json \/: additionalProperties: false is not allowed/
    );
  });

  it('keywords its readers would not check', () => {
    refuses(
      { type: 'object', properties: { a: { if: { type: 'string' } } } },
      /\/properties\/a: keyword "if" is not supported/
    );
    refuses({ type: 'array', prefixItems: [] }, /keyword "prefixItems"/);
  });

  it('$refs it cannot follow', () => {
    refuses({ $ref: '#/$defs/missing', $defs: {} }, /unknown definition/);
    refuses({ $ref: 'https://example.org/x.json' }, /is not supported/);
  });
});

describe('schemaRuntime.brief', () => {
  it('never quotes a whole large value', () => {
    expect(runtime.brief('abc')).toBe('"abc"');
    expect(runtime.brief('y'.repeat(10 ** 6)).length).toBeLessThan(100);
    expect(runtime.brief({ a: 1, b: 2 })).toBe('an object with 2 field(s)');
    expect(runtime.brief(undefined)).toBe('undefined');
  });
});
