import {
  annotatedLine,
  darkestLine,
  diagnosticMarks,
  diagnosticSpan,
  shadedLines,
  shadeOf
} from '../../src/cython/layout';
import { IAnnotation, IDiagnostics } from '../../src/cython/payload';

describe('shadeOf', () => {
  it('leaves pure C unshaded and scales the rest in four buckets', () => {
    expect(shadeOf(0, 50)).toBe(0);
    expect(shadeOf(3, 0)).toBe(0);
    expect(shadeOf(1, 50)).toBe(1);
    expect(shadeOf(12, 50)).toBe(1);
    expect(shadeOf(13, 50)).toBe(2);
    expect(shadeOf(25, 50)).toBe(2);
    expect(shadeOf(26, 50)).toBe(3);
    expect(shadeOf(38, 50)).toBe(4);
    expect(shadeOf(50, 50)).toBe(4);
    // A score above the declared maximum is clamped, not overflowed.
    expect(shadeOf(80, 50)).toBe(4);
  });
});

describe('diagnosticSpan', () => {
  const text = '    return n + y';
  it('underlines the word at the column', () => {
    expect(diagnosticSpan(text, 16)).toEqual({ from: 15, to: 16 });
    expect(diagnosticSpan(text, 5)).toEqual({ from: 4, to: 10 });
  });
  it('underlines one character where no word starts', () => {
    expect(diagnosticSpan(text, 14)).toEqual({ from: 13, to: 14 });
  });
  it('underlines the code without indentation when there is no column', () => {
    expect(diagnosticSpan(text, null)).toEqual({ from: 4, to: 16 });
    expect(diagnosticSpan('x = 1   ', null)).toEqual({ from: 0, to: 5 });
  });
  it('falls back to the whole line past its end', () => {
    expect(diagnosticSpan('ab', 40)).toEqual({ from: 0, to: 2 });
    expect(diagnosticSpan('', 3)).toEqual({ from: 0, to: 0 });
  });
});

describe('diagnosticMarks', () => {
  const lines = ['%%cython', 'cdef extern from *:', '    int broken( {', ''];
  const payload = (diagnostics: IDiagnostics['diagnostics']): IDiagnostics => ({
    v: 1,
    ok: false,
    module: 'm',
    diagnostics,
    output: ''
  });

  it('groups by line, errors first, and drops lines outside the cell', () => {
    const marks = diagnosticMarks(
      payload([
        {
          severity: 'warning',
          line: 3,
          column: 5,
          message: 'w',
          source: 'cc'
        },
        {
          severity: 'error',
          line: 3,
          column: 9,
          message: 'e',
          source: 'cc'
        },
        {
          severity: 'error',
          line: null,
          column: null,
          message: 'elsewhere',
          source: 'ld'
        },
        {
          severity: 'error',
          line: 9,
          column: null,
          message: 'past the end',
          source: 'cython'
        },
        {
          severity: 'error',
          line: 1,
          column: null,
          message: 'bad flag',
          source: 'ld'
        }
      ]),
      lines
    );
    expect(marks.map(m => m.line)).toEqual([1, 3]);
    expect(marks[1]).toMatchObject({
      severity: 'error',
      from: 8,
      to: 14,
      messages: ['error: e [C compiler]', 'warning: w [C compiler]']
    });
    expect(marks[0]).toMatchObject({
      from: 0,
      to: 8,
      messages: ['error: bad flag [linker]']
    });
  });
});

describe('annotation layout', () => {
  const payload: IAnnotation = {
    v: 1,
    module: 'm',
    max_score: 50,
    lines: [
      { line: 1, score: 0, code: '' },
      { line: 2, score: 50, code: 'wrapper();' },
      { line: 3, score: 0, code: '  s = 0;' },
      { line: 4, score: 3, code: 'x();' },
      { line: 5, score: 50, code: 'again();' },
      { line: 9, score: 7, code: 'beyond();' }
    ]
  };

  it('shades lines with a score, marks lines with code, inside the cell', () => {
    expect(shadedLines(payload, 5)).toEqual([
      { line: 2, shade: 4, score: 50, code: 'wrapper();' },
      { line: 3, shade: 0, score: 0, code: '  s = 0;' },
      { line: 4, shade: 1, score: 3, code: 'x();' },
      { line: 5, shade: 4, score: 50, code: 'again();' }
    ]);
  });

  it('finds the darkest line (first on ties) and a line by number', () => {
    expect(darkestLine(payload)?.line).toBe(2);
    expect(darkestLine({ ...payload, lines: [] })).toBeNull();
    expect(annotatedLine(payload, 4)?.code).toBe('x();');
    expect(annotatedLine(payload, 7)).toBeNull();
  });
});
