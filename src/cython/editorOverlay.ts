/**
 * The CodeMirror 6 side of the `%%cython` overlay: one StateField holds a
 * cell's diagnostics and annotation shading (set with `setCythonOverlay`),
 * drawn as line and mark decorations, a gutter, and a hover tooltip. Any
 * edit of the cell's text drops the overlay at once: its line numbers
 * describe the code that was compiled, not the code being typed.
 */
import {
  EditorState,
  Extension,
  Facet,
  Range,
  RangeSet,
  StateEffect,
  StateField
} from '@codemirror/state';
import {
  Decoration,
  DecorationSet,
  EditorView,
  gutter,
  GutterMarker,
  hoverTooltip
} from '@codemirror/view';

import { plainTrans, Trans } from '../i18n';
import { IDiagnosticMark, IShadedLine } from './layout';

/** What to draw on one cell. */
export interface ICythonOverlay {
  diagnostics: IDiagnosticMark[];
  shaded: IShadedLine[];
}

export const EMPTY_OVERLAY: ICythonOverlay = { diagnostics: [], shaded: [] };

/** Replace the overlay of an editor (EMPTY_OVERLAY clears it). */
export const setCythonOverlay = StateEffect.define<ICythonOverlay>();

interface IOverlayState {
  overlay: ICythonOverlay;
  decorations: DecorationSet;
  markers: RangeSet<GutterMarker>;
}

class DiagnosticMarker extends GutterMarker {
  constructor(readonly mark: IDiagnosticMark) {
    super();
  }
  eq(other: GutterMarker): boolean {
    return (
      other instanceof DiagnosticMarker &&
      other.mark.severity === this.mark.severity &&
      other.mark.messages.join('\n') === this.mark.messages.join('\n')
    );
  }
  toDOM(): Node {
    const node = document.createElement('span');
    node.className = `cyscope-cm-marker cyscope-mod-${this.mark.severity}`;
    node.textContent = this.mark.severity === 'error' ? '●' : '▲';
    node.title = this.mark.messages.join('\n');
    node.setAttribute('aria-label', node.title);
    return node;
  }
}

class AnnotationMarker extends GutterMarker {
  constructor(readonly shaded: IShadedLine) {
    super();
  }
  eq(other: GutterMarker): boolean {
    return (
      other instanceof AnnotationMarker &&
      other.shaded.line === this.shaded.line &&
      other.shaded.score === this.shaded.score
    );
  }
  toDOM(view: EditorView): Node {
    const t = view.state.facet(overlayTrans);
    const node = document.createElement('span');
    node.className = `cyscope-cm-marker cyscope-mod-annotation cyscope-mod-shade-${this.shaded.shade}`;
    node.textContent = '+';
    node.title = t.__(
      'Show the C generated for line %1 (score %2)',
      this.shaded.line,
      this.shaded.score
    );
    return node;
  }
}

const EMPTY_STATE: IOverlayState = {
  overlay: EMPTY_OVERLAY,
  decorations: Decoration.none,
  markers: RangeSet.empty
};

function build(overlay: ICythonOverlay, state: EditorState): IOverlayState {
  const doc = state.doc;
  const decorations: Range<Decoration>[] = [];
  const markers: Range<GutterMarker>[] = [];
  const diagnosed = new Set<number>();
  for (const mark of overlay.diagnostics) {
    if (mark.line > doc.lines) {
      continue;
    }
    diagnosed.add(mark.line);
    const line = doc.line(mark.line);
    const title = mark.messages.join('\n');
    decorations.push(
      Decoration.line({
        class: `cyscope-cm-diagnosticLine cyscope-mod-${mark.severity}`
      }).range(line.from)
    );
    const from = Math.min(line.from + mark.from, line.to);
    const to = Math.min(line.from + mark.to, line.to);
    if (to > from) {
      decorations.push(
        Decoration.mark({
          class: `cyscope-cm-squiggle cyscope-mod-${mark.severity}`,
          attributes: { title, 'data-cyscope-line': String(mark.line) }
        }).range(from, to)
      );
    }
    markers.push(new DiagnosticMarker(mark).range(line.from));
  }
  for (const shaded of overlay.shaded) {
    if (shaded.line > doc.lines) {
      continue;
    }
    const line = doc.line(shaded.line);
    if (shaded.shade > 0) {
      decorations.push(
        Decoration.line({
          class: `cyscope-cm-shade cyscope-mod-shade-${shaded.shade}`,
          attributes: { 'data-cyscope-score': String(shaded.score) }
        }).range(line.from)
      );
    }
    if (!diagnosed.has(shaded.line)) {
      markers.push(new AnnotationMarker(shaded).range(line.from));
    }
  }
  return {
    overlay,
    decorations: Decoration.set(decorations, true),
    markers: RangeSet.of(markers, true)
  };
}

