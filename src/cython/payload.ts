/**
 * The two MIME payloads of cyscope's `%%cython` magic, as types, and the
 * checks every incoming payload goes through before anything draws it.
 * Mirrors protocol/diagnostics.schema.json and protocol/annotation.schema.json
 * (version 1). No JupyterLab imports: unit-tested against protocol/fixtures/.
 */

export const DIAGNOSTICS_MIME = 'application/vnd.cyscope.diagnostics+json';
export const ANNOTATION_MIME = 'application/vnd.cyscope.annotation+json';

export type Severity = 'error' | 'warning';
export type DiagnosticSource = 'cython' | 'cc' | 'ld';

export interface IDiagnostic {
  severity: Severity;
  /** Cell line, 1-based (the %%cython line is 1); null: outside the cell. */
  line: number | null;
  /** 1-based column on that line, or null. */
  column: number | null;
  message: string;
  source: DiagnosticSource;
}

export interface IDiagnostics {
  v: 1;
  /** false: the build failed; true: warnings only. */
  ok: boolean;
  module: string | null;
  diagnostics: IDiagnostic[];
  /** Complete compiler and linker output. */
  output: string;
}

export interface IAnnotatedLine {
  /** Cell line, 1-based. */
  line: number;
  /** Cython's Python-interaction count; 0 = pure C. */
  score: number;
  /** C generated for the line, plain text. */
  code: string;
}

export interface IAnnotation {
  v: 1;
  module: string;
  max_score: number;
  html_path?: string;
  lines: IAnnotatedLine[];
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const SEVERITIES: readonly string[] = ['error', 'warning'];
const SOURCES: readonly string[] = ['cython', 'cc', 'ld'];
const DIAGNOSTIC_KEYS: readonly string[] = [
  'severity',
  'line',
  'column',
  'message',
  'source'
];
const LINE_KEYS: readonly string[] = ['line', 'score', 'code'];

class PayloadError extends Error {}

function fail(message: string): never {
  throw new PayloadError(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown, minimum: number): value is number {
  return (
    typeof value === 'number' && Number.isInteger(value) && value >= minimum
  );
}

function checkVersion(data: Record<string, unknown>): void {
  if (!('v' in data)) {
    fail('no version field "v"');
  }
  if (data.v !== 1) {
    fail(
      `version ${JSON.stringify(data.v)} is not supported (this cyscope reads version 1; update the extension or the kernel package so they match)`
    );
  }
}

function checkKeys(
  item: Record<string, unknown>,
  allowed: readonly string[],
  where: string
): void {
  for (const key of Object.keys(item)) {
    if (!allowed.includes(key)) {
      fail(`${where}: unknown field "${key}"`);
    }
  }
}

function diagnostic(item: unknown, index: number): IDiagnostic {
  const where = `diagnostics[${index}]`;
  if (!isObject(item)) {
    fail(`${where} is not an object`);
  }
  checkKeys(item, DIAGNOSTIC_KEYS, where);
  const { severity, line, column, message, source } = item;
  if (typeof severity !== 'string' || !SEVERITIES.includes(severity)) {
    fail(`${where}.severity must be "error" or "warning"`);
  }
  if (!('line' in item) || !(line === null || isCount(line, 1))) {
    fail(`${where}.line must be an integer >= 1 or null`);
  }
  if (!('column' in item) || !(column === null || isCount(column, 1))) {
    fail(`${where}.column must be an integer >= 1 or null`);
  }
  if (typeof message !== 'string' || message === '') {
    fail(`${where}.message must be a non-empty string`);
  }
  if (typeof source !== 'string' || !SOURCES.includes(source)) {
    fail(`${where}.source must be "cython", "cc" or "ld"`);
  }
  return {
    severity: severity as Severity,
    line: line as number | null,
    column: column as number | null,
    message,
    source: source as DiagnosticSource
  };
}

function annotatedLine(item: unknown, index: number): IAnnotatedLine {
  const where = `lines[${index}]`;
  if (!isObject(item)) {
    fail(`${where} is not an object`);
  }
  checkKeys(item, LINE_KEYS, where);
  if (!isCount(item.line, 1)) {
    fail(`${where}.line must be an integer >= 1`);
  }
  if (!isCount(item.score, 0)) {
    fail(`${where}.score must be an integer >= 0`);
  }
  if (typeof item.code !== 'string') {
    fail(`${where}.code must be a string`);
  }
  return { line: item.line, score: item.score, code: item.code };
}

function guard<T>(kind: string, read: () => T): Parsed<T> {
  try {
    return { ok: true, value: read() };
  } catch (error) {
    const reason =
      error instanceof PayloadError ? error.message : String(error);
    return { ok: false, error: `Malformed cyscope ${kind} payload: ${reason}` };
  }
}

/** Check a diagnostics payload (never throws). */
export function parseDiagnostics(data: unknown): Parsed<IDiagnostics> {
  return guard('diagnostics', () => {
    if (!isObject(data)) {
      fail('not a JSON object');
    }
    checkVersion(data);
    if (typeof data.ok !== 'boolean') {
      fail('"ok" must be true or false');
    }
    if (
      'module' in data &&
      data.module !== null &&
      typeof data.module !== 'string'
    ) {
      fail('"module" must be a string or null');
    }
    if (!Array.isArray(data.diagnostics)) {
      fail('"diagnostics" must be a list');
    }
    if (typeof data.output !== 'string') {
      fail('"output" must be a string');
    }
    return {
      v: 1 as const,
      ok: data.ok,
      module: (data.module as string | null | undefined) ?? null,
      diagnostics: data.diagnostics.map(diagnostic),
      output: data.output
    };
  });
}

/** Check an annotation payload (never throws). */
export function parseAnnotation(data: unknown): Parsed<IAnnotation> {
  return guard('annotation', () => {
    if (!isObject(data)) {
      fail('not a JSON object');
    }
    checkVersion(data);
    if (typeof data.module !== 'string' || data.module === '') {
      fail('"module" must be a non-empty string');
    }
    if (!isCount(data.max_score, 0)) {
      fail('"max_score" must be an integer >= 0');
    }
    if ('html_path' in data && typeof data.html_path !== 'string') {
      fail('"html_path" must be a string');
    }
    if (!Array.isArray(data.lines)) {
      fail('"lines" must be a list');
    }
    const value: IAnnotation = {
      v: 1,
      module: data.module,
      max_score: data.max_score,
      lines: data.lines.map(annotatedLine)
    };
    if (typeof data.html_path === 'string') {
      value.html_path = data.html_path;
    }
    return value;
  });
}

/** One-line human form of a diagnostic, as the kernel's text/plain names it. */
export function describeDiagnostic(d: IDiagnostic): string {
  const where =
    d.line === null
      ? 'outside the cell'
      : d.column === null
        ? `line ${d.line}`
        : `line ${d.line}, column ${d.column}`;
  return `${where}: ${d.severity}: ${d.message}`;
}
