/**
 * Breakpoint conditions and hit counts for JupyterLab's debugger, as plain data.
 *
 * JupyterLab's own requests carry breakpoint lines only. cyscope's gutter command sends
 * the cell's breakpoints with `condition` and `hitCondition` on every one of them, so
 * the kernel takes the request as complete (an empty string clears a condition); the
 * kernel keeps them across JupyterLab's later line-only re-sends and reports them in
 * `debugInfo`, where this module reads them back.
 */

/** What a breakpoint stops on besides its line (DAP's SourceBreakpoint fields). */
export interface IConditions {
  condition: string;
  hitCondition: string;
}

export interface ISourceBreakpoint extends IConditions {
  line: number;
}

/** A breakpoint as the kernel answers it (DAP's Breakpoint). */
export interface IKernelBreakpoint {
  id?: number;
  verified: boolean;
  line?: number;
  message?: string;
  source?: { path?: string };
}

/** The conditions the kernel reports for `path` in a debugInfo body, by line. */
export function conditionsOf(
  debugInfoBody: unknown,
  path: string
): Map<number, IConditions> {
  const out = new Map<number, IConditions>();
  const lists = (debugInfoBody as { breakpoints?: unknown })?.breakpoints;
  if (!Array.isArray(lists)) {
    return out;
  }
  for (const entry of lists) {
    if (entry?.source !== path || !Array.isArray(entry.breakpoints)) {
      continue;
    }
    for (const bp of entry.breakpoints) {
      if (typeof bp?.line !== 'number') {
        continue;
      }
      out.set(bp.line, {
        condition: typeof bp.condition === 'string' ? bp.condition : '',
        hitCondition: typeof bp.hitCondition === 'string' ? bp.hitCondition : ''
      });
    }
  }
  return out;
}

/** The complete setBreakpoints list for a cell: every line, each with both fields. */
export function requestFor(
  lines: number[],
  conditions: Map<number, IConditions>
): ISourceBreakpoint[] {
  const unique = [...new Set(lines)].sort((a, b) => a - b);
  return unique.map(line => ({
    line,
    condition: conditions.get(line)?.condition.trim() ?? '',
    hitCondition: conditions.get(line)?.hitCondition.trim() ?? ''
  }));
}

/** A hit count as the kernel accepts it: "3", "== 3", ">= 3", "% 10", ... or empty. */
export function validHitCondition(text: string): boolean {
  return /^\s*((==|=|!=|>=|<=|>|<|%)\s*)?\d+\s*$/.test(text) || !text.trim();
}

/**
 * The breakpoints of one source after a `breakpoint` event (the kernel moved or
 * verified a breakpoint once the cell was built), or null when the event is not
 * about these breakpoints.
 */
export function applyBreakpointEvent<T extends IKernelBreakpoint>(
  current: T[],
  changed: IKernelBreakpoint
): T[] | null {
  if (typeof changed?.id !== 'number') {
    return null;
  }
  const at = current.findIndex(bp => bp.id === changed.id);
  if (at < 0) {
    return null;
  }
  const next = current.slice();
  next[at] = { ...current[at], ...changed };
  // Two breakpoints that moved to the same line are one gutter marker.
  return next.filter(
    (bp, i) => next.findIndex(other => other.line === bp.line) === i
  );
}

export interface IInactiveNotice {
  path: string;
  line: number | undefined;
  text: string;
}

/** The kernel's messages about breakpoints that are not active (cyscope's only). */
export function inactiveNotices(breakpoints: unknown): IInactiveNotice[] {
  if (!Array.isArray(breakpoints)) {
    return [];
  }
  return breakpoints
    .filter(
      (bp: IKernelBreakpoint) =>
        bp?.verified === false &&
        typeof bp.message === 'string' &&
        bp.message.startsWith('cyscope:')
    )
    .map((bp: IKernelBreakpoint) => ({
      path: bp.source?.path ?? '',
      line: bp.line,
      text: `line ${bp.line}: ${bp.message}`
    }));
}
