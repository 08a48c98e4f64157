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
  IConfigMessage,
  IHelloMessage,
  IKernelSettings,
  ISampleMessage,
  KernelMessage,
  requestHistoryMessage,
  sharedCapabilities
} from './protocol';

/** How many samples the live sparkline keeps. */
export const MAX_SAMPLES = 300;
/** How many cell rows the panel keeps (the kernel keeps its own history). */
export const MAX_ROWS = 2000;

export class MemoryModel {
  /**
   * @param settings what to ask of the kernel: a number is the sampling
   *   interval alone (the other settings then stay the kernel's own).
   */
  constructor(
    readonly channel: IKernelChannel,
    settings: number | IKernelSettings
  ) {
    this._settings =
      typeof settings === 'number' ? { intervalMs: settings } : settings;
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

  /** Changes whenever `rows` does (views rebuild only then). */
  get rowsVersion(): number {
    return this._rowsVersion;
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
    return this._settings.intervalMs ?? 100;
  }

  set intervalMs(value: number) {
    this.settings = { ...this._settings, intervalMs: value };
  }

  /** What the frontend asks of the kernel; setting it configures the kernel. */
  get settings(): Partial<IKernelSettings> {
    return this._settings;
  }

  set settings(value: Partial<IKernelSettings>) {
    this._settings = { ...value };
    this._sendSettings();
  }

  /** Features this frontend and the kernel both have (from its hello). */
  get capabilities(): ReadonlySet<string> {
    return this._shared;
  }

  /** The settings in effect in the kernel (from a kernel that reports
   * them, see the 'config' capability), or null. */
  get config(): IConfigMessage | null {
    return this._config;
  }

  /** Called by the channel owner once the comm is open. */
  handshake(): void {
    this._sendSettings();
    this.channel.send(requestHistoryMessage());
  }

  /** The first line of a row's cell: sent by the kernel, else looked up
   * with `lookupFirstLine` (set by whoever knows the notebook). */
  firstLine(record: ICellRecord): string | null {
    if (typeof record.first_line === 'string' && record.first_line) {
      return record.first_line;
    }
    return record.cell_id ? this.lookupFirstLine(record.cell_id) : null;
  }

  /** The first non-blank line of the notebook cell with this id, if any. */
  lookupFirstLine: (cellId: string) => string | null = () => null;

  dispose(): void {
    Signal.clearData(this);
  }

  private _onMessage(_: IKernelChannel, message: KernelMessage): void {
    switch (message.type) {
      case 'hello':
        if (this._hello && this._hello.pid !== message.pid) {
          // A new kernel process: its figures don't continue the old ones.
          this._rows = [];
          this._rowsVersion++;
          this._samples = [];
        }
        this._hello = message;
        this._shared = sharedCapabilities(message);
        this._config = null;
        // A new connection starts clean: an old error is not about it.
        this._lastError = null;
        break;
      case 'config':
        this._config = message;
        break;
      case 'sample':
        this._samples.push(message);
        if (this._samples.length > MAX_SAMPLES) {
          this._samples.splice(0, this._samples.length - MAX_SAMPLES);
        }
        break;
      case 'cell':
        this._addRow(message.record);
        this._rowsVersion++;
        break;
      case 'history':
        this._rows = [];
        message.records.forEach(record => this._addRow(record));
        this._rowsVersion++;
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

  private _sendSettings(): void {
    this.channel.send(
      configureMessage(this.intervalMs, this._settings, this._shared)
    );
  }

  private _onState(_: IKernelChannel, state: IChannelState): void {
    if (state.status !== 'ready') {
      // Until the next hello, nothing is known of what the kernel can do.
      this._shared = new Set();
      this._config = null;
    }
    this._changed.emit();
  }

  private _onRejected(_: IKernelChannel, reason: string): void {
    this._lastError = `ignored a malformed message from the kernel: ${reason}`;
    this._changed.emit();
  }

  private _settings: Partial<IKernelSettings>;
  private _shared: ReadonlySet<string> = new Set();
  private _config: IConfigMessage | null = null;
  private _hello: IHelloMessage | null = null;
  private _samples: ISampleMessage[] = [];
  private _rows: ICellRecord[] = [];
  private _lastError: string | null = null;
  private _rowsVersion = 0;
  private _changed = new Signal<MemoryModel, void>(this);
}
