/**
 * Every cyscope action as a JupyterLab command with a label, in the command
 * palette (category "cyscope"). Menus and keyboard shortcuts for them are
 * declared in schema/plugin.json ("jupyter.lab.menus", "jupyter.lab.shortcuts").
 * The commands work through small callbacks, so tests can register them on a
 * bare CommandRegistry.
 */
import type { LabIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';

import type { IKernelChannel } from './channel';
import type { Trans } from './i18n';
import { ICyscopeSettings, TRACKING_DETAILS, TrackingDetail } from './settings';

export namespace CommandIDs {
  export const showMemory = 'cyscope:show-memory-panel';
  export const loadInKernel = 'cyscope:load-in-kernel';
  export const toggleTracking = 'cyscope:toggle-memory-tracking';
  export const setTrackingMode = 'cyscope:set-tracking-mode';
  export const toggleAutoLoad = 'cyscope:toggle-auto-load';
  export const toggleCythonMagic = 'cyscope:toggle-cython-magic';
}

export const PALETTE_CATEGORY = 'cyscope';

export interface ICommandContext {
  trans: Trans;
  /** cyscope's icon (menus show it next to the panel's command). */
  icon?: LabIcon;
  /** Show (and focus) the memory panel. */
  showMemoryPanel(): void;
  /** The channel of the current notebook's kernel, if any. */
  currentChannel(): IKernelChannel | null;
  settings(): ICyscopeSettings;
  /** Change one setting (in the user's settings, so it is kept). */
  setSetting<K extends keyof ICyscopeSettings>(
    key: K,
    value: ICyscopeSettings[K]
  ): Promise<void>;
}

/** Anything with `addItem` as the command palette has it. */
export interface IPaletteLike {
  addItem(options: {
    command: string;
    category: string;
    args?: Record<string, string>;
  }): unknown;
}

function modeLabel(mode: TrackingDetail, t: Trans): string {
  switch (mode) {
    case 'sampled':
      return t.__('Memory Tracking: Sampled Stacks');
    case 'exact':
      return t.__('Memory Tracking: Every Allocation');
    case 'native':
      return t.__('Memory Tracking: With Native Frames');
  }
}

export function registerCommands(
  commands: CommandRegistry,
  context: ICommandContext,
  palette: IPaletteLike | null
): void {
  const t = context.trans;

  commands.addCommand(CommandIDs.showMemory, {
    label: t.__('Show cyscope Memory Panel'),
    caption: t.__('Per-cell memory of the current notebook’s kernel'),
    icon: args => (args.isPalette ? undefined : context.icon),
    execute: () => context.showMemoryPanel()
  });

  commands.addCommand(CommandIDs.loadInKernel, {
    label: t.__('Load cyscope in the Kernel'),
    caption: t.__(
      'Load cyscope into the current notebook’s kernel now (also after %unload_ext, or with automatic loading off)'
    ),
    isEnabled: () => {
      const status = context.currentChannel()?.state.status;
      return (
        status === 'off' ||
        status === 'unloaded' ||
        status === 'unavailable' ||
        status === 'retrying'
      );
    },
    execute: async () => {
      await context.currentChannel()?.load();
    }
  });

  commands.addCommand(CommandIDs.toggleTracking, {
    label: t.__('Track Memory per Cell'),
    caption: t.__(
      'Count every allocation of each cell with the native allocator hooks (off: resident memory only)'
    ),
    isToggled: () => context.settings().memoryTracking,
    execute: () =>
      context.setSetting('memoryTracking', !context.settings().memoryTracking)
  });

  commands.addCommand(CommandIDs.setTrackingMode, {
    label: args =>
      TRACKING_DETAILS.includes(args.mode as TrackingDetail)
        ? modeLabel(args.mode as TrackingDetail, t)
        : t.__('Memory Tracking Mode'),
    caption: t.__(
      'Sampled: exact totals, sampled stacks. Every allocation: the stack of each. With native frames: sampled, with C frames.'
    ),
    isToggled: args =>
      context.settings().memoryTracking &&
      context.settings().trackingMode === args.mode,
    isEnabled: args => TRACKING_DETAILS.includes(args.mode as TrackingDetail),
    execute: async args => {
      const mode = args.mode as TrackingDetail;
      if (!TRACKING_DETAILS.includes(mode)) {
        return;
      }
      await context.setSetting('trackingMode', mode);
      if (!context.settings().memoryTracking) {
        await context.setSetting('memoryTracking', true);
      }
    }
  });

  commands.addCommand(CommandIDs.toggleAutoLoad, {
    label: t.__('Load cyscope into New Kernels'),
    caption: t.__(
      'Load cyscope silently into every new Python kernel (off: only where you run %load_ext cyscope)'
    ),
    isToggled: () => context.settings().autoLoad,
    execute: () => context.setSetting('autoLoad', !context.settings().autoLoad)
  });

  commands.addCommand(CommandIDs.toggleCythonMagic, {
    label: t.__('Use cyscope’s %%%%cython'),
    caption: t.__(
      'On: %%%%cython cells get diagnostics on their lines and annotation in the editor. Off: Cython’s own magic.'
    ),
    isToggled: () => context.settings().cythonMagic === 'cyscope',
    execute: () =>
      context.setSetting(
        'cythonMagic',
        context.settings().cythonMagic === 'cyscope' ? 'cython' : 'cyscope'
      )
  });

  if (palette) {
    for (const command of [
      CommandIDs.showMemory,
      CommandIDs.loadInKernel,
      CommandIDs.toggleTracking,
      CommandIDs.toggleAutoLoad,
      CommandIDs.toggleCythonMagic
    ]) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
    for (const mode of TRACKING_DETAILS) {
      palette.addItem({
        command: CommandIDs.setTrackingMode,
        category: PALETTE_CATEGORY,
        args: { mode }
      });
    }
  }
}
