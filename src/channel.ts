/**
 * KernelChannel: the one object that talks to a notebook's kernel for cyscope.
 *
 * For every Python kernel the notebook gets (first start, restart, switch) it
 * loads the kernel package silently (`%load_ext cyscope`, no execution count,
 * no history), opens the 'cyscope' comm, and re-emits valid protocol messages.
 * Models and widgets never touch the kernel; they depend on IKernelChannel.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as KM } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  COMM_TARGET,
  FrontendMessage,
  KernelMessage,
  parseKernelMessage,
  ProtocolError
} from './protocol';

export type ChannelStatus =
  /** No kernel yet, or the kernel is (re)starting. */
  | 'waiting'
  /** Loading cyscope in the kernel and opening the comm. */
  | 'connecting'
  /** The comm is open. */
  | 'ready'
  /** The kernel is not a Python kernel: nothing to do. */
  | 'not-python'
  /** cyscope could not be loaded in the kernel (see `detail`). */
  | 'unavailable';

export interface IChannelState {
  status: ChannelStatus;
  /** Human-readable reason for 'unavailable' (and the kernel's name). */
  detail: string;
}

export interface IKernelChannel {
  readonly state: IChannelState;
  readonly stateChanged: ISignal<IKernelChannel, IChannelState>;
  readonly received: ISignal<IKernelChannel, KernelMessage>;
  /** Messages from the kernel that broke the protocol (dropped). */
  readonly rejected: ISignal<IKernelChannel, string>;
  send(message: FrontendMessage): boolean;
  readonly isDisposed: boolean;
  dispose(): void;
}

/** The silent load the frontend runs in every Python kernel. */
export const LOAD_EXTENSION_CODE = '%load_ext cyscope';

const DOWN_STATUSES = new Set<Kernel.Status>([
  'restarting',
  'autorestarting',
  'dead',
  'terminating',
  'unknown'
]);

export class KernelChannel implements IKernelChannel {
  constructor(
    private readonly _session: ISessionContext,
    private readonly _onReady: (channel: KernelChannel) => void = () =>
      undefined
  ) {
    _session.kernelChanged.connect(this._onKernelChanged, this);
    _session.statusChanged.connect(this._onStatusChanged, this);
    void _session.ready.then(() => this._connect());
  }

  get state(): IChannelState {
    return this._state;
  }

  get stateChanged(): ISignal<IKernelChannel, IChannelState> {
    return this._stateChanged;
  }

  get received(): ISignal<IKernelChannel, KernelMessage> {
    return this._received;
  }

  get rejected(): ISignal<IKernelChannel, string> {
    return this._rejected;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  send(message: FrontendMessage): boolean {
    if (
      !this._comm ||
      this._comm.isDisposed ||
      this._state.status !== 'ready'
    ) {
      return false;
    }
    this._comm.send({ ...message });
    return true;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._dropComm();
    Signal.clearData(this);
  }

  private _onKernelChanged(): void {
    this._dropComm();
    this._setState('waiting', '');
    void this._connect();
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (DOWN_STATUSES.has(status)) {
      if (this._state.status !== 'waiting') {
        this._dropComm();
        this._setState('waiting', '');
      }
    } else if (status === 'idle' && this._state.status === 'waiting') {
      void this._connect();
    }
  }

  private async _connect(): Promise<void> {
    const kernel = this._session.session?.kernel;
    if (this._disposed || !kernel || this._state.status === 'connecting') {
      return;
    }
    const generation = ++this._generation;
    const stale = () => this._disposed || generation !== this._generation;
    this._setState('connecting', '');
    try {
      const info = await kernel.info;
      if (stale()) {
        return;
      }
      if (info.language_info.name !== 'python') {
        this._setState('not-python', info.language_info.name);
        return;
      }
      const reply = await kernel.requestExecute({
        code: LOAD_EXTENSION_CODE,
        silent: true,
        store_history: false,
        // A failed load must not abort cells the user has queued.
        stop_on_error: false
      }).done;
      if (stale()) {
        return;
      }
      if (reply.content.status !== 'ok') {
        const content = reply.content as KM.IReplyErrorContent;
        this._setState(
          'unavailable',
          content.ename
            ? `${content.ename}: ${content.evalue}`
            : `load_ext returned status '${reply.content.status}'`
        );
        return;
      }
      this._openComm(kernel);
      this._setState('ready', '');
      this._onReady(this);
    } catch (error) {
      if (!stale()) {
        // The kernel went away mid-handshake; the next 'idle' retries.
        this._setState('waiting', String(error));
      }
    }
  }

  private _openComm(kernel: Kernel.IKernelConnection): void {
    const comm = kernel.createComm(COMM_TARGET);
    comm.onMsg = (msg: KM.ICommMsgMsg) => {
      this._dispatch(msg.content.data);
    };
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
        if (!this._disposed && this._state.status === 'ready') {
          this._setState('waiting', 'the kernel closed the cyscope comm');
        }
      }
    };
    this._comm = comm;
    comm.open({});
  }

  private _dispatch(data: unknown): void {
    let message: KernelMessage;
    try {
      message = parseKernelMessage(data);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this._rejected.emit(error.message);
        return;
      }
      throw error;
    }
    this._received.emit(message);
  }

  /**
   * Forget the comm and any handshake still in flight. The comm is closed,
   * not only disposed: after a dropped websocket ('unknown') the same kernel
   * process comes back with its comms, and an unclosed one would keep
   * receiving every sample next to the new one. (A restarted or replaced
   * kernel has no such comm; the close is then ignored or throws.)
   */
  private _dropComm(): void {
    this._generation++;
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // The kernel may already be gone; disposing is enough.
      }
      comm.dispose();
    }
  }

  private _setState(status: ChannelStatus, detail: string): void {
    if (this._state.status === status && this._state.detail === detail) {
      return;
    }
    this._state = { status, detail };
    this._stateChanged.emit(this._state);
  }

  private _state: IChannelState = { status: 'waiting', detail: '' };
  private _comm: Kernel.IComm | null = null;
  private _generation = 0;
  private _disposed = false;
  private _stateChanged = new Signal<IKernelChannel, IChannelState>(this);
  private _received = new Signal<IKernelChannel, KernelMessage>(this);
  private _rejected = new Signal<IKernelChannel, string>(this);
}
