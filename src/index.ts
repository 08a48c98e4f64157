/**
 * jupyterlab-cyscope: plugin wiring only. Each notebook gets a KernelChannel
 * (kernel access) and a MemoryModel (state); the sidebar MemoryPanel shows
 * the current notebook's model.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { KernelChannel } from './channel';
import { crashPlugins } from './crash/plugin';
import { cythonPlugins } from './cython/plugin';
import { flamegraphPlugins } from './flamegraph/plugin';
import { watchCythonCells } from './cythonCells';
import { cyscopeIcon } from './icons';
import { MemoryPanel } from './memoryPanel';
import { MemoryModel } from './model';

export const PLUGIN_ID = 'jupyterlab-cyscope:plugin';
const DEFAULT_INTERVAL_MS = 100;

namespace CommandIDs {
  export const showMemory = 'cyscope:show-memory-panel';
}

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  labShell: ILabShell | null,
  settings: ISettingRegistry | null
): void {
  const panel = new MemoryPanel();
  panel.title.icon = cyscopeIcon;
  panel.title.label = labShell ? '' : 'cyscope';
  app.shell.add(panel, 'left', { rank: 900 });

  let intervalMs = DEFAULT_INTERVAL_MS;
  const models = new Map<NotebookPanel, MemoryModel>();

  const showCurrent = () => {
    const current = notebooks.currentWidget;
    panel.model = current ? (models.get(current) ?? null) : null;
    panel.notebookName = current ? current.context.path : '';
  };

  notebooks.widgetAdded.connect((_, notebook) => {
    void notebook.context.ready.then(() => watchCythonCells(notebook));
    const channel = new KernelChannel(notebook.sessionContext, () =>
      model.handshake()
    );
    const model = new MemoryModel(channel, intervalMs);
    models.set(notebook, model);
    notebook.disposed.connect(() => {
      models.delete(notebook);
      model.dispose();
      channel.dispose();
      showCurrent();
    });
    showCurrent();
  });
  notebooks.currentChanged.connect(showCurrent);
  panel.rowActivated.connect((_, record) => {
    const notebook = notebooks.currentWidget;
    if (notebook && record.cell_id) {
      revealCell(notebook, record.cell_id);
    }
  });
  showCurrent();

  app.commands.addCommand(CommandIDs.showMemory, {
    label: 'Show cyscope Memory Panel',
    execute: () => app.shell.activateById(panel.id)
  });

  if (settings) {
    void settings.load(PLUGIN_ID).then(loaded => {
      const apply = () => {
        intervalMs = loaded.get('sampleIntervalMs').composite as number;
        models.forEach(model => (model.intervalMs = intervalMs));
      };
      loaded.changed.connect(apply);
      apply();
    });
  }
}

/** Select and scroll to the cell with this id, if the notebook still has it. */
function revealCell(notebook: NotebookPanel, cellId: string): void {
  const content = notebook.content;
  const index = content.widgets.findIndex(cell => cell.model.id === cellId);
  if (index >= 0) {
    content.activeCellIndex = index;
    void content.scrollToCell(content.widgets[index]);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'cyscope: per-cell memory of notebook kernels, and inspectable %%cython cells.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, ISettingRegistry],
  activate
};

export default [
  plugin,
  ...cythonPlugins,
  ...crashPlugins,
  ...flamegraphPlugins
];
