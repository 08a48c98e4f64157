/**
 * The frontend side of the cyscope comm protocol.
 *
 * The protocol is defined once, in protocol/cyscope.schema.json; these types
 * mirror it and `parseKernelMessage` checks what the kernel sends before any
 * model sees it. test/unit/protocol.spec.ts runs the shared fixtures through
 * both the JSON Schema and this parser so the two cannot drift apart.
 */

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'cyscope';

export interface INativeStatus {
  loaded: boolean;
  abi: number | null;
  path: string | null;
  error: string | null;
}

export interface INativeMemory {
  current_bytes: number;
  peak_bytes: number;
}

/** Exact figures from the native allocator tracker for one cell. */
export interface ICellMemory {
  peak_bytes: number;
  net_bytes: number;
  allocated_bytes: number;
  allocations: number;
  leaked_bytes: number;
}

export interface ICellRecord {
  execution_count: number;
  cell_id: string | null;
  started_ms: number;
  duration_ms: number;
  rss_before: number;
  rss_after: number;
  rss_peak: number;
  success: boolean;
  memory: ICellMemory | null;
}

export interface IHelloMessage {
  v: 1;
  type: 'hello';
  cyscope_version: string;
  python: string;
  pid: number;
  interval_ms: number;
  native: INativeStatus;
}

export interface ISampleMessage {
  v: 1;
  type: 'sample';
  t_ms: number;
  rss_bytes: number;
  running: boolean;
  execution_count: number | null;
  native: INativeMemory | null;
}

export interface ICellMessage {
  v: 1;
  type: 'cell';
  record: ICellRecord;
}

export interface IHistoryMessage {
  v: 1;
  type: 'history';
  records: ICellRecord[];
}

export interface IErrorMessage {
  v: 1;
  type: 'error';
  message: string;
}

export type KernelMessage =
  | IHelloMessage
  | ISampleMessage
  | ICellMessage
  | IHistoryMessage
  | IErrorMessage;

export interface IConfigureMessage {
  v: 1;
  type: 'configure';
  interval_ms: number;
}

export interface IRequestHistoryMessage {
  v: 1;
  type: 'request_history';
}

export type FrontendMessage = IConfigureMessage | IRequestHistoryMessage;

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

/** How much of an offending value an error message quotes. */
export const QUOTE_CHARS = 60;

/**
 * A short quotation of `value` for an error message: a message from the
 * kernel may be megabytes, and the panel shows the error.
 */
export function brief(value: unknown, limit = QUOTE_CHARS): string {
  if (typeof value === 'string') {
    return value.length <= limit
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, limit))}... (${value.length.toLocaleString('en-US')} characters)`;
  }
  if (Array.isArray(value)) {
    return `a list of ${value.length.toLocaleString('en-US')} item(s)`;
  }
  if (typeof value === 'object' && value !== null) {
    return `an object with ${Object.keys(value).length.toLocaleString('en-US')} field(s)`;
  }
  return String(value);
}

/** Thrown for kernel messages that do not follow the protocol. */
export class ProtocolError extends Error {}

type Json = { [key: string]: unknown };

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function nullOr<T>(
  check: (v: unknown) => v is T
): (v: unknown) => v is T | null {
  return (v: unknown): v is T | null => v === null || check(v);
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function expectFields(
  obj: Json,
  what: string,
  fields: Record<string, (v: unknown) => boolean>,
  allowExtra = false
): void {
  for (const [name, check] of Object.entries(fields)) {
    if (!(name in obj)) {
      throw new ProtocolError(`${what}: missing field '${name}'`);
    }
    if (!check(obj[name])) {
      throw new ProtocolError(`${what}: bad value for '${name}'`);
    }
  }
  if (!allowExtra) {
    const extra = Object.keys(obj).filter(k => !(k in fields));
    if (extra.length > 0) {
      const shown = extra.slice(0, 5).map(k => brief(k, 40));
      const more = extra.length > 5 ? ` and ${extra.length - 5} more` : '';
      throw new ProtocolError(
        `${what}: unknown field(s) ${shown.join(', ')}${more}`
      );
    }
  }
}

function isNativeStatus(v: unknown): v is INativeStatus {
  if (!isObject(v)) {
    return false;
  }
  expectFields(v, 'native', {
    loaded: x => typeof x === 'boolean',
    abi: nullOr(isInt),
    path: nullOr(isString),
    error: nullOr(isString)
  });
  return true;
}

function isNativeMemory(v: unknown): v is INativeMemory {
  if (!isObject(v)) {
    return false;
  }
  expectFields(
    v,
    'native memory',
    { current_bytes: isCount, peak_bytes: isCount },
    true
  );
  return true;
}

function isCellMemory(v: unknown): v is ICellMemory {
  if (!isObject(v)) {
    return false;
  }
  expectFields(
    v,
    'cell memory',
    {
      peak_bytes: isCount,
      net_bytes: isInt,
      allocated_bytes: isCount,
      allocations: isCount,
      leaked_bytes: isCount
    },
    true
  );
  return true;
}

function isCellRecord(v: unknown): v is ICellRecord {
  if (!isObject(v)) {
    return false;
  }
  expectFields(v, 'cell record', {
    execution_count: isInt,
    cell_id: nullOr(isString),
    started_ms: isNumber,
    duration_ms: x => isNumber(x) && x >= 0,
    rss_before: isCount,
    rss_after: isCount,
    rss_peak: isCount,
    success: x => typeof x === 'boolean',
    memory: nullOr(isCellMemory)
  });
  return true;
}

const KERNEL_MESSAGE_FIELDS: Record<
  KernelMessage['type'],
  Record<string, (v: unknown) => boolean>
> = {
  hello: {
    cyscope_version: isString,
    python: isString,
    pid: x => isInt(x) && x >= 1,
    interval_ms: x => isInt(x) && x >= MIN_INTERVAL_MS,
    native: isNativeStatus
  },
  sample: {
    t_ms: isNumber,
    rss_bytes: isCount,
    running: x => typeof x === 'boolean',
    execution_count: nullOr(isInt),
    native: nullOr(isNativeMemory)
  },
  cell: { record: isCellRecord },
  history: {
    records: x => Array.isArray(x) && x.every(isCellRecord)
  },
  error: { message: isString }
};

/**
 * Check a message received from the kernel; throws ProtocolError naming the
 * first problem found.
 */
export function parseKernelMessage(data: unknown): KernelMessage {
  if (!isObject(data)) {
    throw new ProtocolError('expected a JSON object');
  }
  if (data.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `unsupported protocol version ${brief(data.v)}; this frontend speaks ${PROTOCOL_VERSION}`
    );
  }
  const type = data.type;
  if (typeof type !== 'string' || !(type in KERNEL_MESSAGE_FIELDS)) {
    throw new ProtocolError(`unknown message type ${brief(type)}`);
  }
  const fields = KERNEL_MESSAGE_FIELDS[type as KernelMessage['type']];
  expectFields(data, type, { v: () => true, type: () => true, ...fields });
  return data as unknown as KernelMessage;
}
