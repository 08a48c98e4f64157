/** A tiny SVG line of recent RSS samples for the live view. */

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
