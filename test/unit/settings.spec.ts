/**
 * The settings as read from the registry, and what they ask of a kernel;
 * the schema JupyterLab's Settings Editor shows has a title and a
 * description for each, and the same defaults.
 */
import * as fs from 'fs';
import * as path from 'path';

import {
  DEFAULT_SETTINGS,
  kernelSettings,
  readSettings
} from '../../src/settings';

const schema = JSON.parse(
  fs.readFileSync(
    path.resolve(__dirname, '..', '..', 'schema', 'plugin.json'),
    'utf8'
  )
);

describe('settings', () => {
  it('default to the schema defaults, each with a title and a description', () => {
    const properties = schema.properties as Record<
      string,
      { title?: string; description?: string; default?: unknown }
    >;
    expect(Object.keys(properties).sort()).toEqual(
      Object.keys(DEFAULT_SETTINGS).sort()
    );
    for (const [name, property] of Object.entries(properties)) {
      expect([name, typeof property.title]).toEqual([name, 'string']);
      expect([name, (property.description ?? '').length > 40]).toEqual([
        name,
        true
      ]);
      expect([name, property.default]).toEqual([
        name,
        DEFAULT_SETTINGS[name as keyof typeof DEFAULT_SETTINGS]
      ]);
    }
  });

  it('fall back to the default for anything missing or odd', () => {
    expect(readSettings(undefined)).toEqual(DEFAULT_SETTINGS);
    expect(
      readSettings({
        autoLoad: 'yes',
        memoryTracking: 0,
        trackingMode: 'everything',
        cythonMagic: null,
        sampleIntervalMs: 5
      })
    ).toEqual(DEFAULT_SETTINGS);
    expect(
      readSettings({
        autoLoad: false,
        memoryTracking: false,
        trackingMode: 'native',
        cythonMagic: 'cython',
        sampleIntervalMs: 250
      })
    ).toEqual({
      autoLoad: false,
      memoryTracking: false,
      trackingMode: 'native',
      cythonMagic: 'cython',
      sampleIntervalMs: 250
    });
  });

  it('ask a kernel for tracking off when tracking is off, whatever the mode', () => {
    expect(
      kernelSettings({ ...DEFAULT_SETTINGS, trackingMode: 'exact' })
    ).toEqual({ intervalMs: 100, tracking: 'exact', cythonMagic: 'cyscope' });
    expect(
      kernelSettings({
        ...DEFAULT_SETTINGS,
        memoryTracking: false,
        trackingMode: 'exact'
      }).tracking
    ).toBe('off');
  });
});
