/**
 * Inline flamegraphs: plugin wiring only. Registers the output renderer of
 * the flamegraph payload, and answers its "go to this cell's line" events
 * in every notebook (./cellLines); adds a row action and export buttons to
 * the memory panel (./panelActions).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { IMemoryPanelExtensions } from '../tokens';

import { answerCellLineEvents } from './cellLines';
import { addPanelActions } from './panelActions';
import { flamegraphRendererFactory, RENDERER_RANK } from './renderer';

export const FLAMEGRAPH_PLUGIN_ID = 'jupyterlab-cyscope:flamegraph';

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  rendermime: IRenderMimeRegistry,
  memoryPanel: IMemoryPanelExtensions | null
): void {
  rendermime.addFactory(flamegraphRendererFactory, RENDERER_RANK);
  const watch = (panel: NotebookPanel) => {
    const stop = answerCellLineEvents(panel.content.node, () => panel);
    panel.disposed.connect(stop);
  };
  notebooks.forEach(watch);
  notebooks.widgetAdded.connect((_, panel) => watch(panel));
  if (memoryPanel) {
    addPanelActions(app, memoryPanel);
  }
}

const flamegraphPlugin: JupyterFrontEndPlugin<void> = {
  id: FLAMEGRAPH_PLUGIN_ID,
  description:
    'Inline flamegraphs of where a cell’s memory went (%%memory, %memory_flamegraph, a report as a value).',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [IMemoryPanelExtensions],
  activate
};

export const flamegraphPlugins: JupyterFrontEndPlugin<void>[] = [
  flamegraphPlugin
];
