/**
 * The extension's settings (schema/plugin.json, edited in JupyterLab's
 * Settings Editor) as one plain object, and what they mean for a kernel.
 * No JupyterLab imports: a value read from the registry goes through
 * `readSettings`, which falls back to the default for anything missing or
 * malformed.
 */
import type { IKernelSettings } from './protocol';
import {
  CythonMagic,
  MAX_INTERVAL_MS,
  MIN_INTERVAL_MS,
  TrackingMode
} from './protocol';

/** The detailed tracking modes (tracking "on"); "off" is `memoryTracking`. */
export type TrackingDetail = Exclude<TrackingMode, 'off'>;

export interface ICyscopeSettings {
  /** Load cyscope into every new Python kernel (silently). */
  autoLoad: boolean;
  /** Per-cell memory tracking with the native allocator hooks. */
  memoryTracking: boolean;
  /** How much the tracker records while it is on. */
  trackingMode: TrackingDetail;
  /** Whose %%cython runs in the kernel. */
  cythonMagic: CythonMagic;
  /** How often the kernel sends a memory sample while a cell runs. */
  sampleIntervalMs: number;
}

export const DEFAULT_SETTINGS: Readonly<ICyscopeSettings> = {
  autoLoad: true,
  memoryTracking: true,
  trackingMode: 'sampled',
  cythonMagic: 'cyscope',
  sampleIntervalMs: 100
};

export const TRACKING_DETAILS: readonly TrackingDetail[] = [
  'sampled',
  'exact',
  'native'
];
const CYTHON_MAGICS: readonly CythonMagic[] = ['cyscope', 'cython'];

function pick<T>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

/** Settings from the registry's composite value (missing or odd: default). */
export function readSettings(
  composite: Readonly<Record<string, unknown>> | null | undefined
): ICyscopeSettings {
  const c = composite ?? {};
  const interval = c.sampleIntervalMs;
  return {
    autoLoad:
      typeof c.autoLoad === 'boolean' ? c.autoLoad : DEFAULT_SETTINGS.autoLoad,
    memoryTracking:
      typeof c.memoryTracking === 'boolean'
        ? c.memoryTracking
        : DEFAULT_SETTINGS.memoryTracking,
    trackingMode: pick(
      c.trackingMode,
      TRACKING_DETAILS,
      DEFAULT_SETTINGS.trackingMode
    ),
    cythonMagic: pick(
      c.cythonMagic,
      CYTHON_MAGICS,
      DEFAULT_SETTINGS.cythonMagic
    ),
    sampleIntervalMs:
      typeof interval === 'number' &&
      Number.isInteger(interval) &&
      interval >= MIN_INTERVAL_MS &&
      interval <= MAX_INTERVAL_MS
        ? interval
        : DEFAULT_SETTINGS.sampleIntervalMs
  };
}

/** What the settings ask of a kernel. */
export function kernelSettings(settings: ICyscopeSettings): IKernelSettings {
  return {
    intervalMs: settings.sampleIntervalMs,
    tracking: settings.memoryTracking ? settings.trackingMode : 'off',
    cythonMagic: settings.cythonMagic
  };
}
