/**
 * Every protocol/*.schema.json against its generated reader
 * (src/generated/<name>.ts): on every fixture of that schema, the reader
 * and the JSON Schema (as readers see it, through Ajv) agree. Also: the
 * generated files are those the schemas give today.
 */
import Ajv2020 from 'ajv/dist/2020';
import * as fs from 'fs';
import * as path from 'path';

import {
  fixture,
  PROTOCOL_DIR,
  readerSchema,
  schemaFiles,
  senderSchema
} from '../support/protocol-files';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const codegen = require('../../scripts/protocol-codegen.js');

const GENERATED_DIR = path.resolve(__dirname, '..', '..', 'src', 'generated');

type Reader = (value: unknown) => string | null;

function baseOf(schemaFile: string): string {
  return schemaFile.slice(0, -'.schema.json'.length);
}

/** The generated reader of a schema itself (`checkDiagnostics`...). */
function readerOf(schemaFile: string): Reader {
  const base = baseOf(schemaFile);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const generated = require(path.join(GENERATED_DIR, base));
  const check = generated[`check${codegen.pascal(base)}`];
  expect(typeof check).toBe('function');
  return check;
}

function fixturePrefix(schemaFile: string): string {
  const base = baseOf(schemaFile);
  return base === 'cyscope' ? '' : `${base}-`;
}

describe.each(schemaFiles().map(f => [f]))('%s', schemaFile => {
  const prefix = fixturePrefix(schemaFile);
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const schemaSays = ajv.compile(readerSchema(schemaFile));
  const senderMay = new Ajv2020({ strict: false }).compile(
    senderSchema(schemaFile)
  );
  const read = readerOf(schemaFile);

  it('has valid, invalid and future fixtures (see protocol/README.md)', () => {
    for (const kind of ['valid', 'invalid', 'future']) {
      const file = path.join(PROTOCOL_DIR, 'fixtures', `${prefix}${kind}.json`);
      expect([file, fs.existsSync(file)]).toEqual([file, true]);
      expect(fixture(`${prefix}${kind}.json`).length).toBeGreaterThan(0);
    }
  });

  it('the generated reader accepts what the schema accepts, on every fixture', () => {
    const disagreements: string[] = [];
    for (const kind of ['valid', 'invalid', 'future']) {
      for (const item of fixture(`${prefix}${kind}.json`)) {
        const schemaOk = schemaSays(item) === true;
        const problem = read(item);
        if (schemaOk !== (problem === null)) {
          disagreements.push(
            `${kind}: schema ${schemaOk ? 'accepts' : 'refuses'}, reader says ${problem}: ${JSON.stringify(item).slice(0, 200)}`
          );
        }
        const expected = kind !== 'invalid';
        if (schemaOk !== expected) {
          disagreements.push(
            `${kind} fixture ${schemaOk ? 'accepted' : 'refused'} by the schema: ${JSON.stringify(item).slice(0, 200)}`
          );
        }
      }
    }
    expect(disagreements).toEqual([]);
  });

  it('future fixtures carry fields a sender may not send', () => {
    for (const item of fixture(`${prefix}future.json`)) {
      expect(senderMay(item)).toBe(false);
    }
    for (const item of fixture(`${prefix}valid.json`)) {
      expect(senderMay(item)).toBe(true);
    }
  });

  it('its generated module is up to date (run `npm run build`)', () => {
    const file = path.join(GENERATED_DIR, `${baseOf(schemaFile)}.ts`);
    const expected = codegen.generate(schemaFile, readerSchema(schemaFile));
    expect(fs.readFileSync(file, 'utf8') === expected).toBe(true);
  });
});

it('no generated module is left from a schema that is gone', () => {
  const expected = schemaFiles().map(f => `${baseOf(f)}.ts`);
  expect(fs.readdirSync(GENERATED_DIR).filter(f => f.endsWith('.ts'))).toEqual(
    expected.sort()
  );
});
