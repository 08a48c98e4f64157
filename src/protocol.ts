/**
 * The frontend side of the cyscope comm protocol.
 *
 * The protocol is defined once, in protocol/cyscope.schema.json; its types
 * and reader are generated from it at build time (src/generated/cyscope.ts,
 * by scripts/protocol-codegen.js). This module adds the constants, the
 * builders of what the frontend sends, and `parseKernelMessage`, which checks
 * what the kernel sends before any model sees it. test/unit/protocol.spec.ts
 * runs the shared fixtures through the JSON Schema and this parser alike.
 */

import {
  CellMemory,
  checkGoodbye,
  checkKernelMessage,
  CythonMagic,
  ICell,
  IConfig,
  IConfigure,
  IConnect,
  IError,
  IGoodbye,
  IHello,
  IHistory,
  IRequestHistory,
  ISample,
  KernelMessage,
  NativeMemory,
  TrackingMode
} from './generated/cyscope';
import { brief, isObject } from './schemaRuntime';

export { brief };

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'cyscope';

export type {
  CellMemory,
  CythonMagic,
  FrontendMessage,
  ICellRecord,
  INativeStatus,
  KernelMessage,
  NativeMemory,
  TrackingMode
} from './generated/cyscope';

/** The version of this frontend extension, sent in its connect message. */
export const FRONTEND_VERSION = '0.1.0';

/**
 * What this frontend understands beyond version 1's base (the schema's
 * $defs/capabilities). A feature is used only when the kernel's hello lists
 * it too; a kernel without a `capabilities` field has none of them.
 */
export const FRONTEND_CAPABILITIES: readonly string[] = [
  'config',
  'configure.cython_magic',
  'configure.tracking',
  'connect',
  'goodbye',
  'record.first_line'
];

// The names the rest of the extension uses for the generated message types.
export type IHelloMessage = IHello;
export type ISampleMessage = ISample;
export type ICellMessage = ICell;
export type IHistoryMessage = IHistory;
export type IErrorMessage = IError;
export type IConfigureMessage = IConfigure;
export type IRequestHistoryMessage = IRequestHistory;
export type IConfigMessage = IConfig;
export type IConnectMessage = IConnect;
export type IGoodbyeMessage = IGoodbye;
/** Exact figures from the native allocator tracker for one cell. */
export type ICellMemory = NonNullable<CellMemory>;
export type INativeMemory = NonNullable<NativeMemory>;

const KERNEL_MESSAGE_TYPES: ReadonlySet<string> = new Set<
  KernelMessage['type']
>(['hello', 'sample', 'cell', 'history', 'config', 'error']);

export const MIN_INTERVAL_MS = 10;
export const MAX_INTERVAL_MS = 60000;

/** The settings a frontend hands the kernel (configure and connect). */
export interface IKernelSettings {
  intervalMs: number;
  tracking: TrackingMode;
  cythonMagic: CythonMagic;
}

function clampInterval(intervalMs: number): number {
  return Math.round(
    Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, intervalMs))
  );
}

/** The features both this frontend and a kernel (its hello) list. */
export function sharedCapabilities(
  hello: { capabilities?: string[] } | null
): Set<string> {
  const theirs = new Set(hello?.capabilities ?? []);
  return new Set(FRONTEND_CAPABILITIES.filter(c => theirs.has(c)));
}

/**
 * A configure message: the interval always (every kernel knows it), the
 * other settings only where the kernel listed the capability (an older
 * kernel would ignore them, and the panel would claim what is not so).
 */
export function configureMessage(
  intervalMs: number,
  settings: Partial<IKernelSettings> = {},
  shared: ReadonlySet<string> = new Set()
): IConfigureMessage {
  const message: IConfigureMessage = {
    v: PROTOCOL_VERSION,
    type: 'configure',
    interval_ms: clampInterval(intervalMs)
  };
  if (settings.tracking && shared.has('configure.tracking')) {
    message.tracking = settings.tracking;
  }
  if (settings.cythonMagic && shared.has('configure.cython_magic')) {
    message.cython_magic = settings.cythonMagic;
  }
  return message;
}

/** The comm's open data: who opens it and the settings to start with. */
export function connectMessage(settings: IKernelSettings): IConnectMessage {
  return {
    v: PROTOCOL_VERSION,
    type: 'connect',
    cyscope_version: FRONTEND_VERSION,
    capabilities: [...FRONTEND_CAPABILITIES],
    interval_ms: clampInterval(settings.intervalMs),
    tracking: settings.tracking,
    cython_magic: settings.cythonMagic
  };
}

export function requestHistoryMessage(): IRequestHistoryMessage {
  return { v: PROTOCOL_VERSION, type: 'request_history' };
}

/** Thrown for kernel messages that do not follow the protocol. */
export class ProtocolError extends Error {}

/** A kernel message of a type this frontend does not know (its type,
 * quoted briefly). A class, so that no field a kernel sends can pass for it. */
export class UnknownKernelMessage {
  constructor(readonly type: string) {}
}

/**
 * Check a message received from the kernel; throws ProtocolError naming the
 * first problem found. Fields the frontend does not know are accepted and
 * left in place (a newer kernel may send them); nothing reads them. A
 * message of a type it does not know (a newer kernel's) is no error either:
 * it comes back as an UnknownKernelMessage, for the caller to ignore. A `type`
 * that is not a string is malformed.
 */
export function parseKernelMessage(
  data: unknown
): KernelMessage | UnknownKernelMessage {
  if (!isObject(data)) {
    throw new ProtocolError(`expected a JSON object, got ${brief(data)}`);
  }
  if (data.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `unsupported protocol version ${brief(data.v)}; this frontend speaks ${PROTOCOL_VERSION}`
    );
  }
  const type = data.type;
  if (typeof type !== 'string') {
    throw new ProtocolError(`unknown message type ${brief(type)}`);
  }
  if (!KERNEL_MESSAGE_TYPES.has(type)) {
    return new UnknownKernelMessage(brief(type));
  }
  const problem = checkKernelMessage(data);
  if (problem !== null) {
    throw new ProtocolError(problem);
  }
  return data as unknown as KernelMessage;
}

/**
 * Why the kernel closed the comm, from the close message's data: the
 * goodbye's reason, or null (an older kernel, or data that is no goodbye).
 */
export function closeReason(data: unknown): string | null {
  if (
    isObject(data) &&
    data.v === PROTOCOL_VERSION &&
    data.type === 'goodbye' &&
    checkGoodbye(data) === null
  ) {
    return (data as unknown as IGoodbye).reason;
  }
  return null;
}
