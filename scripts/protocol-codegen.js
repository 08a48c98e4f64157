#!/usr/bin/env node
/**
 * Generates the frontend's protocol types and readers from the JSON Schemas
 * in protocol/: for every protocol/<name>.schema.json, src/generated/<name>.ts
 * with a TypeScript type per `$defs` entry (and one for the schema itself)
 * and a reader (`check<Name>`, `is<Name>`) built on src/schemaRuntime.ts.
 *
 * Runs at build time (scripts/build.sh, `npm run build:lib`); src/generated/
 * is not committed. A field is added to the schema, nowhere else.
 *
 * The generator knows a practical subset of JSON Schema (draft 2020-12) and
 * refuses anything else by name, so a schema never means more than the
 * readers check. It also refuses `additionalProperties: false`: readers must
 * accept fields they do not know (the tests hold senders to a strict view).
 *
 *   node scripts/protocol-codegen.js           write src/generated/*.ts
 *   node scripts/protocol-codegen.js --check   exit 1 if any is out of date
 */
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const PROTOCOL_DIR = path.join(ROOT, 'protocol');
const OUT_DIR = path.join(ROOT, 'src', 'generated');
const SUFFIX = '.schema.json';

/** Keywords that only document; they change no check. */
const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  'format'
]);
/** Keywords passed to the runtime as they are (numbers, strings, lists). */
const PLAIN = [
  'const',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'required'
];
/** Keywords whose values are subschemas, handled below. */
const NESTED = [
  'type',
  'items',
  'properties',
  'additionalProperties',
  'oneOf',
  'anyOf',
  'allOf',
  '$ref',
  '$defs'
];
const KNOWN = new Set([...ANNOTATIONS, ...PLAIN, ...NESTED]);
const JSON_TYPES = new Set([
  'string',
  'integer',
  'number',
  'boolean',
  'null',
  'object',
  'array'
]);

class SchemaError extends Error {}

/** "request_history" -> "RequestHistory", "nativeStatus" -> "NativeStatus". */
function pascal(name) {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map(part => part[0].toUpperCase() + part.slice(1))
    .join('');
}

function isObjectSchema(schema) {
  return (
    typeof schema === 'object' &&
    schema !== null &&
    (schema.type === 'object' ||
      (schema.properties !== undefined && schema.type === undefined))
  );
}

/** The TypeScript name of a `$defs` entry (interfaces carry JupyterLab's I). */
function typeName(defName, schema) {
  return isObjectSchema(schema) && schema.properties
    ? `I${pascal(defName)}`
    : pascal(defName);
}

