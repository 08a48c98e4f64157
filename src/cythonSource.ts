/** Recognising `%%cython` cells from their source (no JupyterLab imports). */

export const CYTHON_MIME = 'text/x-cython';

/** True when the cell source starts with the %%cython cell magic. */
export function isCythonCellSource(source: string): boolean {
  return /^\s*%%cython(\s|$)/.test(source);
}

/** The mime type a code cell should have, given the notebook's default. */
export function cellMimeType(source: string, notebookMime: string): string {
  return isCythonCellSource(source) ? CYTHON_MIME : notebookMime;
}
