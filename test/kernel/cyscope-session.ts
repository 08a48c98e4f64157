/**
 * The frontend's half of the cyscope comm, for kernel integration tests:
 * load the extension the way the frontend does, open the comm, and check
 * every message the kernel sends on it against protocol/cyscope.schema.json.
 */
import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import {
  CommCollector,
  CommMsgContent,
  ExecuteResult,
  JsonObject,
  JupyterMessage,
  KernelClient
} from '../support/kernel-client';
import { senderSchema } from '../support/protocol-files';
import {
  COMM_TARGET,
  ICellMessage,
  ICellRecord,
  IConfigMessage,
  IErrorMessage,
  IHelloMessage,
  IHistoryMessage,
  INativeStatus,
  ISampleMessage,
  KernelMessage
} from '../../src/protocol';

export { COMM_TARGET };
export const LOAD_CODE = '%load_ext cyscope';

// The protocol types are the frontend's own (src/protocol.ts), so these
// tests hold the real kernel to exactly what the extension expects.
export type NativeStatus = INativeStatus;
export type HelloMessage = IHelloMessage;
export type SampleMessage = ISampleMessage;
export type CellRecord = ICellRecord;
export type CellMessage = ICellMessage;
export type HistoryMessage = IHistoryMessage;
export type ErrorMessage = IErrorMessage;
export type ConfigMessage = IConfigMessage;
export type { KernelMessage };

// -- schema -----------------------------------------------------------------

interface Validators {
  kernelToFrontend: ValidateFunction;
  frontendToKernel: ValidateFunction;
  commOpen: ValidateFunction;
  commClose: ValidateFunction;
}

let validators: Validators | null = null;

function compileValidators(): Validators {
  // Both ends are senders here: hold them to the schema's strict view.
  const schema = senderSchema('cyscope.schema.json') as { $id: string };
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  ajv.addSchema(schema);
  const anyOf = (defs: string[]): ValidateFunction =>
    ajv.compile({
      oneOf: defs.map(d => ({ $ref: `${schema.$id}#/$defs/${d}` }))
    });
  return {
    kernelToFrontend: anyOf([
      'hello',
      'sample',
      'cell',
      'history',
      'config',
      'error'
    ]),
    frontendToKernel: anyOf(['configure', 'request_history']),
    commOpen: anyOf(['connect']),
    commClose: anyOf(['goodbye'])
  };
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map(e => `${e.instancePath || '/'} ${e.message ?? ''}`)
    .join('; ');
}

/** Why `data` is not a valid kernel-to-frontend message, or null if it is. */
export function kernelMessageProblem(data: unknown): string | null {
  validators ??= compileValidators();
  const validate = validators.kernelToFrontend;
  return validate(data) ? null : describeErrors(validate.errors);
}

/** Why `data` is not a valid comm-close message of the kernel's. */
export function closeDataProblem(data: unknown): string | null {
  validators ??= compileValidators();
  const validate = validators.commClose;
  return validate(data) ? null : describeErrors(validate.errors);
}

/** Why `data` is not a valid connect message (comm-open data), or null. */
export function connectProblem(data: unknown): string | null {
  validators ??= compileValidators();
  const validate = validators.commOpen;
  return validate(data) ? null : describeErrors(validate.errors);
}

/** Why `data` is not a valid frontend-to-kernel message, or null if it is. */
export function frontendMessageProblem(data: unknown): string | null {
  validators ??= compileValidators();
  const validate = validators.frontendToKernel;
  return validate(data) ? null : describeErrors(validate.errors);
}

// -- the session --------------------------------------------------------------

export type CommMessage = JupyterMessage<CommMsgContent>;

export function dataOf(msg: CommMessage): KernelMessage {
  return msg.content.data as KernelMessage;
}

export function isType(msg: CommMessage, type: KernelMessage['type']): boolean {
  const data = msg.content.data;
  return (
    typeof data === 'object' &&
    data !== null &&
    (data as { type?: unknown }).type === type
  );
}

export interface CellRun {
  result: ExecuteResult;
  executionCount: number;
  /** Every sample that reached IOPub between the request's busy and idle. */
  samples: SampleMessage[];
  /** The running=true ones among them. */
  runningSamples: SampleMessage[];
  /** The running=false ones (the sample sent when the cell ends). */
  finalSamples: SampleMessage[];
  /** The one cell message for this execution_count. */
  cell: CellMessage;
}

export class CyscopeSession {
  /**
   * Every schema violation seen on this session's comm, as
   * "<json>: <reason>". Tests assert it stays empty.
   */
  readonly violations: string[] = [];
  /** execution_count of every cell run through `runCell`, in order. */
  readonly cellsRun: number[] = [];
  private readonly stopValidating: () => void;

