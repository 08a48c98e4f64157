/**
 * MemoryModel: what the memory panel shows for one notebook's kernel.
 *
 * Plain state plus a `changed` signal; it listens to an IKernelChannel and
 * never to the kernel itself, so tests drive it with a fake channel.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IChannelState, IKernelChannel } from './channel';
import {
  configureMessage,
  ICellRecord,
  IHelloMessage,
  ISampleMessage,
  KernelMessage,
  requestHistoryMessage
} from './protocol';

/** How many samples the live sparkline keeps. */
export const MAX_SAMPLES = 300;
/** How many cell rows the panel keeps (the kernel keeps its own history). */
export const MAX_ROWS = 2000;

export class MemoryModel {
  constructor(
    readonly channel: IKernelChannel,
    private _intervalMs: number
  ) {
    channel.received.connect(this._onMessage, this);
    channel.stateChanged.connect(this._onState, this);
    channel.rejected.connect(this._onRejected, this);
  }

  get changed(): ISignal<MemoryModel, void> {
    return this._changed;
  }

  get state(): IChannelState {
    return this.channel.state;
  }

  get hello(): IHelloMessage | null {
    return this._hello;
  }

  get latest(): ISampleMessage | null {
    return this._samples.length
      ? this._samples[this._samples.length - 1]
      : null;
  }

  /** Recent samples, oldest first. */
  get samples(): readonly ISampleMessage[] {
    return this._samples;
  }

  /** Cell rows, oldest first. */
  get rows(): readonly ICellRecord[] {
    return this._rows;
  }

  /** The execution count of the cell running now, if any. */
  get runningCell(): number | null {
    const latest = this.latest;
    return latest && latest.running ? latest.execution_count : null;
  }

  /** Protocol errors: the kernel's complaints and our rejections. */
  get lastError(): string | null {
    return this._lastError;
  }

  get intervalMs(): number {
    return this._intervalMs;
  }

  set intervalMs(value: number) {
    this._intervalMs = value;
    this.channel.send(configureMessage(value));
  }

  /** Called by the channel owner once the comm is open. */
  handshake(): void {
    this.channel.send(configureMessage(this._intervalMs));
    this.channel.send(requestHistoryMessage());
  }

  dispose(): void {
    Signal.clearData(this);
  }

  private _onMessage(_: IKernelChannel, message: KernelMessage): void {
    switch (message.type) {
      case 'hello':
        if (this._hello && this._hello.pid !== message.pid) {
          // A new kernel process: its figures don't continue the old ones.
          this._rows = [];
          this._samples = [];
        }
        this._hello = message;
        // A new connection starts clean: an old error is not about it.
        this._lastError = null;
        break;
      case 'sample':
        this._samples.push(message);
        if (this._samples.length > MAX_SAMPLES) {
          this._samples.splice(0, this._samples.length - MAX_SAMPLES);
        }
        break;
      case 'cell':
        this._addRow(message.record);
        break;
      case 'history':
        this._rows = [];
        message.records.forEach(record => this._addRow(record));
        break;
      case 'error':
        this._lastError = message.message;
        break;
    }
    this._changed.emit();
  }

  private _addRow(record: ICellRecord): void {
    // A history reply can overlap rows already streamed: keep one per start.
    const index = this._rows.findIndex(
      r =>
        r.execution_count === record.execution_count &&
        r.started_ms === record.started_ms
    );
    if (index >= 0) {
      this._rows[index] = record;
    } else {
      this._rows.push(record);
      this._rows.sort((a, b) => a.started_ms - b.started_ms);
    }
    if (this._rows.length > MAX_ROWS) {
      this._rows.splice(0, this._rows.length - MAX_ROWS);
    }
  }

  private _onState(): void {
    this._changed.emit();
  }

  private _onRejected(_: IKernelChannel, reason: string): void {
    this._lastError = `ignored a malformed message from the kernel: ${reason}`;
    this._changed.emit();
  }

  private _hello: IHelloMessage | null = null;
  private _samples: ISampleMessage[] = [];
  private _rows: ICellRecord[] = [];
  private _lastError: string | null = null;
  private _changed = new Signal<MemoryModel, void>(this);
}
