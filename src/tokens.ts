/**
 * What the cyscope plugin offers other plugins: the memory panel's seams.
 *
 * A plugin that adds something to the memory panel (the flamegraph's row
 * action and export buttons, say) asks for `IMemoryPanelExtensions`:
 *
 *     requires: [IMemoryPanelExtensions],
 *     activate: (app, panel: IMemoryPanelExtensions) => {
 *       panel.addRowAction({ id: 'flamegraph', label: 'Flamegraph of this cell',
 *                            icon, execute: record => ... });
 *       panel.toolbar.addItem('export', new ToolbarButton({ ... }));
 *     }
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { Toolbar } from '@jupyterlab/ui-components';
import { Token } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';
import type { ISignal } from '@lumino/signaling';

import type { IKernelChannel } from './channel';
import type { IMemoryRowAction } from './memoryPanel';
import type { MemoryModel } from './model';
import type { ICellRecord } from './protocol';

export type { IMemoryRowAction };

/** The notebook the memory panel shows, with its model and channel. */
export interface IMemoryPanelCurrent {
  notebook: NotebookPanel;
  model: MemoryModel;
  channel: IKernelChannel;
}

export interface IMemoryPanelExtensions {
  /** The panel's toolbar (a JupyterLab Toolbar): `toolbar.addItem(name, widget)`. */
  readonly toolbar: Toolbar;
  /**
   * A button on every cell row, also in the rows' context menu (so the
   * keyboard reaches it: the context-menu key on a focused row). Dispose
   * the result to take it away.
   */
  addRowAction(action: IMemoryRowAction): IDisposable;
  /** The focused row of the table, if any. */
  readonly selectedRecord: ICellRecord | null;
  /** The notebook shown now (null when none is open). */
  readonly current: IMemoryPanelCurrent | null;
  /** Emitted when `current` changes. */
  readonly currentChanged: ISignal<
    IMemoryPanelExtensions,
    IMemoryPanelCurrent | null
  >;
}

export const IMemoryPanelExtensions = new Token<IMemoryPanelExtensions>(
  'jupyterlab-cyscope:IMemoryPanelExtensions',
  'The cyscope memory panel: its toolbar, row actions and current notebook.'
);
