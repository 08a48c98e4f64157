/**
 * jupyterlab-cyscope: plugin wiring only. Each notebook gets a KernelChannel
 * (kernel access) and a MemoryModel (state); the sidebar MemoryPanel and the
 * status-bar MemoryStatus show the current notebook's model. Settings,
 * commands, menus, shortcuts, the restored layout and translations are
 * hooked up here; the pieces live in their own modules.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Toolbar } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';

import { KernelChannel } from './channel';
import { registerCommands } from './commands';
import { crashPlugins } from './crash/plugin';
import { cythonPlugins } from './cython/plugin';
import { debuggerPlugins } from './debugger/plugin';
import { flamegraphPlugins } from './flamegraph/plugin';
import { watchCythonCells } from './cythonCells';
import { cyscopeIcon } from './icons';
import { TRANSLATION_DOMAIN } from './i18n';
import { IMemoryRowAction, MemoryPanel } from './memoryPanel';
import { MemoryModel } from './model';
import { ICellRecord } from './protocol';
import {
  DEFAULT_SETTINGS,
  ICyscopeSettings,
  kernelSettings,
  readSettings
} from './settings';
import { MemoryStatus } from './statusBar';
import { IMemoryPanelCurrent, IMemoryPanelExtensions } from './tokens';

export { IMemoryPanelExtensions } from './tokens';
export type { IMemoryPanelCurrent, IMemoryRowAction } from './tokens';

export const PLUGIN_ID = 'jupyterlab-cyscope:plugin';
const FIRST_LINE_CHARS = 200;

interface INotebookParts {
  channel: KernelChannel;
  model: MemoryModel;
}

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  labShell: ILabShell | null,
  registry: ISettingRegistry | null,
  restorer: ILayoutRestorer | null,
  palette: ICommandPalette | null,
  statusBar: IStatusBar | null,
  translator: ITranslator | null
): IMemoryPanelExtensions {
  const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
  const parts = new Map<NotebookPanel, INotebookParts>();

  // -- settings: read once before any kernel is touched, applied live -------
  let settings: ICyscopeSettings = { ...DEFAULT_SETTINGS };
  let stored: ISettingRegistry.ISettings | null = null;
  const applySettings = () => {
    parts.forEach(({ channel, model }) => {
      model.settings = kernelSettings(settings);
      channel.settingsChanged();
    });
  };
  const settingsLoaded: Promise<void> = registry
    ? registry.load(PLUGIN_ID).then(
        loaded => {
          stored = loaded;
          settings = readSettings(loaded.composite);
          loaded.changed.connect(() => {
            settings = readSettings(loaded.composite);
            applySettings();
          });
        },
        (reason: unknown) => {
          console.warn('cyscope: settings not loaded, using defaults', reason);
        }
      )
    : Promise.resolve();
  const setSetting = async <K extends keyof ICyscopeSettings>(
    key: K,
    value: ICyscopeSettings[K]
  ): Promise<void> => {
    if (stored) {
      await stored.set(key, value);
    } else {
      settings = { ...settings, [key]: value };
      applySettings();
    }
  };

  // -- the memory panel and the status-bar item ------------------------------
  const panel = new MemoryPanel({ trans, toolbar: new Toolbar() });
  panel.title.icon = cyscopeIcon;
  panel.title.label = labShell ? '' : trans.__('Memory');
  app.shell.add(panel, 'left', { rank: 900 });
  restorer?.add(panel, panel.id);

  const showPanel = () => app.shell.activateById(panel.id);
  const current = (): IMemoryPanelCurrent | null => {
    const notebook = notebooks.currentWidget;
    const p = notebook ? parts.get(notebook) : undefined;
    return notebook && p
      ? { notebook, model: p.model, channel: p.channel }
      : null;
  };
  const extensions = new MemoryPanelExtensions(app, panel, current);
  const status = statusBar
    ? new MemoryStatus({ onOpen: showPanel, trans })
    : null;
  const statusActive = new Signal<unknown, void>(panel);
  if (statusBar && status) {
    statusBar.registerStatusItem(`${PLUGIN_ID}:memory`, {
      item: status,
      align: 'left',
      rank: 4,
      isActive: () => notebooks.currentWidget !== null,
      activeStateChanged: statusActive
    });
  }

  const showCurrent = () => {
    const now = current();
    panel.model = now?.model ?? null;
    panel.notebookName = now ? now.notebook.context.path : '';
    if (status) {
      status.model = now?.model ?? null;
    }
    statusActive.emit();
    extensions.currentChanged.emit(now);
  };

  notebooks.widgetAdded.connect((_, notebook) => {
    void notebook.context.ready.then(() => watchCythonCells(notebook));
    const channel = new KernelChannel(notebook.sessionContext, {
      settings: () => settings,
      ready: settingsLoaded,
      onReady: () => model.handshake()
    });
    const model = new MemoryModel(channel, kernelSettings(settings));
    model.lookupFirstLine = cellId => firstLineOfCell(notebook, cellId);
    parts.set(notebook, { channel, model });
    notebook.disposed.connect(() => {
      parts.delete(notebook);
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

  // -- commands, palette; menus and shortcuts are in schema/plugin.json ------
  registerCommands(
    app.commands,
    {
      trans,
      icon: cyscopeIcon,
      showMemoryPanel: showPanel,
      currentChannel: () => current()?.channel ?? null,
      settings: () => settings,
      setSetting
    },
    palette
  );
  // Toggled states and enablement follow the settings and the kernel.
  const refreshCommands = () => app.commands.notifyCommandChanged();
  void settingsLoaded.then(() => stored?.changed.connect(refreshCommands));
  notebooks.currentChanged.connect(refreshCommands);

  return extensions;
}

/** What other plugins get (IMemoryPanelExtensions): the panel's seams. */
class MemoryPanelExtensions implements IMemoryPanelExtensions {
  constructor(
    private readonly _app: JupyterFrontEnd,
    private readonly _panel: MemoryPanel,
    private readonly _current: () => IMemoryPanelCurrent | null
  ) {}

