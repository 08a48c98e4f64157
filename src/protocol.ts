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
  checkKernelMessage,
  ICell,
  IConfigure,
  IError,
  IHello,
  IHistory,
  IRequestHistory,
  ISample,
  KernelMessage,
  NativeMemory
} from './generated/cyscope';
import { brief, isObject } from './schemaRuntime';

export { brief };

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'cyscope';

export type {
  CellMemory,
  FrontendMessage,
  ICellRecord,
  INativeStatus,
  KernelMessage,
  NativeMemory
} from './generated/cyscope';

// The names the rest of the extension uses for the generated message types.
export type IHelloMessage = IHello;
export type ISampleMessage = ISample;
export type ICellMessage = ICell;
export type IHistoryMessage = IHistory;
export type IErrorMessage = IError;
export type IConfigureMessage = IConfigure;
export type IRequestHistoryMessage = IRequestHistory;
/** Exact figures from the native allocator tracker for one cell. */
export type ICellMemory = NonNullable<CellMemory>;
export type INativeMemory = NonNullable<NativeMemory>;

const KERNEL_MESSAGE_TYPES: ReadonlySet<string> = new Set<
  KernelMessage['type']
>(['hello', 'sample', 'cell', 'history', 'error']);

export const MIN_INTERVAL_MS = 10;
export const MAX_INTERVAL_MS = 60000;

export function configureMessage(intervalMs: number): IConfigureMessage {
  const clamped = Math.round(
    Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, intervalMs))
  );
  return { v: PROTOCOL_VERSION, type: 'configure', interval_ms: clamped };
}

export function requestHistoryMessage(): IRequestHistoryMessage {
  return { v: PROTOCOL_VERSION, type: 'request_history' };
}

/** Thrown for kernel messages that do not follow the protocol. */
export class ProtocolError extends Error {}

/**
 * Check a message received from the kernel; throws ProtocolError naming the
 * first problem found. Fields the frontend does not know are accepted and
 * left in place (a newer kernel may send them); nothing reads them.
 */
export function parseKernelMessage(data: unknown): KernelMessage {
  if (!isObject(data)) {
    throw new ProtocolError(`expected a JSON object, got ${brief(data)}`);
  }
  if (data.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `unsupported protocol version ${brief(data.v)}; this frontend speaks ${PROTOCOL_VERSION}`
    );
  }
  const type = data.type;
  if (typeof type !== 'string' || !KERNEL_MESSAGE_TYPES.has(type)) {
    throw new ProtocolError(`unknown message type ${brief(type)}`);
  }
  const problem = checkKernelMessage(data);
  if (problem !== null) {
    throw new ProtocolError(problem);
  }
  return data as unknown as KernelMessage;
}