const overlayField = StateField.define<IOverlayState>({
  create: () => EMPTY_STATE,
  update(value, tr) {
    for (const effect of tr.effects) {
      if (effect.is(setCythonOverlay)) {
        value = build(effect.value, tr.state);
      }
    }
    if (tr.docChanged && value.overlay !== EMPTY_OVERLAY) {
      value = EMPTY_STATE;
    }
    return value;
  },
  provide: field => EditorView.decorations.from(field, v => v.decorations)
});

/** The overlay currently drawn on an editor. */
export function currentOverlay(view: EditorView): ICythonOverlay {
  return view.state.field(overlayField, false)?.overlay ?? EMPTY_OVERLAY;
}

function shadedAt(view: EditorView, line: number): IShadedLine | undefined {
  return currentOverlay(view).shaded.find(s => s.line === line);
}

const diagnosticTooltip = hoverTooltip((view, pos) => {
  const line = view.state.doc.lineAt(pos);
  const mark = currentOverlay(view).diagnostics.find(
    m => m.line === line.number
  );
  if (!mark) {
    return null;
  }
  return {
    pos: Math.min(line.from + mark.from, line.to),
    end: Math.min(line.from + mark.to, line.to),
    above: true,
    create: () => {
      const dom = document.createElement('div');
      dom.className = `cyscope-cm-tooltip cyscope-mod-${mark.severity}`;
      mark.diagnostics.forEach((diagnostic, i) => {
        const row = document.createElement('div');
        row.className = `cyscope-mod-${diagnostic.severity}`;
        row.textContent = mark.messages[i];
        dom.appendChild(row);
      });
      return { dom };
    }
  };
});

/** Called with a cell line when the user asks for its generated C. */
export type ShowCode = (line: number) => void;

/** The translations the overlay's own strings use. */
const overlayTrans = Facet.define<Trans, Trans>({
  combine: values => values[0] ?? plainTrans
});

/** The extension to inject once into a cell's editor. */
export function cythonOverlay(
  showCode: ShowCode,
  trans: Trans = plainTrans
): Extension {
  return [
    overlayTrans.of(trans),
    overlayField,
    gutter({
      class: 'cyscope-cm-gutter',
      markers: view => view.state.field(overlayField).markers,
      domEventHandlers: {
        mousedown: (view, block) => {
          const line = view.state.doc.lineAt(block.from).number;
          if (!shadedAt(view, line)) {
            return false;
          }
          showCode(line);
          return true;
        }
      }
    }),
    diagnosticTooltip,
    EditorView.domEventHandlers({
      click: (event, view) => {
        if (!view.state.selection.main.empty) {
          return false; // a drag that selected text, not a click on a line
        }
        const pos = view.posAtCoords({ x: event.clientX, y: event.clientY });
        if (pos === null) {
          return false;
        }
        const line = view.state.doc.lineAt(pos).number;
        const shaded = shadedAt(view, line);
        if (shaded && shaded.shade > 0) {
          showCode(line);
        }
        // Clicking still places the cursor as usual.
        return false;
      }
    })
  ];
}
