/**
 * The CodeMirror overlay on a real EditorView (CodeMirror's CommonJS build
 * runs in jsdom): decorations on the right lines, gutter markers, cleared
 * by an edit.
 */
import { EditorState } from '@codemirror/state';
import { EditorView } from '@codemirror/view';

import {
  currentOverlay,
  cythonOverlay,
  EMPTY_OVERLAY,
  setCythonOverlay
} from '../../src/cython/editorOverlay';
import { diagnosticMarks, shadedLines } from '../../src/cython/layout';
import { IAnnotation } from '../../src/cython/payload';
import {
  CYTHON_ERROR,
  CYTHON_ERROR_DIAGNOSTICS
} from '../support/cython-samples';

const SOURCE = CYTHON_ERROR;
const diagnostics = CYTHON_ERROR_DIAGNOSTICS;

const annotation: IAnnotation = {
  v: 1,
  module: 'm',
  max_score: 40,
  lines: [
    { line: 1, score: 0, code: '' },
    { line: 2, score: 40, code: 'wrapper();' },
    { line: 3, score: 5, code: 'add();' }
  ]
};

function editor(shown: number[] = []): EditorView {
  const parent = document.createElement('div');
  document.body.appendChild(parent);
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: SOURCE,
      extensions: cythonOverlay(line => shown.push(line))
    })
  });
}

const lines = (view: EditorView) => [
  ...view.dom.querySelectorAll<HTMLElement>('.cm-line')
];

describe('cythonOverlay', () => {
  afterEach(() => {
    document.body.textContent = '';
  });

  it('marks the diagnostic line, the word at the column, and the gutter', () => {
    const view = editor();
    view.dispatch({
      effects: setCythonOverlay.of({
        diagnostics: diagnosticMarks(diagnostics, SOURCE.split('\n')),
        shaded: []
      })
    });
    const third = lines(view)[2];
    expect(third.classList.contains('cyscope-cm-diagnosticLine')).toBe(true);
    expect(third.classList.contains('cyscope-mod-error')).toBe(true);
    const squiggle = third.querySelector('.cyscope-cm-squiggle');
    expect(squiggle?.textContent).toBe('y');
    expect(squiggle?.getAttribute('title')).toBe(
      'error: undeclared name not builtin: y [Cython]'
    );
    expect(
      lines(view).filter(l => l.classList.contains('cyscope-cm-diagnosticLine'))
    ).toHaveLength(1);
    const markers = view.dom.querySelectorAll(
      '.cyscope-cm-gutter .cyscope-cm-marker.cyscope-mod-error'
    );
    expect(markers).toHaveLength(1);
    view.destroy();
  });

  it('shades annotated lines by score and keeps the payload for clicks', () => {
    const view = editor();
    const shaded = shadedLines(annotation, 3);
    view.dispatch({
      effects: setCythonOverlay.of({ diagnostics: [], shaded })
    });
    expect(lines(view).map(l => l.className.match(/shade-\d/)?.[0])).toEqual([
      undefined,
      'shade-4',
      'shade-1'
    ]);
    expect(lines(view)[1].dataset.cyscopeScore).toBe('40');
    expect(
      view.dom.querySelectorAll('.cyscope-cm-marker.cyscope-mod-annotation')
    ).toHaveLength(2);
    expect(currentOverlay(view).shaded).toBe(shaded);
    view.destroy();
  });

  it('drops everything on an edit, and on an empty overlay', () => {
    const view = editor();
    const overlay = {
      diagnostics: diagnosticMarks(diagnostics, SOURCE.split('\n')),
      shaded: shadedLines(annotation, 3)
    };
    view.dispatch({ effects: setCythonOverlay.of(overlay) });
    view.dispatch({ changes: { from: view.state.doc.length, insert: ' ' } });
    expect(currentOverlay(view)).toBe(EMPTY_OVERLAY);
    expect(view.dom.querySelector('.cyscope-cm-diagnosticLine')).toBeNull();
    expect(view.dom.querySelector('.cyscope-cm-shade')).toBeNull();
    expect(view.dom.querySelector('.cyscope-cm-marker')).toBeNull();

    view.dispatch({ effects: setCythonOverlay.of(overlay) });
    expect(view.dom.querySelector('.cyscope-cm-shade')).not.toBeNull();
    view.dispatch({ effects: setCythonOverlay.of(EMPTY_OVERLAY) });
    expect(view.dom.querySelector('.cyscope-cm-shade')).toBeNull();
    view.destroy();
  });

  it('ignores lines the cell no longer has', () => {
    const view = editor();
    view.dispatch({
      effects: setCythonOverlay.of({
        diagnostics: [
          {
            line: 9,
            from: 0,
            to: 1,
            severity: 'error',
            messages: ['error: x'],
            diagnostics: []
          }
        ],
        shaded: [{ line: 7, shade: 2, score: 3, code: 'c' }]
      })
    });
    expect(view.dom.querySelector('.cyscope-cm-diagnosticLine')).toBeNull();
    expect(view.dom.querySelector('.cyscope-cm-shade')).toBeNull();
    view.destroy();
  });
});