  readonly currentChanged: Signal<
    IMemoryPanelExtensions,
    IMemoryPanelCurrent | null
  > = new Signal(this);

  get toolbar(): Toolbar {
    return this._panel.toolbar as Toolbar;
  }

  get selectedRecord(): ICellRecord | null {
    return this._panel.selectedRecord;
  }

  get current(): IMemoryPanelCurrent | null {
    return this._current();
  }

  addRowAction(action: IMemoryRowAction): IDisposable {
    const panel = this._panel;
    const fromPanel = panel.addRowAction(action);
    // The same action in the rows' context menu: the keyboard reaches it
    // there (the context-menu key on the focused row).
    const command = `cyscope:row-action:${action.id}`;
    const registered = this._app.commands.addCommand(command, {
      label: action.label,
      icon: action.icon,
      isVisible: () => {
        const record = panel.selectedRecord;
        return record !== null && (action.isVisible?.(record) ?? true);
      },
      execute: () => {
        const record = panel.selectedRecord;
        if (record) {
          action.execute(record);
        }
      }
    });
    const menuItem = this._app.contextMenu.addItem({
      command,
      selector: '#cyscope-memory-panel tr[data-key]',
      rank: 10
    });
    return new DisposableDelegate(() => {
      menuItem.dispose();
      registered.dispose();
      fromPanel.dispose();
    });
  }
}

/** The first non-blank line of the notebook's cell with this id. */
function firstLineOfCell(
  notebook: NotebookPanel,
  cellId: string
): string | null {
  const cell = notebook.content.widgets.find(c => c.model.id === cellId);
  if (!cell) {
    return null;
  }
  const source = cell.model.sharedModel.getSource();
  for (const line of source.split('\n', 50)) {
    const trimmed = line.trim();
    if (trimmed) {
      return trimmed.slice(0, FIRST_LINE_CHARS);
    }
  }
  return null;
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

const plugin: JupyterFrontEndPlugin<IMemoryPanelExtensions> = {
  id: PLUGIN_ID,
  description:
    'cyscope: per-cell memory of notebook kernels, and inspectable %%cython cells.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [
    ILabShell,
    ISettingRegistry,
    ILayoutRestorer,
    ICommandPalette,
    IStatusBar,
    ITranslator
  ],
  provides: IMemoryPanelExtensions,
  activate
};

export default [
  plugin,
  ...cythonPlugins,
  ...crashPlugins,
  ...flamegraphPlugins,
  ...debuggerPlugins
];
