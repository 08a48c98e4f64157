/**
 * The runtime of the readers generated from protocol/*.schema.json
 * (scripts/protocol-codegen.js writes src/generated/<schema>.ts, which builds
 * its checkers with these functions).
 *
 * A reader checks what it knows and ignores what it does not: fields that a
 * schema does not name are accepted (a newer peer may send them), so an
 * older frontend keeps working with a newer kernel. Only senders are strict,
 * and that is the test suite's job (a strict view of the same schemas).
 *
 * Problems are reported as one short sentence with the path of the value
 * ("sample.rss_bytes: expected an integer >= 0, got -5"); offending values
 * are quoted through `brief`, so a megabyte value never becomes a megabyte
 * message.
 */

/** How much of an offending value an error message quotes. */
export const QUOTE_CHARS = 60;

const count = (n: number): string => n.toLocaleString('en-US');

/** A short quotation of any value, for an error message. */
export function brief(value: unknown, limit = QUOTE_CHARS): string {
  if (typeof value === 'string') {
    return value.length <= limit
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, limit))}... (${count(value.length)} characters)`;
  }
  if (Array.isArray(value)) {
    return `a list of ${count(value.length)} item(s)`;
  }
  if (typeof value === 'object' && value !== null) {
    return `an object with ${count(Object.keys(value).length)} field(s)`;
  }
  if (typeof value === 'function') {
    return 'a function';
  }
  return String(value);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** null when the value is acceptable, else the first problem found. */
export type Problem = string | null;

export interface IChecker {
  /** Check `value`, found at `at` (a path such as "sample.native"). */
  check(value: unknown, at: string): Problem;
  /** What an acceptable value is, for messages ("an integer >= 0"). */
  expected(): string;
}

export type JsonType =
  'string' | 'integer' | 'number' | 'boolean' | 'null' | 'object' | 'array';

/** The JSON Schema keywords a generated reader enforces. */
export interface ISpec {
  type?: JsonType[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  items?: IChecker;
  properties?: Record<string, IChecker>;
  required?: string[];
  /** Checks the values of fields `properties` does not name. */
  additionalProperties?: IChecker;
  oneOf?: IChecker[];
  anyOf?: IChecker[];
  allOf?: IChecker[];
}

function join(at: string, key: string): string {
  return at ? `${at}.${key}` : key;
}

function where(at: string): string {
  return at ? `${at}: ` : '';
}

function typeOf(value: unknown): JsonType {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'array';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'integer' : 'number';
  }
  return typeof value as JsonType;
}

function hasType(value: unknown, type: JsonType): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b) {
    return false;
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

function describeNumber(spec: ISpec, noun: string): string {
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = spec;
  if (minimum !== undefined && maximum !== undefined) {
    return `${noun} from ${minimum} to ${maximum}`;
  }
  const bounds = [
    minimum !== undefined ? `>= ${minimum}` : '',
    exclusiveMinimum !== undefined ? `> ${exclusiveMinimum}` : '',
    maximum !== undefined ? `<= ${maximum}` : '',
    exclusiveMaximum !== undefined ? `< ${exclusiveMaximum}` : ''
  ].filter(Boolean);
  return bounds.length ? `${noun} ${bounds.join(' and ')}` : noun;
}

function describeType(spec: ISpec, type: JsonType): string {
  switch (type) {
    case 'integer':
      return describeNumber(spec, 'an integer');
    case 'number':
      return describeNumber(spec, 'a number');
    case 'string': {
      const { minLength, maxLength, pattern } = spec;
      const limits = [
        minLength !== undefined && minLength > 1
          ? `of at least ${minLength} characters`
          : '',
        maxLength !== undefined ? `of at most ${maxLength} characters` : '',
        pattern !== undefined ? `matching /${pattern}/` : ''
      ].filter(Boolean);
      const noun = minLength === 1 ? 'a non-empty string' : 'a string';
      return [noun, ...limits].join(' ');
    }
    case 'boolean':
      return 'true or false';
    case 'null':
      return 'null';
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
  }
}

function describe(spec: ISpec): string {
  if ('const' in spec) {
    return JSON.stringify(spec.const);
  }
  if (spec.enum) {
    return `one of ${spec.enum.map(v => JSON.stringify(v)).join(', ')}`;
  }
  if (spec.type) {
    return spec.type.map(t => describeType(spec, t)).join(' or ');
  }
  const branches = spec.oneOf ?? spec.anyOf;
  if (branches) {
    return branches.map(b => b.expected()).join(' or ');
  }
  if (spec.allOf) {
    return spec.allOf.map(b => b.expected()).join(' and ');
  }
  return 'any value';
}

/** True when `value`, of JSON type `type`, meets the spec's bounds. */
function withinBounds(spec: ISpec, value: unknown, type: JsonType): boolean {
  if (type === 'integer' || type === 'number') {
    const n = value as number;
    return !(
      (spec.minimum !== undefined && n < spec.minimum) ||
      (spec.maximum !== undefined && n > spec.maximum) ||
      (spec.exclusiveMinimum !== undefined && n <= spec.exclusiveMinimum) ||
      (spec.exclusiveMaximum !== undefined && n >= spec.exclusiveMaximum)
    );
  }
  if (type === 'string') {
    const s = value as string;
    // Lengths in code points, as JSON Schema counts them.
    const length = s.length < 1000 ? [...s].length : s.length;
    return !(
      (spec.minLength !== undefined && length < spec.minLength) ||
      (spec.maxLength !== undefined && length > spec.maxLength) ||
      (spec.pattern !== undefined && !new RegExp(spec.pattern, 'u').test(s))
    );
  }
  if (type === 'array') {
    const a = value as unknown[];
    return !(
      (spec.minItems !== undefined && a.length < spec.minItems) ||
      (spec.maxItems !== undefined && a.length > spec.maxItems)
    );
  }
  return true;
}

function checkObject(
  spec: ISpec,
  value: Record<string, unknown>,
  at: string
): Problem {
  for (const name of spec.required ?? []) {
    if (!(name in value)) {
      return `${where(at)}missing field '${name}'`;
    }
  }
  const properties = spec.properties ?? {};
  for (const [name, checker] of Object.entries(properties)) {
    if (name in value) {
      const problem = checker.check(value[name], join(at, name));
      if (problem !== null) {
        return problem;
      }
    }
  }
  // Fields the schema does not name are ignored unless it says what they
  // must hold (an object used as a map).
  if (spec.additionalProperties) {
    for (const [name, item] of Object.entries(value)) {
      if (!(name in properties)) {
        const problem = spec.additionalProperties.check(item, join(at, name));
        if (problem !== null) {
          return problem;
        }
      }
    }
  }
  return null;
}

function checkBranches(spec: ISpec, value: unknown, at: string): Problem {
  const mismatch = () =>
    `${where(at)}expected ${describe(spec)}, got ${brief(value)}`;
  if (spec.allOf) {
    for (const branch of spec.allOf) {
      const problem = branch.check(value, at);
      if (problem !== null) {
        return problem;
      }
    }
  }
  if (spec.anyOf && !spec.anyOf.some(b => b.check(value, at) === null)) {
    return mismatch();
  }
  if (spec.oneOf) {
    const problems = spec.oneOf.map(b => b.check(value, at));
    const matches = problems.filter(p => p === null).length;
    if (matches === 0) {
      // One branch: its own problem says more than "expected X".
      return spec.oneOf.length === 1 ? problems[0] : mismatch();
    }
    if (matches > 1) {
      return `${where(at)}${brief(value)} matches more than one of: ${describe(spec)}`;
    }
  }
  return null;
}

/** A checker for one (sub)schema, from the keywords the generator kept. */
export function schema(spec: ISpec): IChecker {
  return {
    expected: () => describe(spec),
    check(value: unknown, at: string): Problem {
      const mismatch = () =>
        `${where(at)}expected ${describe(spec)}, got ${brief(value)}`;
      if ('const' in spec && !sameJson(value, spec.const)) {
        return mismatch();
      }
      if (spec.enum && !spec.enum.some(v => sameJson(value, v))) {
        return mismatch();
      }
      if (spec.type) {
        const type = spec.type.find(t => hasType(value, t));
        if (type === undefined || !withinBounds(spec, value, type)) {
          return mismatch();
        }
      } else if (value !== null && typeof value !== 'object') {
        // Bounds apply to the type they are about, even with no "type".
        if (!withinBounds(spec, value, typeOf(value))) {
          return mismatch();
        }
      }
      if (Array.isArray(value)) {
        if (!withinBounds(spec, value, 'array')) {
          return mismatch();
        }
        if (spec.items) {
          for (let i = 0; i < value.length; i++) {
            const problem = spec.items.check(value[i], `${at}[${i}]`);
            if (problem !== null) {
              return problem;
            }
          }
        }
      } else if (isObject(value)) {
        const problem = checkObject(spec, value, at);
        if (problem !== null) {
          return problem;
        }
      }
      return checkBranches(spec, value, at);
    }
  };
}

/**
 * A union told apart by one field's constant (e.g. a message's `type`): the
 * branch is picked by that field, so a problem is reported against the
 * branch it was meant for, and an unknown tag is named.
 */
export function tagged(
  field: string,
  branches: Record<string, IChecker>
): IChecker {
  return {
    expected: () =>
      `an object whose '${field}' is one of ${Object.keys(branches)
        .map(k => JSON.stringify(k))
        .join(', ')}`,
    check(value: unknown, at: string): Problem {
      if (!isObject(value)) {
        return `${where(at)}expected a JSON object, got ${brief(value)}`;
      }
      const tag = value[field];
      if (
        typeof tag !== 'string' ||
        !Object.prototype.hasOwnProperty.call(branches, tag)
      ) {
        return `${where(at)}unknown ${field} ${brief(tag)}`;
      }
      return branches[tag].check(value, at ? `${at}(${tag})` : tag);
    }
  };
}

/** A checker defined elsewhere (a `$ref`), looked up when first used. */
export function ref(get: () => IChecker): IChecker {
  return {
    expected: () => get().expected(),
    check: (value: unknown, at: string) => get().check(value, at)
  };
}

/** Accepts anything (a schema of `true` or `{}`). */
export const anything: IChecker = {
  expected: () => 'any value',
  check: () => null
};