function comment(text, indent) {
  if (!text) {
    return '';
  }
  const lines = String(text).replace(/\*\//g, '*\\/').split('\n');
  if (lines.length === 1) {
    return `${indent}/** ${lines[0]} */\n`;
  }
  return `${indent}/**\n${lines.map(l => `${indent} * ${l}`).join('\n')}\n${indent} */\n`;
}

function quoteKey(name) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/**
 * Everything one schema file turns into. `schemaFile` is the file's name
 * (e.g. "cyscope.schema.json"); `schema` its parsed content.
 */
class Generator {
  constructor(schemaFile, schema) {
    this.file = schemaFile;
    this.base = schemaFile.slice(0, -SUFFIX.length);
    this.schema = schema;
    this.defs = schema.$defs || {};
    this.imports = new Map(); // other generated module -> names used
    this.runtime = new Set(); // src/schemaRuntime.ts functions used
  }

  fail(at, message) {
    throw new SchemaError(`${this.file} ${at || '/'}: ${message}`);
  }

  /** Resolve a $ref to [module base or null (this file), def name]. */
  target(refValue, at) {
    const m = /^(?:([A-Za-z0-9_.-]+)\.schema\.json)?#\/\$defs\/([^/]+)$/.exec(
      refValue
    );
    if (!m) {
      this.fail(
        at,
        `$ref ${JSON.stringify(refValue)} is not supported (use "#/$defs/<name>" or "<other>.schema.json#/$defs/<name>")`
      );
    }
    const [, other, def] = m;
    if (!other || other === this.base) {
      if (!(def in this.defs)) {
        this.fail(at, `$ref to an unknown definition ${JSON.stringify(def)}`);
      }
      return [null, def];
    }
    return [other, def];
  }

  /** Name of the checker / type of a ref, importing it if it is elsewhere. */
  refNames(refValue, at) {
    const [other, def] = this.target(refValue, at);
    if (other !== null && def in this.defs) {
      this.fail(
        at,
        `${refValue} has the name of this schema's own definition ${def}`
      );
    }
    if (other === null) {
      return {
        checker: `${def}$`,
        type: typeName(def, this.defs[def])
      };
    }
    const otherSchema = readSchema(`${other}${SUFFIX}`, at);
    const otherDefs = otherSchema.$defs || {};
    if (!(def in otherDefs)) {
      this.fail(at, `$ref to an unknown definition ${refValue}`);
    }
    const type = typeName(def, otherDefs[def]);
    const used = this.imports.get(other) || new Set();
    used.add(type);
    used.add(`${def}$`);
    this.imports.set(other, used);
    return { checker: `${def}$`, type };
  }

  checkKeywords(schema, at) {
    for (const key of Object.keys(schema)) {
      if (!KNOWN.has(key)) {
        this.fail(
          at,
          `keyword "${key}" is not supported by scripts/protocol-codegen.js (its readers would not check it); extend the generator and src/schemaRuntime.ts, or express it with the keywords listed in protocol/README.md`
        );
      }
    }
    if (schema.additionalProperties === false) {
      this.fail(
        at,
        'additionalProperties: false is not allowed: readers accept fields they do not know (the tests check senders against a strict view of the schema)'
      );
    }
    if (schema.$defs !== undefined && at !== '') {
      this.fail(at, '$defs only at the top of a schema');
    }
  }

  types(schema, at) {
    if (schema.type === undefined) {
      return null;
    }
    const list = Array.isArray(schema.type) ? schema.type : [schema.type];
    for (const t of list) {
      if (!JSON_TYPES.has(t)) {
        this.fail(at, `unknown type ${JSON.stringify(t)}`);
      }
    }
    return list;
  }

  /** A runtime checker expression for `schema`. */
  checker(schema, at) {
    if (
      schema === true ||
      (isPlainObject(schema) && !Object.keys(schema).length)
    ) {
      this.runtime.add('anything');
      return 'anything';
    }
    if (!isPlainObject(schema)) {
      this.fail(at, 'a schema must be an object (or true)');
    }
    this.checkKeywords(schema, at);
    const tagged = this.taggedUnion(schema, at);
    if (tagged) {
      return tagged;
    }
    if (schema.$ref !== undefined) {
      const rest = Object.keys(schema).filter(
        k => k !== '$ref' && !ANNOTATIONS.has(k)
      );
      if (rest.length) {
        this.fail(at, `$ref next to ${rest.join(', ')} is not supported`);
      }
      this.runtime.add('ref');
      return `ref(() => ${this.refNames(schema.$ref, at).checker})`;
    }
    const parts = [];
    const types = this.types(schema, at);
    if (types) {
      parts.push(`type: ${JSON.stringify(types)}`);
    }
    for (const key of PLAIN) {
      if (schema[key] !== undefined) {
        parts.push(`${key}: ${JSON.stringify(schema[key])}`);
      }
    }
    if (schema.items !== undefined) {
      if (Array.isArray(schema.items)) {
        this.fail(at, 'items must be one schema (tuples are not supported)');
      }
      parts.push(`items: ${this.checker(schema.items, `${at}/items`)}`);
    }
    if (schema.properties !== undefined) {
      const props = Object.entries(schema.properties).map(
        ([name, sub]) =>
          `${quoteKey(name)}: ${this.checker(sub, `${at}/properties/${name}`)}`
      );
      parts.push(`properties: { ${props.join(', ')} }`);
    }
    if (isPlainObject(schema.additionalProperties)) {
      parts.push(
        `additionalProperties: ${this.checker(schema.additionalProperties, `${at}/additionalProperties`)}`
      );
    }
    for (const key of ['oneOf', 'anyOf', 'allOf']) {
      if (schema[key] !== undefined) {
        if (!Array.isArray(schema[key]) || !schema[key].length) {
          this.fail(at, `${key} must be a non-empty list`);
        }
        const branches = schema[key].map((sub, i) =>
          this.checker(sub, `${at}/${key}/${i}`)
        );
        parts.push(`${key}: [${branches.join(', ')}]`);
      }
    }
    this.runtime.add('schema');
    return `schema({ ${parts.join(', ')} })`;
  }

  /** The def a local `$ref` points at (for looking into branches). */
  deref(schema) {
    if (isPlainObject(schema) && typeof schema.$ref === 'string') {
      const m = /^#\/\$defs\/([^/]+)$/.exec(schema.$ref);
      if (m && m[1] in this.defs) {
        return this.defs[m[1]];
      }
    }
    return schema;
  }

  /**
   * A oneOf whose branches are objects told apart by one required field
   * holding a constant string (a message's "type"): checked by that field.
   */
  taggedUnion(schema, at) {
    const branches = schema.oneOf;
    if (!Array.isArray(branches) || branches.length < 2) {
      return null;
    }
    const others = Object.keys(schema).filter(
      k => k !== 'oneOf' && !ANNOTATIONS.has(k) && k !== '$defs'
    );
    if (others.length) {
      return null;
    }
    const resolved = branches.map(b => this.deref(this.deref(b)));
    const first = resolved[0];
    if (!isObjectSchema(first) || !first.properties) {
      return null;
    }
    for (const field of Object.keys(first.properties)) {
      const tags = resolved.map(b =>
        isObjectSchema(b) &&
        b.properties &&
        (b.required || []).includes(field) &&
        isPlainObject(b.properties[field]) &&
        typeof b.properties[field].const === 'string'
          ? b.properties[field].const
          : null
      );
      if (tags.every(t => t !== null) && new Set(tags).size === tags.length) {
        const entries = branches.map(
          (b, i) =>
            `${quoteKey(tags[i])}: ${this.checker(b, `${at}/oneOf/${i}`)}`
        );
        this.runtime.add('tagged');
        return `tagged(${JSON.stringify(field)}, { ${entries.join(', ')} })`;
      }
    }
    return null;
  }

  /** The TypeScript type of `schema`. */
  tsType(schema, at, indent = '') {
    if (schema === true || !isPlainObject(schema)) {
      return 'unknown';
    }
    if (schema.$ref !== undefined) {
      return this.refNames(schema.$ref, at).type;
    }
    if (schema.const !== undefined) {
      return JSON.stringify(schema.const);
    }
    if (schema.enum !== undefined) {
      return schema.enum.map(v => JSON.stringify(v)).join(' | ');
    }
    const branches = schema.oneOf || schema.anyOf;
    if (branches) {
      return branches
        .map((b, i) => this.tsType(b, `${at}/oneOf/${i}`, indent))
        .join(' | ');
    }
    if (schema.allOf) {
      return schema.allOf
        .map((b, i) => `(${this.tsType(b, `${at}/allOf/${i}`, indent)})`)
        .join(' & ');
    }
    const types = this.types(schema, at);
    if (!types) {
      return schema.properties
        ? this.objectType(schema, at, indent)
        : 'unknown';
    }
    return types
      .map(t => {
        switch (t) {
          case 'integer':
          case 'number':
            return 'number';
          case 'array':
            return schema.items === undefined
              ? 'unknown[]'
              : `Array<${this.tsType(schema.items, `${at}/items`, indent)}>`;
          case 'object':
            return this.objectType(schema, at, indent);
          default:
            return t;
        }
      })
      .join(' | ');
  }

  objectType(schema, at, indent) {
    const props = schema.properties || {};
    const names = Object.keys(props);
    if (!names.length) {
      const value = isPlainObject(schema.additionalProperties)
        ? this.tsType(schema.additionalProperties, `${at}/additionalProperties`)
        : 'unknown';
      return `{ [key: string]: ${value} }`;
    }
    return `{\n${this.members(schema, at, `${indent}  `)}${indent}}`;
  }

  members(schema, at, indent) {
    const required = new Set(schema.required || []);
    return Object.entries(schema.properties || {})
      .map(([name, sub]) => {
        const type = this.tsType(sub, `${at}/properties/${name}`, indent);
        const optional = required.has(name) ? '' : '?';
        return `${comment(sub.description, indent)}${indent}${quoteKey(name)}${optional}: ${type};\n`;
      })
      .join('');
  }

  declaration(name, defName, schema, at) {
    const type = typeName(defName, schema);
    let text = comment(schema.description || schema.title, '');
    if (type.startsWith('I') && isObjectSchema(schema) && schema.properties) {
      text += `export interface ${type} {\n${this.members(schema, at, '  ')}}\n`;
    } else {
      text += `export type ${type} = ${this.tsType(schema, at)};\n`;
    }
    const checker = this.checker(schema, at);
    text += `const ${name}: IChecker = ${checker};\n`;
    const fn = pascal(defName);
    text +=
      `/** null when \`value\` is a valid ${type} (unknown fields are ignored), else the problem. */\n` +
      `export function check${fn}(value: unknown, at = ''): Problem {\n` +
      `  return ${name}.check(value, at);\n}\n` +
      `export function is${fn}(value: unknown): value is ${type} {\n` +
      `  return ${name}.check(value, '') === null;\n}\n`;
    return text;
  }

  generate() {
    if (!isPlainObject(this.schema)) {
      this.fail('', 'a schema file must hold an object');
    }
    const names = new Set();
    const blocks = [];
    for (const [defName, def] of Object.entries(this.defs)) {
      const fn = pascal(defName);
      if (names.has(fn)) {
        this.fail(`/$defs/${defName}`, `two definitions are named ${fn}`);
      }
      names.add(fn);
      blocks.push(
        this.declaration(`${defName}$`, defName, def, `/$defs/${defName}`)
      );
    }
    // The schema itself, named after its file (diagnostics -> IDiagnostics).
    const root = { ...this.schema };
    delete root.$defs;
    if (names.has(pascal(this.base))) {
      this.fail(
        '',
        `a definition has the schema's own name ${pascal(this.base)}`
      );
    }
    blocks.push(
      this.declaration(
        `${this.base.replace(/\W/g, '_')}$root`,
        this.base,
        root,
        ''
      )
    );
    const imports = [...this.imports.entries()]
      .map(
        ([other, used]) =>
          `import { ${[...used].sort().join(', ')} } from './${other}';\n`
      )
      .join('');
    const runtime = ['IChecker', 'Problem', ...this.runtime].sort();
    return (
      `// Generated by scripts/protocol-codegen.js from protocol/${this.file}.\n` +
      '// Do not edit: change the schema and run `npm run build` (or\n' +
      '// `node scripts/protocol-codegen.js`).\n' +
      '/* eslint-disable */\n' +
      `import { ${runtime.join(', ')} } from '../schemaRuntime';\n` +
      imports +
      '\n' +
      `export const SCHEMA_ID = ${JSON.stringify(this.schema.$id || '')};\n\n` +
      blocks.join('\n') +
      (Object.keys(this.defs).length
        ? `\n// For the $refs of other generated modules.\nexport { ${Object.keys(
            this.defs
          )
            .map(d => `${d}$`)
            .join(', ')} };\n`
        : '')
    );
  }
}

