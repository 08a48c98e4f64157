/**
 * The protocol's files as the unit tests read them: its JSON Schemas and the
 * shared fixtures the kernel's pytest checks too.
 */
import * as fs from 'fs';
import * as path from 'path';

const PROTOCOL_DIR = path.resolve(__dirname, '..', '..', 'protocol');

/** A file of `protocol/`, parsed (e.g. `cyscope.schema.json`). */
export function protocolJson(name: string): any {
  return JSON.parse(fs.readFileSync(path.join(PROTOCOL_DIR, name), 'utf8'));
}

/** The messages or payloads of a fixture file in `protocol/fixtures/`. */
export function fixture(name: string): any[] {
  return protocolJson(path.join('fixtures', name));
}
