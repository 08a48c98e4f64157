/**
 * Where the overlay goes, computed from the payloads and the cell's text
 * only (no editor, no DOM): which lines and columns a diagnostic covers,
 * and which shade an annotated line gets. The CodeMirror layer turns these
 * into decorations.
 */
import { plainTrans, Trans } from '../i18n';
import {
  IAnnotatedLine,
  IAnnotation,
  IDiagnostic,
  IDiagnostics,
  Severity,
  severityName
} from './payload';

/** Shades 1..SHADE_BUCKETS; 0 = no shading (pure C). */
export const SHADE_BUCKETS = 4;

/**
 * The shade of a line: 0 for score 0, else 1..4 by score / max_score, so
 * the darkest line of the cell always gets the darkest shade (as in
 * Cython's HTML, which scales by the cell's largest score too).
 */
export function shadeOf(score: number, maxScore: number): number {
  if (score <= 0 || maxScore <= 0) {
    return 0;
  }
  const ratio = Math.min(score / maxScore, 1);
  return Math.max(1, Math.ceil(ratio * SHADE_BUCKETS));
}

/** A diagnostic placed on the cell: 1-based line, 0-based [from, to) in it. */
export interface IDiagnosticMark {
  line: number;
  from: number;
  to: number;
  severity: Severity;
  /** Every message on this line, most severe first. */
  messages: string[];
  diagnostics: IDiagnostic[];
}

const WORD = /[\w$]/;

/**
 * The columns a diagnostic underlines: from its column to the end of the
 * word that starts there (at least one character); the line's text without
 * its indentation when there is no column (or it is past the line's end).
 */
export function diagnosticSpan(
  text: string,
  column: number | null
): { from: number; to: number } {
  const indent = text.length - text.trimStart().length;
  const whole = { from: indent, to: text.trimEnd().length };
  if (column === null || column - 1 >= text.length) {
    return whole.to > whole.from ? whole : { from: 0, to: text.length };
  }
  const from = column - 1;
  let to = from;
  while (to < text.length && WORD.test(text[to])) {
    to++;
  }
  return { from, to: Math.max(to, from + 1) };
}

/**
 * Group a payload's diagnostics by cell line, dropping those outside the
 * cell (line null, or past its last line). `lines` is the cell's text split
 * into lines.
 */
export function diagnosticMarks(
  payload: IDiagnostics,
  lines: readonly string[],
  t: Trans = plainTrans
): IDiagnosticMark[] {
  const byLine = new Map<number, IDiagnostic[]>();
  for (const d of payload.diagnostics) {
    if (d.line === null || d.line > lines.length) {
      continue;
    }
    const list = byLine.get(d.line) ?? [];
    list.push(d);
    byLine.set(d.line, list);
  }
  const marks: IDiagnosticMark[] = [];
  for (const [line, list] of [...byLine].sort((a, b) => a[0] - b[0])) {
    list.sort(
      (a, b) => Number(a.severity !== 'error') - Number(b.severity !== 'error')
    );
    const first = list[0];
    const { from, to } = diagnosticSpan(lines[line - 1], first.column);
    marks.push({
      line,
      from,
      to,
      severity: first.severity,
      messages: list.map(
        d =>
          `${severityName(d.severity, t)}: ${d.message} [${sourceName(d.source, t)}]`
      ),
      diagnostics: list
    });
  }
  return marks;
}

/** Who reported a diagnostic: Cython, the C compiler or the linker. */
export function sourceName(
  source: IDiagnostic['source'],
  t: Trans = plainTrans
): string {
  switch (source) {
    case 'cython':
      return 'Cython';
    case 'cc':
      return t.__('C compiler');
    case 'ld':
      return t.__('linker');
  }
}

/** An annotated line placed on the cell. */
export interface IShadedLine {
  line: number;
  shade: number;
  score: number;
  code: string;
}

/** Lines to shade or mark: those with generated C, inside the cell. */
export function shadedLines(
  payload: IAnnotation,
  lineCount: number
): IShadedLine[] {
  return payload.lines
    .filter(l => l.line <= lineCount && (l.score > 0 || l.code.trim() !== ''))
    .map(l => ({
      line: l.line,
      shade: shadeOf(l.score, payload.max_score),
      score: l.score,
      code: l.code
    }));
}

/** The line with the highest score (first one on ties), or null. */
export function darkestLine(payload: IAnnotation): IAnnotatedLine | null {
  let best: IAnnotatedLine | null = null;
  for (const l of payload.lines) {
    if (l.score > 0 && (best === null || l.score > best.score)) {
      best = l;
    }
  }
  return best;
}

/** The annotated entry of a cell line, or null. */
export function annotatedLine(
  payload: IAnnotation,
  line: number
): IAnnotatedLine | null {
  return payload.lines.find(l => l.line === line) ?? null;
}
