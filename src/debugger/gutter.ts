/**
 * Which editor line a right-click in JupyterLab's breakpoint gutter was on.
 *
 * JupyterLab's debugger adds a CodeMirror gutter with the class `cm-breakpoint-gutter`
 * to every cell editor while the debugger is on; each of its rows is a
 * `.cm-gutterElement` (empty rows too).
 */
import { EditorView } from '@codemirror/view';

export const GUTTER_ROW_SELECTOR =
  '.cm-gutter.cm-breakpoint-gutter .cm-gutterElement';

export interface IGutterHit {
  view: EditorView;
  line: number;
  /** The cell editor's whole text: JupyterLab derives the cell's source path from it. */
  code: string;
}

/** The editor and line of a gutter row (or of an element inside one), or null. */
export function gutterHit(element: Element | null): IGutterHit | null {
  const row = element?.closest('.cm-gutterElement');
  const editorDom = row?.closest('.cm-editor') as HTMLElement | null;
  if (!row || !editorDom || !row.closest('.cm-gutter.cm-breakpoint-gutter')) {
    return null;
  }
  const view = EditorView.findFromDOM(editorDom);
  if (!view) {
    return null;
  }
  const rect = row.getBoundingClientRect();
  const middle = rect.top + rect.height / 2 - view.documentTop;
  const block = view.lineBlockAtHeight(Math.max(0, middle));
  const line = view.state.doc.lineAt(block.from).number;
  return { view, line, code: view.state.doc.toString() };
}
