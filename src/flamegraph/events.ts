/**
 * The DOM event a flamegraph sends when a frame of a cell is clicked: a
 * rendered output does not know its notebook's cells; the plugin, which
 * listens on each notebook (and on the flamegraphs it opens), does.
 */

export const CELL_LINE_EVENT = 'cyscope-flamegraph-cell-line';

export interface ICellLineRequest {
  /** Execution count of the cell the frame's code is in. */
  cell: number;
  /** The notebook's id of that cell, when the kernel knew it. */
  cellId: string | null;
  /** Line of the cell, 1-based (a %%cython cell's line 1 is %%cython). */
  line: number;
}

export function requestCellLine(
  source: HTMLElement,
  request: ICellLineRequest
): void {
  source.dispatchEvent(
    new CustomEvent<ICellLineRequest>(CELL_LINE_EVENT, {
      bubbles: true,
      detail: request
    })
  );
}
