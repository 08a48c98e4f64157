/**
 * The CodeMirror 6 side of crash reports: the cell lines on the crashing
 * thread's stack, marked like a diagnostic (a line background, a gutter
 * marker, a hover tooltip); the crash site stronger than its callers. Set
 * with `setCrashMarks`; any edit of the cell drops them (their line
 * numbers describe the code that crashed).
 */
import {
  Extension,
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

/** One marked line of a cell. */
export interface IEditorCrashMark {
  line: number;
  site: boolean;
  messages: string[];
}

export const setCrashMarks = StateEffect.define<IEditorCrashMark[]>();

interface IMarksState {
  marks: IEditorCrashMark[];
  decorations: DecorationSet;
  markers: RangeSet<GutterMarker>;
}

const NONE: IMarksState = {
  marks: [],
  decorations: Decoration.none,
  markers: RangeSet.empty
};

class CrashMarker extends GutterMarker {
  constructor(readonly mark: IEditorCrashMark) {
    super();
  }
  eq(other: GutterMarker): boolean {
    return (
      other instanceof CrashMarker &&
      other.mark.site === this.mark.site &&
      other.mark.messages.join('\n') === this.mark.messages.join('\n')
    );
  }
  toDOM(): Node {
    const node = document.createElement('span');
    node.className = `cyscope-cm-crashMarker${this.mark.site ? ' cyscope-mod-site' : ''}`;
    node.textContent = this.mark.site ? '✖' : '↑';
    node.title = this.mark.messages.join('\n');
    node.setAttribute('aria-label', node.title);
    return node;
  }
}

function build(
  marks: IEditorCrashMark[],
  view: { doc: { lines: number; line(n: number): { from: number } } }
): IMarksState {
  const decorations: Range<Decoration>[] = [];
  const markers: Range<GutterMarker>[] = [];
  for (const mark of [...marks].sort((a, b) => a.line - b.line)) {
    if (mark.line < 1 || mark.line > view.doc.lines) {
      continue;
    }
    const from = view.doc.line(mark.line).from;
    decorations.push(
      Decoration.line({
        class: `cyscope-cm-crashLine${mark.site ? ' cyscope-mod-site' : ''}`,
        attributes: { 'data-cyscope-crash-line': String(mark.line) }
      }).range(from)
    );
    markers.push(new CrashMarker(mark).range(from));
  }
  return {
    marks,
    decorations: Decoration.set(decorations, true),
    markers: RangeSet.of(markers, true)
  };
}

const marksField = StateField.define<IMarksState>({
  create: () => NONE,
  update(value, tr) {
    for (const effect of tr.effects) {
      if (effect.is(setCrashMarks)) {
        value = effect.value.length ? build(effect.value, tr.state) : NONE;
      }
    }
    if (tr.docChanged && value !== NONE) {
      value = NONE;
    }
    return value;
  },
  provide: field => EditorView.decorations.from(field, v => v.decorations)
});

/** The marks currently drawn on an editor. */
export function currentCrashMarks(view: EditorView): IEditorCrashMark[] {
  return view.state.field(marksField, false)?.marks ?? [];
}

const tooltip = hoverTooltip((view, pos) => {
  const line = view.state.doc.lineAt(pos);
  const mark = currentCrashMarks(view).find(m => m.line === line.number);
  if (!mark) {
    return null;
  }
  return {
    pos: line.from,
    end: line.to,
    above: true,
    create: () => {
      const dom = document.createElement('div');
      dom.className = `cyscope-cm-crashTooltip${mark.site ? ' cyscope-mod-site' : ''}`;
      dom.textContent = mark.messages.join('\n');
      return { dom };
    }
  };
});

/** The extension to inject once into a cell's editor. */
export function crashMarksExtension(): Extension {
  return [
    marksField,
    gutter({
      class: 'cyscope-cm-crashGutter',
      markers: view => view.state.field(marksField).markers
    }),
    tooltip
  ];
}
