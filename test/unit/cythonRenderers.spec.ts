/**
 * The %%cython output renderers and the C side view, on plain DOM: a mime
 * model is only `data` here, as JupyterLab's renderers see it.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { CythonCodePanel } from '../../src/cython/codePanel';
import {
  GOTO_LINE_EVENT,
  ILineRequest,
  SHOW_CODE_EVENT
} from '../../src/cython/events';
import {
  ANNOTATION_MIME,
  DIAGNOSTICS_MIME,
  IAnnotation
} from '../../src/cython/payload';
import {
  annotationRendererFactory,
  diagnosticsRendererFactory
} from '../../src/cython/renderers';
import { fixture } from '../support/protocol-files';

function model(data: Record<string, unknown>): IRenderMime.IMimeModel {
  return {
    trusted: false,
    data: data as any,
    metadata: {},
    setData: () => undefined
  };
}

async function render(
  factory: IRenderMime.IRendererFactory,
  data: Record<string, unknown>
): Promise<IRenderMime.IRenderer> {
  const renderer = factory.createRenderer({} as any);
  await renderer.renderModel(model(data));
  Widget.attach(renderer, document.body);
  return renderer;
}

function collect(type: string): ILineRequest[] {
  const seen: ILineRequest[] = [];
  document.body.addEventListener(type, event =>
    seen.push((event as CustomEvent<ILineRequest>).detail)
  );
  return seen;
}

afterEach(() => {
  document.body.textContent = '';
});

describe('diagnostics renderer', () => {
  it('is safe, and ranks above text/html and text/plain', () => {
    expect(diagnosticsRendererFactory.safe).toBe(true);
    expect(diagnosticsRendererFactory.defaultRank).toBeLessThan(50);
    expect(annotationRendererFactory.safe).toBe(true);
    expect(annotationRendererFactory.defaultRank).toBeLessThan(50);
  });

  it('lists diagnostics; an entry asks the notebook to go to its line', async () => {
    const [, compiler] = fixture('diagnostics-valid.json');
    const renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: compiler
    });
    const node = renderer.node;
    expect(node.classList.contains('cyscope-mod-failed')).toBe(true);
    expect(
      node.querySelector('.cyscope-Diagnostics-summary')?.textContent
    ).toBe('Cython: build failed (C compiler): 1 error, 1 warning');
    const entries = [
      ...node.querySelectorAll<HTMLElement>('.cyscope-Diagnostics-entry')
    ];
    expect(entries.map(e => e.textContent)).toEqual([
      "line 4, column 27: error: expected expression before '}' token",
      'line 4, column 27: warning: control reaches end of non-void function [-Wreturn-type]'
    ]);
    expect(node.querySelector('.cyscope-Diagnostics-source')?.textContent).toBe(
      '[C compiler]'
    );
    const seen = collect(GOTO_LINE_EVENT);
    entries[0].click();
    expect(seen).toEqual([{ line: 4, column: 27 }]);
    const output = node.querySelector('details.cyscope-Diagnostics-output');
    expect(output?.hasAttribute('open')).toBe(false);
    expect(output?.querySelector('pre')?.textContent).toBe(compiler.output);
    expect(output?.querySelector('summary')?.textContent).toBe(
      'Full compiler output (1 line)'
    );
  });

  it('shows a diagnostic outside the cell as text, not a link', async () => {
    const [, , linker] = fixture('diagnostics-valid.json');
    const renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: linker
    });
    const entries = renderer.node.querySelectorAll(
      '.cyscope-Diagnostics-entry'
    );
    expect(entries[0].tagName).toBe('BUTTON');
    expect(entries[1].tagName).toBe('SPAN');
    expect(entries[1].textContent).toBe(
      'outside the cell: error: linking failed (see output)'
    );
  });

  it.each([
    ['oom', 'Cython: build failed (out of memory): 1 error'],
    ['probes', 'Cython: build failed (probes): 1 error'],
    [undefined, 'Cython: build failed: 1 error']
  ])('names the failed stage %s in the summary', async (stage, summary) => {
    const [cython] = fixture('diagnostics-valid.json');
    const payload = { ...cython, stage };
    if (stage === undefined) {
      delete payload.stage; // a kernel from before the field
    }
    const renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: payload
    });
    expect(
      renderer.node.querySelector('.cyscope-Diagnostics-summary')?.textContent
    ).toBe(summary);
  });

  it('says when warnings alone compiled', async () => {
    const [, , , warnings, empty] = fixture('diagnostics-valid.json');
    let renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: warnings
    });
    expect(renderer.node.classList.contains('cyscope-mod-failed')).toBe(false);
    expect(
      renderer.node.querySelector('.cyscope-Diagnostics-summary')?.textContent
    ).toBe('Cython: compiled with 1 warning');
    renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: empty
    });
    expect(renderer.node.querySelector('ul')).toBeNull();
    expect(renderer.node.querySelector('details')).toBeNull();
  });

  it.each(fixture('diagnostics-invalid.json').map((p, i) => [i, p]))(
    'says why invalid fixture %i is rejected, keeps the plain text',
    async (_, payload) => {
      const renderer = await render(diagnosticsRendererFactory, {
        [DIAGNOSTICS_MIME]: payload,
        'text/plain': 'line 2: error: m [cc]'
      });
      expect(renderer.hasClass('cyscope-mod-malformed')).toBe(true);
      expect(
        renderer.node.querySelector('.cyscope-CythonOutput-error')?.textContent
      ).toMatch(/^Malformed cyscope diagnostics payload: .+/);
      expect(
        renderer.node.querySelector('.cyscope-CythonOutput-plain')?.textContent
      ).toBe('line 2: error: m [cc]');
    }
  );

  it('drops the malformed mark when an update brings a valid payload', async () => {
    const [invalid] = fixture('diagnostics-invalid.json');
    const [valid] = fixture('diagnostics-valid.json');
    const renderer = await render(diagnosticsRendererFactory, {
      [DIAGNOSTICS_MIME]: invalid
    });
    expect(renderer.hasClass('cyscope-mod-malformed')).toBe(true);
    await renderer.renderModel(model({ [DIAGNOSTICS_MIME]: valid }));
    expect(renderer.hasClass('cyscope-mod-malformed')).toBe(false);
    expect(
      renderer.node.querySelector('.cyscope-CythonOutput-error')
    ).toBeNull();
  });
});

describe('annotation renderer', () => {
  it('summarises; the darkest line asks for its C', async () => {
    const [annotation] = fixture('annotation-valid.json');
    const renderer = await render(annotationRendererFactory, {
      [ANNOTATION_MIME]: annotation,
      'text/html': '<div>classic</div>'
    });
    const summary = renderer.node.querySelector('.cyscope-Annotation-summary');
    expect(summary?.textContent).toBe(
      'Cython annotation: 6 lines, 2 with Python interaction; darkest line 2 (score 50). Click a shaded line in the cell to see its C.'
    );
    const seen = collect(SHOW_CODE_EVENT);
    (
      renderer.node.querySelector('.cyscope-Annotation-line') as HTMLElement
    ).click();
    expect(seen).toEqual([{ line: 2, column: null }]);
    expect(renderer.node.textContent).toContain(annotation.html_path);
    expect(renderer.node.textContent).not.toContain('classic');
  });

  it('says so when no line calls into Python', async () => {
    const [, empty] = fixture('annotation-valid.json');
    const renderer = await render(annotationRendererFactory, {
      [ANNOTATION_MIME]: empty
    });
    expect(renderer.node.textContent).toContain('all of it is plain C');
  });

  it('rejects a malformed payload with a message', async () => {
    const renderer = await render(annotationRendererFactory, {
      [ANNOTATION_MIME]: { v: 1, module: 'm', max_score: 0, lines: [{}] }
    });
    expect(renderer.node.textContent).toMatch(
      /Malformed cyscope annotation payload: lines\[0\]/
    );
  });
});

describe('CythonCodePanel', () => {
  const [payload] = fixture('annotation-valid.json') as IAnnotation[];

  it('invites a click until it has a line to show', () => {
    const panel = new CythonCodePanel();
    expect(panel.node.textContent).toContain('%%cython -a');
    expect(panel.node.querySelector('pre')).toBeNull();
  });

  it("shows a line's C and switches to another line", () => {
    const panel = new CythonCodePanel();
    panel.view = { payload, line: 2, cellLabel: 'cell [3]' };
    const code = () =>
      panel.node.querySelector('.cyscope-CythonCodePanel-code') as HTMLElement;
    expect(code().textContent).toBe(payload.lines[1].code);
    expect(code().dataset.line).toBe('2');
    expect(
      panel.node.querySelector('.cyscope-CythonCodePanel-title')?.textContent
    ).toBe('cell [3], line 2: score 50');
    const buttons = [
      ...panel.node.querySelectorAll<HTMLElement>(
        '.cyscope-CythonCodePanel-line'
      )
    ];
    // Line 1 generated nothing and is not offered.
    expect(buttons.map(b => b.dataset.line)).toEqual(['2', '3', '4', '5', '6']);
    expect(buttons[0].classList.contains('cyscope-mod-shade-4')).toBe(true);
    expect(buttons[4].classList.contains('cyscope-mod-shade-1')).toBe(true);
    expect(buttons[0].getAttribute('aria-pressed')).toBe('true');
    buttons[4].click();
    expect(code().textContent).toBe(payload.lines[5].code);
    expect(panel.view?.line).toBe(6);
  });

  it('says when a line generated no C', () => {
    const panel = new CythonCodePanel();
    panel.view = { payload, line: 1, cellLabel: 'cell' };
    expect(
      panel.node.querySelector('.cyscope-CythonCodePanel-code')?.textContent
    ).toBe('/* no C generated for this line */');
  });
});
