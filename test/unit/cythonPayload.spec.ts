/**
 * The %%cython payload checks against the protocol's shared fixtures (the
 * kernel's pytest checks the same files against the JSON schemas).
 */
import {
  describeDiagnostic,
  parseAnnotation,
  parseDiagnostics
} from '../../src/cython/payload';
import { fixture } from '../support/protocol-files';

describe('parseDiagnostics', () => {
  it.each(fixture('diagnostics-valid.json').map((p, i) => [i, p]))(
    'accepts valid fixture %i',
    (_, payload) => {
      const parsed = parseDiagnostics(payload);
      expect(parsed).toMatchObject({ ok: true });
    }
  );

  it.each(fixture('diagnostics-invalid.json').map((p, i) => [i, p]))(
    'rejects invalid fixture %i with a message',
    (_, payload) => {
      const parsed = parseDiagnostics(payload);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.error).toMatch(
          /^Malformed cyscope diagnostics payload: /
        );
      }
    }
  );

  it('keeps the fields it knows and defaults a missing module to null', () => {
    const parsed = parseDiagnostics({
      v: 1,
      ok: true,
      diagnostics: [],
      output: '',
      future: 1
    });
    expect(parsed).toEqual({
      ok: true,
      value: { v: 1, ok: true, module: null, diagnostics: [], output: '' }
    });
  });

  it('names the version it cannot read', () => {
    const parsed = parseDiagnostics({
      v: 2,
      ok: false,
      diagnostics: [],
      output: ''
    });
    expect(parsed.ok || parsed.error).toMatch(/version 2 is not supported/);
  });

  it('names the bad field', () => {
    const [, , , , bad] = fixture('diagnostics-invalid.json');
    const parsed = parseDiagnostics(bad);
    expect(parsed.ok || parsed.error).toMatch(/diagnostics\[0\]\.severity/);
  });

  it.each([undefined, null, 42, 'text', [], [1, 2], () => 0])(
    'never throws on %p',
    value => {
      expect(parseDiagnostics(value).ok).toBe(false);
      expect(parseAnnotation(value).ok).toBe(false);
    }
  );

  it('survives a getter that throws', () => {
    const hostile = {
      v: 1,
      ok: true,
      output: '',
      get diagnostics(): unknown {
        throw new Error('boom');
      }
    };
    const parsed = parseDiagnostics(hostile);
    expect(parsed.ok || parsed.error).toMatch(/boom/);
  });
});

describe('parseAnnotation', () => {
  it.each(fixture('annotation-valid.json').map((p, i) => [i, p]))(
    'accepts valid fixture %i',
    (_, payload) => {
      expect(parseAnnotation(payload)).toMatchObject({ ok: true });
    }
  );

  it.each(fixture('annotation-invalid.json').map((p, i) => [i, p]))(
    'rejects invalid fixture %i with a message',
    (_, payload) => {
      const parsed = parseAnnotation(payload);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.error).toMatch(/^Malformed cyscope annotation payload: /);
      }
    }
  );

  it('reads lines, scores and code', () => {
    const [first] = fixture('annotation-valid.json');
    const parsed = parseAnnotation(first);
    if (!parsed.ok) {
      throw new Error(parsed.error);
    }
    expect(parsed.value.max_score).toBe(50);
    expect(parsed.value.lines[1]).toEqual({
      line: 2,
      score: 50,
      code: expect.stringContaining('__pyx_pw_f')
    });
    expect(parsed.value.html_path).toMatch(/\.html$/);
  });
});

describe('describeDiagnostic', () => {
  it('reads like the kernel text/plain form', () => {
    expect(
      describeDiagnostic({
        severity: 'error',
        line: 3,
        column: 12,
        message: 'undeclared name not builtin: y',
        source: 'cython'
      })
    ).toBe('line 3, column 12: error: undeclared name not builtin: y');
    expect(
      describeDiagnostic({
        severity: 'warning',
        line: 5,
        column: null,
        message: 'm',
        source: 'cc'
      })
    ).toBe('line 5: warning: m');
    expect(
      describeDiagnostic({
        severity: 'error',
        line: null,
        column: null,
        message: 'linking failed',
        source: 'ld'
      })
    ).toBe('outside the cell: error: linking failed');
  });
});
