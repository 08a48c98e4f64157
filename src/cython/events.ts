/**
 * DOM events the output renderers send up to the notebook: a rendered
 * output does not know which cell it belongs to; the cell overlay layer,
 * listening on the notebook's node, does. No JupyterLab imports.
 */

export const GOTO_LINE_EVENT = 'cyscope-cython-goto-line';
export const SHOW_CODE_EVENT = 'cyscope-cython-show-code';

export interface ILineRequest {
  /** Cell line, 1-based. */
  line: number;
  /** 1-based column, or null. */
  column: number | null;
}

export function requestLine(
  source: HTMLElement,
  type: typeof GOTO_LINE_EVENT | typeof SHOW_CODE_EVENT,
  line: number,
  column: number | null = null
): void {
  source.dispatchEvent(
    new CustomEvent<ILineRequest>(type, {
      bubbles: true,
      detail: { line, column }
    })
  );
}
