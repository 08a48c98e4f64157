import { LabIcon } from '@jupyterlab/ui-components';

// A small gauge: reads as "memory / measurement" at 16 px.
const CYSCOPE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 4a10 10 0 0 0-10 10h2.2a7.8 7.8 0 0 1 15.6 0H22A10 10 0 0 0 12 4z"/>
    <path d="M11 14.5l5.2-6 1 .8-4.4 6.5a1.6 1.6 0 1 1-1.8-1.3z"/>
    <rect x="3" y="17" width="18" height="2.4" rx="1"/>
  </g>
</svg>`;

export const cyscopeIcon = new LabIcon({
  name: 'jupyterlab-cyscope:gauge',
  svgstr: CYSCOPE_SVG
});
