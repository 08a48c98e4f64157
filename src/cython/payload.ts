/**
 * The two MIME payloads of cyscope's `%%cython` magic, as types, and the
 * checks every incoming payload goes through before anything draws it.
 * The types and checks are generated from protocol/diagnostics.schema.json
 * and protocol/annotation.schema.json (version 1) at build time
 * (src/generated/). No JupyterLab imports: unit-tested against
 * protocol/fixtures/.
 */
import { checkAnnotation, IAnnotation, ILine } from '../generated/annotation';
import {
  checkDiagnostics,
  IDiagnostic,
  IDiagnostics
} from '../generated/diagnostics';
import { plainTrans, Trans } from '../i18n';
import { brief, isObject } from '../schemaRuntime';

export const DIAGNOSTICS_MIME = 'application/vnd.cyscope.diagnostics+json';
export const ANNOTATION_MIME = 'application/vnd.cyscope.annotation+json';

export type { IAnnotation, IDiagnostics };

export type Severity = IDiagnostic['severity'];
export type DiagnosticSource = IDiagnostic['source'];
export type { IDiagnostic };
/** One line of an annotation payload. */
export type IAnnotatedLine = ILine;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function versionProblem(data: Record<string, unknown>): string | null {
  if (!('v' in data)) {
    return 'no version field "v"';
  }
  if (data.v !== 1) {
    return `version ${brief(data.v)} is not supported (this cyscope reads version 1; update the extension or the kernel package so they match)`;
  }
  return null;
}

/**
 * Run a generated check; never throws (a payload can be anything,
 * including an object whose getters throw).
 */
function read<T>(
  kind: string,
  data: unknown,
  check: (value: unknown) => string | null,
  build: (data: Record<string, unknown>) => T
): Parsed<T> {
  const malformed = (reason: string): Parsed<T> => ({
    ok: false,
    error: `Malformed cyscope ${kind} payload: ${reason}`
  });
  try {
    if (!isObject(data)) {
      return malformed(`not a JSON object (got ${brief(data)})`);
    }
    const problem = versionProblem(data) ?? check(data);
    return problem === null
      ? { ok: true, value: build(data) }
      : malformed(problem);
  } catch (error) {
    return malformed(String(error));
  }
}

/** Check a diagnostics payload (never throws). Unknown fields are dropped. */
export function parseDiagnostics(data: unknown): Parsed<IDiagnostics> {
  return read('diagnostics', data, checkDiagnostics, d => {
    const payload = d as unknown as IDiagnostics;
    return {
      v: 1,
      ok: payload.ok,
      module: payload.module ?? null,
      diagnostics: payload.diagnostics.map(x => ({
        severity: x.severity,
        line: x.line,
        column: x.column,
        message: x.message,
        source: x.source
      })),
      output: payload.output,
      ...(payload.stage === undefined ? {} : { stage: payload.stage })
    };
  });
}

/** Check an annotation payload (never throws). Unknown fields are dropped. */
export function parseAnnotation(data: unknown): Parsed<IAnnotation> {
  return read('annotation', data, checkAnnotation, d => {
    const payload = d as unknown as IAnnotation;
    const value: IAnnotation = {
      v: 1,
      module: payload.module,
      max_score: payload.max_score,
      lines: payload.lines.map(l => ({
        line: l.line,
        score: l.score,
        code: l.code
      }))
    };
    if (typeof payload.html_path === 'string') {
      value.html_path = payload.html_path;
    }
    return value;
  });
}

/** "error" or "warning", in the user's language. */
export function severityName(
  severity: Severity,
  t: Trans = plainTrans
): string {
  return severity === 'error' ? t.__('error') : t.__('warning');
}

/** One-line human form of a diagnostic, as the kernel's text/plain names it. */
export function describeDiagnostic(
  d: IDiagnostic,
  t: Trans = plainTrans
): string {
  const where =
    d.line === null
      ? t.__('outside the cell')
      : d.column === null
        ? t.__('line %1', d.line)
        : t.__('line %1, column %2', d.line, d.column);
  return `${where}: ${severityName(d.severity, t)}: ${d.message}`;
}
