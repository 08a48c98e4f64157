import { formatBytes, formatDelta, formatDuration } from '../../src/format';
import { sparklinePoints } from '../../src/sparkline';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [200 * 1024 * 1024, '200 MiB'],
    [-2048, '-2.0 KiB'],
    [5 * 1024 ** 3, '5.0 GiB']
  ])('%d -> %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('signs deltas', () => {
    expect(formatDelta(1536)).toBe('+1.5 KiB');
    expect(formatDelta(-1536)).toBe('-1.5 KiB');
    expect(formatDelta(0)).toBe('0 B');
  });
});

describe('formatDuration', () => {
  it.each([
    [12.3, '12 ms'],
    [1534, '1.53 s'],
    [61000, '1 min 1 s']
  ])('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('sparklinePoints', () => {
  it('spans the box from the lowest to the highest value', () => {
    expect(sparklinePoints([0, 5, 10], 100, 12)).toBe(
      '0.0,11.0 50.0,6.0 100.0,1.0'
    );
  });
  it('draws a flat series and an empty one', () => {
    expect(sparklinePoints([3, 3], 10, 4)).toBe('0.0,3.0 10.0,3.0');
    expect(sparklinePoints([], 10, 4)).toBe('');
  });
});
