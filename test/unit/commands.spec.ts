/**
 * The command registry: every cyscope command has a label and a caption and
 * is in the palette (the menus and shortcuts of schema/plugin.json name
 * only commands that exist), and the toggles change the settings.
 */
import { CommandRegistry } from '@lumino/commands';
import * as fs from 'fs';
import * as path from 'path';

import { IChannelState, IKernelChannel } from '../../src/channel';
import { CommandIDs, registerCommands } from '../../src/commands';
import { plainTrans } from '../../src/i18n';
import { DEFAULT_SETTINGS, ICyscopeSettings } from '../../src/settings';
import { FakeChannel } from './fakeChannel';

const schema = JSON.parse(
  fs.readFileSync(
    path.resolve(__dirname, '..', '..', 'schema', 'plugin.json'),
    'utf8'
  )
);

function setUp(channel: IKernelChannel | null = null) {
  const commands = new CommandRegistry();
  const palette: { command: string; args?: Record<string, string> }[] = [];
  let settings: ICyscopeSettings = { ...DEFAULT_SETTINGS };
  let shown = 0;
  registerCommands(
    commands,
    {
      trans: plainTrans,
      showMemoryPanel: () => shown++,
      currentChannel: () => channel,
      settings: () => settings,
      setSetting: async (key, value) => {
        settings = { ...settings, [key]: value };
      }
    },
    { addItem: item => palette.push(item) }
  );
  return {
    commands,
    palette,
    settings: () => settings,
    shown: () => shown
  };
}

/** Command ids used anywhere in the schema's menus and shortcuts. */
function commandsInSchema(): Set<string> {
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
    } else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'command' && typeof value === 'string') {
          found.add(value);
        } else {
          walk(value);
        }
      }
    }
  };
  walk(schema['jupyter.lab.menus']);
  walk(schema['jupyter.lab.shortcuts']);
  return found;
}

describe('cyscope commands', () => {
  it('each has a label and a caption and is in the palette', () => {
    const { commands, palette } = setUp();
    const ours = commands
      .listCommands()
      .filter(id => id.startsWith('cyscope:'));
    expect(ours.sort()).toEqual(Object.values(CommandIDs).sort());
    const inPalette = new Set(palette.map(p => p.command));
    for (const id of ours) {
      const args = id === CommandIDs.setTrackingMode ? { mode: 'exact' } : {};
      expect([id, commands.label(id, args).length > 3]).toEqual([id, true]);
      expect([id, commands.caption(id, args).length > 10]).toEqual([id, true]);
      expect([id, inPalette.has(id)]).toEqual([id, true]);
    }
    // One palette entry per tracking mode.
    expect(
      palette
        .filter(p => p.command === CommandIDs.setTrackingMode)
        .map(p => p.args?.mode)
    ).toEqual(['sampled', 'exact', 'native']);
  });

  it('menus and shortcuts name only commands that exist', () => {
    const { commands } = setUp();
    const known = new Set([
      ...commands.listCommands(),
      // Registered by the %%cython editor plugin (src/cython/plugin.ts).
      'cyscope:show-cython-code'
    ]);
    const missing = [...commandsInSchema()].filter(id => !known.has(id));
    expect(missing).toEqual([]);
    expect(commandsInSchema().has(CommandIDs.showMemory)).toBe(true);
  });

  it('the toggles change the settings and show their state', async () => {
    const { commands, settings } = setUp();
    expect(commands.isToggled(CommandIDs.toggleTracking)).toBe(true);
    await commands.execute(CommandIDs.toggleTracking);
    expect(settings().memoryTracking).toBe(false);
    expect(commands.isToggled(CommandIDs.toggleTracking)).toBe(false);
    // Picking a mode turns tracking back on.
    await commands.execute(CommandIDs.setTrackingMode, { mode: 'native' });
    expect(settings()).toMatchObject({
      memoryTracking: true,
      trackingMode: 'native'
    });
    expect(
      commands.isToggled(CommandIDs.setTrackingMode, { mode: 'native' })
    ).toBe(true);
    await commands.execute(CommandIDs.toggleAutoLoad);
    expect(settings().autoLoad).toBe(false);
    await commands.execute(CommandIDs.toggleCythonMagic);
    expect(settings().cythonMagic).toBe('cython');
    expect(commands.label(CommandIDs.toggleCythonMagic)).toBe(
      'Use cyscope’s %%cython'
    );
  });

  it('loads cyscope in a kernel that does not have it, on request', async () => {
    const channel = new FakeChannel();
    const { commands } = setUp(channel);
    channel.state = { status: 'ready', detail: '' } as IChannelState;
    expect(commands.isEnabled(CommandIDs.loadInKernel)).toBe(false);
    for (const status of [
      'off',
      'unloaded',
      'unavailable',
      'retrying'
    ] as const) {
      channel.state = { status, detail: '' };
      expect([status, commands.isEnabled(CommandIDs.loadInKernel)]).toEqual([
        status,
        true
      ]);
    }
    await commands.execute(CommandIDs.loadInKernel);
    expect(channel.loads).toBe(1);
  });

  it('shows the memory panel', async () => {
    const { commands, shown } = setUp();
    await commands.execute(CommandIDs.showMemory);
    expect(shown()).toBe(1);
  });
});
