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
import { Notification } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ITranslator } from '@jupyterlab/translation';

import { plainTrans, TRANSLATION_DOMAIN } from '../i18n';
import { IMemoryPanelExtensions } from '../tokens';

import { answerCellLineEvents } from './cellLines';
import { addPanelActions } from './panelActions';
import { flamegraphRendererFactory, RENDERER_RANK } from './renderer';

export const FLAMEGRAPH_PLUGIN_ID = 'jupyterlab-cyscope:flamegraph';

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  rendermime: IRenderMimeRegistry,
  memoryPanel: IMemoryPanelExtensions | null,
  translator: ITranslator | null
): void {
  const trans = translator?.load(TRANSLATION_DOMAIN) ?? plainTrans;
  rendermime.addFactory(flamegraphRendererFactory, RENDERER_RANK);
  const watch = (panel: NotebookPanel) => {
    const stop = answerCellLineEvents(panel.content.node, () => panel);
    panel.disposed.connect(stop);
  };
  notebooks.forEach(watch);
  notebooks.widgetAdded.connect((_, panel) => watch(panel));
  if (memoryPanel) {
    addPanelActions(app, memoryPanel, trans, message =>
      Notification.warning(message, { autoClose: 8000 })
    );
  }
}

const flamegraphPlugin: JupyterFrontEndPlugin<void> = {
  id: FLAMEGRAPH_PLUGIN_ID,
  description:
    'Inline flamegraphs of where a cell’s memory went (%%memory, %memory_flamegraph, a report as a value).',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [IMemoryPanelExtensions, ITranslator],
  activate
};

export const flamegraphPlugins: JupyterFrontEndPlugin<void>[] = [
  flamegraphPlugin
];
