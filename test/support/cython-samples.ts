/**
 * A `%%cython` cell with one Cython error and the diagnostics payload the
 * kernel sends for it. The unit tests draw it on a bare CodeMirror view; the
 * e2e tests save it in a notebook, so both check the same line and column.
 */
import type { IDiagnostics } from '../../src/cython/payload';

// Line 1 is the %%cython line, as JupyterLab numbers the cell.
export const CYTHON_ERROR = `%%cython
def add_y(int n):
    return n + y`;

export const CYTHON_ERROR_DIAGNOSTICS: IDiagnostics = {
  v: 1,
  ok: false,
  module: 'm',
  diagnostics: [
    {
      severity: 'error',
      line: 3,
      column: 16,
      message: 'undeclared name not builtin: y',
      source: 'cython'
    }
  ],
  output: ''
};
