/**
 * Crash reports (protocol/crash.schema.json, version 1) as the frontend
 * reads them: the checked payload, and what the views derive from it (the
 * crash site, the headline, which cell lines to mark). The type and check
 * are generated from the schema at build time (src/generated/crash.ts).
 * No JupyterLab imports: unit-tested against protocol/fixtures/.
 */
import { checkCrash, ICellRef, ICrash, IFrame } from '../generated/crash';
import { brief, isObject } from '../schemaRuntime';

export const CRASH_MIME = 'application/vnd.cyscope.crash.v1+json';

export type { ICrash, IFrame };

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Check a crash report (never throws). */
export function parseCrash(data: unknown): Parsed<ICrash> {
  const malformed = (reason: string): Parsed<ICrash> => ({
    ok: false,
    error: `Malformed cyscope crash report: ${reason}`
  });
  try {
    if (!isObject(data)) {
      return malformed(`not a JSON object (got ${brief(data)})`);
    }
    if (data.v !== 1) {
      return malformed(
        `version ${brief(data.v)} is not supported (this cyscope reads version 1; update the extension or the kernel package so they match)`
      );
    }
    const problem = checkCrash(data);
    return problem === null
      ? { ok: true, value: data as unknown as ICrash }
      : malformed(problem);
  } catch (error) {
    return malformed(String(error));
  }
}

/** "cell [5]", or a fallback when the count is unknown. */
export function cellLabel(ref: { execution_count: number | null } | null) {
  if (!ref) {
    return 'an unknown cell';
  }
  const count = ref.execution_count;
  return typeof count === 'number' && count >= 0 ? `cell [${count}]` : 'a cell';
}

function cellOf(frame: IFrame): ICellRef | null {
  return frame.cell ?? null;
}

/** The innermost frame with a cell line: where to look first. */
export function crashSite(report: ICrash): IFrame | null {
  return report.frames.find(f => (cellOf(f)?.line ?? null) !== null) ?? null;
}

/** "Kernel crashed: SIGSEGV (…) at address 0x0: … in cell [3] line 6 (read_at)". */
export function headline(report: ICrash): string {
  const signal = report.signal;
  let what = `${signal.name} (${signal.description})`;
  if (signal.address !== null) {
    what += ` at address ${signal.address}`;
    if (signal.code_description) {
      what += `: ${signal.code_description}`;
    }
  }
  const site = crashSite(report);
  let where = '';
  if (site) {
    const ref = cellOf(site) as ICellRef;
    where = ` in ${cellLabel(ref)} line ${ref.line}`;
    if (site.function) {
      where += ` (${site.function})`;
    }
  }
  return `${report.caught ? 'Caught' : 'Kernel crashed:'} ${what}${where}`;
}

/** Cython's argument-parsing wrapper around the function just inside it. */
export function isWrapper(frame: IFrame, inner: IFrame | null): boolean {
  return (
    inner !== null &&
    frame.kind === 'cython' &&
    inner.kind === 'cython' &&
    frame.function === inner.function &&
    (frame.c_function ?? '').startsWith('__pyx_pw_')
  );
}

/**
 * Frames the views fold: the Python interpreter's own native frames, and
 * everything below the outermost notebook cell (the kernel's machinery).
 */
export function foldedFrames(report: ICrash): Set<IFrame> {
  let outermost = -1;
  report.frames.forEach((frame, i) => {
    if (frame.cell) {
      outermost = i;
    }
  });
  return new Set(
    report.frames.filter(
      (frame, i) =>
        (outermost >= 0 && i > outermost) ||
        (frame.kind === 'native' &&
          !!report.python_module &&
          frame.module === report.python_module)
    )
  );
}

/** A cell line the editor marks, with what it says on hover. */
export interface ICrashMark {
  cellId: string | null;
  executionCount: number | null;
  line: number;
  /** The crash site itself (the others called it). */
  site: boolean;
  message: string;
}

/** Every cell line on the crashing thread's stack, innermost first, once each. */
export function crashMarks(report: ICrash): ICrashMark[] {
  const site = crashSite(report);
  const signal = report.signal.name;
  const marks: ICrashMark[] = [];
  const seen = new Set<string>();
  let inner: IFrame | null = null;
  for (const frame of report.frames) {
    const wrapper = isWrapper(frame, inner);
    inner = frame;
    const ref = cellOf(frame);
    if (wrapper || !ref || ref.line === null) {
      continue;
    }
    const key = `${ref.cell_id ?? ''}|${ref.execution_count ?? ''}|${ref.line}`;
    if (seen.has(key)) {
      continue;
    }
    seen.add(key);
    const isSite = frame === site;
    const name = frame.function ? ` in ${frame.function}` : '';
    marks.push({
      cellId: ref.cell_id,
      executionCount: ref.execution_count,
      line: ref.line,
      site: isSite,
      message: isSite
        ? `${report.caught ? 'Caught' : 'The kernel crashed'} here: ${signal}${name}`
        : `On the stack when the kernel ${report.caught ? 'caught' : 'crashed with'} ${signal}${name}`
    });
  }
  return marks;
}
