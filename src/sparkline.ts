/** A tiny SVG line of recent RSS samples for the live view. */

import { formatBytes } from './format';
import type { Trans } from './i18n';

const SVG_NS = 'http://www.w3.org/2000/svg';

export function sparklinePoints(
  values: readonly number[],
  width: number,
  height: number
): string {
  if (values.length === 0) {
    return '';
  }
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const x = i * step;
      // Leave a pixel at top and bottom so the stroke isn't clipped.
      const y = height - 1 - ((v - min) / span) * (height - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

export function createSparkline(width: number, height: number): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.classList.add('cyscope-Sparkline');
  const line = document.createElementNS(SVG_NS, 'polyline');
  svg.appendChild(line);
  return svg;
}

export function updateSparkline(
  svg: SVGSVGElement,
  values: readonly number[]
): void {
  const [, , width, height] = (svg.getAttribute('viewBox') ?? '0 0 100 20')
    .split(' ')
    .map(Number);
  svg.firstElementChild?.setAttribute(
    'points',
    sparklinePoints(values, width, height)
  );
}

/**
 * The chart's accessible name and value in words: what it shows, over how
 * long, the latest figure and the range.
 */
export function describeSparkline(
  values: readonly number[],
  samples: readonly { t_ms: number }[],
  trans: Trans
): string {
  if (values.length === 0) {
    return trans.__('Resident memory (RSS) over time: no samples yet');
  }
  const seconds =
    samples.length > 1
      ? Math.max(
          1,
          Math.round(
            (samples[samples.length - 1].t_ms - samples[0].t_ms) / 1000
          )
        )
      : 0;
  return trans.__(
    'Resident memory (RSS) over the last %1 s: %2 now, lowest %3, highest %4',
    seconds,
    formatBytes(values[values.length - 1]),
    formatBytes(Math.min(...values)),
    formatBytes(Math.max(...values))
  );
}