function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readSchema(file, at = '') {
  const full = path.join(PROTOCOL_DIR, file);
  try {
    return JSON.parse(fs.readFileSync(full, 'utf8'));
  } catch (error) {
    throw new SchemaError(
      `${file}${at ? ` (from ${at})` : ''}: ${error.message}`
    );
  }
}

/** The TypeScript module for one schema (`file` is e.g. "cyscope.schema.json"). */
function generate(file, schema) {
  return new Generator(file, schema).generate();
}

/** Every protocol/*.schema.json -> [output path, generated text]. */
function generateAll() {
  return fs
    .readdirSync(PROTOCOL_DIR)
    .filter(f => f.endsWith(SUFFIX))
    .sort()
    .map(file => [
      path.join(OUT_DIR, `${file.slice(0, -SUFFIX.length)}.ts`),
      generate(file, readSchema(file))
    ]);
}

function main(argv) {
  let outputs;
  try {
    outputs = generateAll();
  } catch (error) {
    if (error instanceof SchemaError) {
      console.error(`protocol-codegen: ${error.message}`);
      return 2;
    }
    throw error;
  }
  if (argv.includes('--check')) {
    const stale = outputs.filter(
      ([file, text]) =>
        !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text
    );
    for (const [file] of stale) {
      console.error(`out of date: ${path.relative(ROOT, file)}`);
    }
    return stale.length ? 1 : 0;
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const wanted = new Set(outputs.map(([file]) => file));
  for (const old of fs.readdirSync(OUT_DIR)) {
    if (old.endsWith('.ts') && !wanted.has(path.join(OUT_DIR, old))) {
      fs.rmSync(path.join(OUT_DIR, old)); // its schema is gone
    }
  }
  for (const [file, text] of outputs) {
    // Unchanged files keep their time stamp, so tsc and the build skip them.
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) {
      fs.writeFileSync(file, text);
    }
  }
  return 0;
}

module.exports = { generate, generateAll, SchemaError, pascal };

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
