import {
  cellMimeType,
  CYTHON_MIME,
  isCythonCellSource
} from '../../src/cythonSource';

describe('%%cython cells', () => {
  it.each([
    ['%%cython\ncdef int x = 1', true],
    ['%%cython -a --cplus\n', true],
    ['  %%cython', true],
    ['%%cython', true],
    ['%%cythonize\n', false],
    ['# %%cython\n', false],
    ['x = 1\n%%cython', false],
    ['%cython', false]
  ])('%j is a Cython cell: %s', (source, expected) => {
    expect(isCythonCellSource(source)).toBe(expected);
  });

  it('picks the Cython mime type only for %%cython cells', () => {
    expect(cellMimeType('%%cython\n', 'text/x-ipython')).toBe(CYTHON_MIME);
    expect(cellMimeType('print(1)', 'text/x-ipython')).toBe('text/x-ipython');
  });
});