  private constructor(
    readonly client: KernelClient,
    readonly commId: string,
    readonly messages: CommCollector,
    readonly load: ExecuteResult | null
  ) {
    this.stopValidating = client.onMessage(msg => {
      if (
        msg.channel === 'iopub' &&
        msg.header.msg_type === 'comm_msg' &&
        msg.content.comm_id === commId
      ) {
        const problem = kernelMessageProblem(msg.content.data);
        if (problem !== null) {
          this.violations.push(
            `${JSON.stringify(msg.content.data)}: ${problem}`
          );
        }
      }
    });
    // Messages already collected before the validator was attached.
    for (const msg of messages.received) {
      const problem = kernelMessageProblem(msg.content.data);
      if (problem !== null) {
        this.violations.push(`${JSON.stringify(msg.content.data)}: ${problem}`);
      }
    }
  }

  /** Load the extension silently, as the frontend does (unless `load` is
   * false), then open a comm with `open` as its data (the frontend sends a
   * connect message there; an older one sends {}); `hello()` gives the
   * greeting. */
  static async attach(
    client: KernelClient,
    { load = true, open = {} }: { load?: boolean; open?: JsonObject } = {}
  ): Promise<CyscopeSession> {
    let loadResult: ExecuteResult | null = null;
    if (load) {
      loadResult = await client.execute(LOAD_CODE, {
        silent: true,
        storeHistory: false
      });
      if (loadResult.reply.content.status !== 'ok') {
        throw new Error(
          `${LOAD_CODE} failed: ${JSON.stringify(loadResult.reply.content)}\n` +
            client.processOutput
        );
      }
    }
    const { commId, messages } = await client.commOpen(COMM_TARGET, open);
    return new CyscopeSession(client, commId, messages, loadResult);
  }

  /** The greeting: the first message on the comm. */
  async hello(timeoutMs = 10000): Promise<HelloMessage> {
    const first = await this.messages.find(() => true, timeoutMs, 'hello');
    expectType(first, 'hello');
    return dataOf(first) as HelloMessage;
  }

  /** Messages received so far, in order (as sent; see `violations`). */
  data(): KernelMessage[] {
    return this.messages.received.map(dataOf);
  }

  /** Send anything on the comm; returns the request's msg_id. */
  send(data: unknown): Promise<string> {
    return this.client.commMsg(this.commId, data);
  }

  /** Send, then wait for the message the kernel sends in direct answer (the
   * one whose IOPub parent is our comm_msg). */
  async request(data: unknown, timeoutMs = 10000): Promise<KernelMessage> {
    // Sends and replies can interleave: search from the start of the log.
    const msgId = await this.send(data);
    const answer = await this.messages.find(
      m => m.parent_header.msg_id === msgId,
      timeoutMs,
      `an answer to ${JSON.stringify(data)}`
    );
    return dataOf(answer);
  }

  /** Messages whose IOPub parent is the given request. */
  answersTo(msgId: string): KernelMessage[] {
    return this.messages.received
      .filter(m => m.parent_header.msg_id === msgId)
      .map(dataOf);
  }

  /** Run a (non-silent) cell and gather what cyscope streamed about it. */
  async runCell(code: string, timeoutMs = 30000): Promise<CellRun> {
    const result = await this.client.execute(code, {
      timeoutMs,
      stopOnError: false
    });
    const executionCount = result.reply.content.execution_count;
    this.cellsRun.push(executionCount);
    const cellMsg = await this.messages.find(
      m =>
        isType(m, 'cell') &&
        (dataOf(m) as CellMessage).record.execution_count === executionCount,
      5000,
      `the cell message for execution_count ${executionCount}`
    );
    const log = this.client.iopubLog;
    const status = (state: string): number => {
      const msg = result.iopub.find(
        m =>
          m.header.msg_type === 'status' && m.content.execution_state === state
      );
      return msg ? log.indexOf(msg) : -1;
    };
    const [busyAt, idleAt] = [status('busy'), status('idle')];
    const samples = this.messages.received
      .filter(m => isType(m, 'sample'))
      .filter(m => {
        const at = log.indexOf(m);
        return busyAt < at && at < idleAt;
      })
      .map(m => dataOf(m) as SampleMessage);
    return {
      result,
      executionCount,
      samples,
      runningSamples: samples.filter(s => s.running),
      finalSamples: samples.filter(s => !s.running),
      cell: dataOf(cellMsg) as CellMessage
    };
  }

  /** Close the comm from the frontend side (validation and collection go
   * on, so anything the kernel still sends is seen). */
  async close(): Promise<void> {
    await this.client.commClose(this.commId);
  }

  /** Stop validating and collecting (the comm itself stays open). */
  dispose(): void {
    this.stopValidating();
    this.messages.close();
  }
}

function expectType(msg: CommMessage, type: KernelMessage['type']): void {
  if (!isType(msg, type)) {
    throw new Error(
      `expected a ${type} message, got ${JSON.stringify(msg.content.data)}`
    );
  }
}
