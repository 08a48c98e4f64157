/**
 * The protocol's files as the tests read them: its JSON Schemas and the
 * shared fixtures the kernel's pytest checks too.
 *
 * A schema has two views. As written, it is the readers' contract: fields it
 * does not name are allowed, because a newer peer may send them
 * (`readerSchema`). Senders are held to more: every object carries only the
 * fields the schema names (`senderSchema`, which adds
 * `additionalProperties: false` wherever a schema lists properties and says
 * nothing about others). test/python/protocol_views.py does the same for
 * pytest.
 */
import * as fs from 'fs';
import * as path from 'path';

export const PROTOCOL_DIR = path.resolve(__dirname, '..', '..', 'protocol');

/** A file of `protocol/`, parsed (e.g. `cyscope.schema.json`). */
export function protocolJson(name: string): any {
  return JSON.parse(fs.readFileSync(path.join(PROTOCOL_DIR, name), 'utf8'));
}

/** The messages or payloads of a fixture file in `protocol/fixtures/`. */
export function fixture(name: string): any[] {
  return protocolJson(path.join('fixtures', name));
}

/** Every `protocol/*.schema.json`, by file name. */
export function schemaFiles(): string[] {
  return fs
    .readdirSync(PROTOCOL_DIR)
    .filter(f => f.endsWith('.schema.json'))
    .sort();
}

/** `schema` with no unnamed fields allowed where it lists properties. */
export function strictView(schema: unknown): any {
  if (Array.isArray(schema)) {
    return schema.map(strictView);
  }
  if (typeof schema !== 'object' || schema === null) {
    return schema;
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    // const and enum hold data, not subschemas.
    out[key] = key === 'const' || key === 'enum' ? value : strictView(value);
  }
  if ('properties' in out && !('additionalProperties' in out)) {
    out.additionalProperties = false;
  }
  return out;
}

/** What a reader accepts: the schema as written. */
export function readerSchema(name: string): any {
  return protocolJson(name);
}

/** What a sender may send: the schema's strict view. Its `$id` is changed
 * so both views can live in one Ajv instance. */
export function senderSchema(name: string): any {
  const strict = strictView(protocolJson(name));
  if (typeof strict.$id === 'string') {
    strict.$id = strict.$id.replace(/\.schema\.json$/, '.strict.schema.json');
  }
  return strict;
}
