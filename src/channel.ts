/**
 * KernelChannel: the one object that talks to a notebook's kernel for cyscope.
 *
 * For every Python kernel the notebook gets (first start, restart, switch) it
 * loads the kernel package silently (`%load_ext cyscope`, no execution count,
 * no history) unless the settings say not to, opens the 'cyscope' comm with
 * a connect message (who we are, what we understand, the settings), and
 * re-emits valid protocol messages. Models and widgets never touch the
 * kernel; they depend on IKernelChannel.
 *
 * It takes no for an answer: a kernel where the user ran `%unload_ext
 * cyscope` is left alone until the user loads it again or the kernel
 * restarts, and a comm the kernel refuses or closes is tried again after a
 * growing delay, not on every idle.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as KM } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  closeReason,
  COMM_TARGET,
  connectMessage,
  FrontendMessage,
  KernelMessage,
  parseKernelMessage,
  ProtocolError,
  UnknownKernelMessage
} from './protocol';
import { DEFAULT_SETTINGS, ICyscopeSettings, kernelSettings } from './settings';

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
  | 'unavailable'
  /** Loading into new kernels is off in the settings, and this kernel has
   * not loaded cyscope itself. */
  | 'off'
  /** The user ran `%unload_ext cyscope`; left alone until they load it again
   * or the kernel restarts. */
  | 'unloaded'
  /** The kernel refused or closed the comm; tried again later (`detail`). */
  | 'retrying';

export interface IChannelState {
  status: ChannelStatus;
  /** Human-readable reason for 'unavailable' and 'retrying' (and the
   * kernel's language for 'not-python'). */
  detail: string;
}

export interface IKernelChannel {
  readonly state: IChannelState;
  readonly stateChanged: ISignal<IKernelChannel, IChannelState>;
  readonly received: ISignal<IKernelChannel, KernelMessage>;
  /** Messages from the kernel that broke the protocol (dropped). */
  readonly rejected: ISignal<IKernelChannel, string>;
  send(message: FrontendMessage): boolean;
  /** Load cyscope in the kernel now (the user asked), whatever the
   * settings or an earlier `%unload_ext` said. */
  load(): Promise<void>;
  readonly isDisposed: boolean;
  dispose(): void;
}

/** The silent load the frontend runs in every Python kernel. */
export const LOAD_EXTENSION_CODE = '%load_ext cyscope';
/** Asked (as a user expression, silently) before opening a comm to a kernel
 * cyscope was not loaded into by us. */
export const IS_LOADED_EXPRESSION =
  "'cyscope' in get_ipython().extension_manager.loaded";

/** A process that is gone or going: what it had unloaded is forgotten. */
const NEW_PROCESS_STATUSES = new Set<Kernel.Status>([
  'restarting',
  'autorestarting',
  'dead',
  'terminating'
]);

export interface IBackoff {
  /** Delay before the first retry after a refused or closed comm. */
  firstMs: number;
  /** The longest delay (it doubles with each failure up to this). */
  maxMs: number;
  /** A comm open this long resets the delay. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: IBackoff = {
  firstMs: 2000,
  maxMs: 120000,
  stableMs: 30000
};

export interface IChannelOptions {
  /** The settings, read at each connection. */
  settings?: () => ICyscopeSettings;
  /** Called once the comm is open. */
  onReady?: (channel: KernelChannel) => void;
  /** Settled when the settings are known: nothing is loaded before. */
  ready?: Promise<unknown>;
  backoff?: IBackoff;
}

export class KernelChannel implements IKernelChannel {
  constructor(
    private readonly _session: ISessionContext,
    options: IChannelOptions = {}
  ) {
    this._settings = options.settings ?? (() => DEFAULT_SETTINGS);
    this._onReady = options.onReady ?? (() => undefined);
    this._backoff = options.backoff ?? DEFAULT_BACKOFF;
    _session.kernelChanged.connect(this._onKernelChanged, this);
    _session.statusChanged.connect(this._onStatusChanged, this);
    void Promise.all([_session.ready, options.ready]).then(() => {
      if (this._disposed) {
        return;
      }
      this._watch(this._session.session?.kernel ?? null);
      return this._connect();
    });
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

  async load(): Promise<void> {
    this._unloadedByUser = false;
    this._failures = 0;
    this._clearRetry();
    if (this._state.status !== 'ready') {
      await this._connect(true);
    }
  }

  /** The settings changed: a kernel left alone only because loading was
   * off gets cyscope now if it is on. */
  settingsChanged(): void {
    if (this._state.status === 'off' && this._settings().autoLoad) {
      void this._connect();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._clearRetry();
    this._watch(null);
    this._dropComm();
    Signal.clearData(this);
  }

  private _onKernelChanged(): void {
    this._dropComm();
    this._forgetProcess();
    this._watch(this._session.session?.kernel ?? null);
    this._setState('waiting', '');
    void this._connect();
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (NEW_PROCESS_STATUSES.has(status) || status === 'unknown') {
      // 'unknown': the websocket dropped; the process (and what the user
      // did in it) is the same.
      if (NEW_PROCESS_STATUSES.has(status)) {
        this._forgetProcess();
      }
      if (this._state.status !== 'waiting') {
        this._dropComm();
        this._setState('waiting', '');
      }
    } else if (status === 'idle') {
      const now = Date.now();
      const { status: current } = this._state;
      if (current === 'waiting') {
        void this._connect();
      } else if (current === 'retrying' && now >= this._retryAt) {
        void this._connect();
      } else if (
        this._recheck &&
        (current === 'off' ||
          current === 'unloaded' ||
          current === 'unavailable')
      ) {
        // The user ran code naming cyscope (`%load_ext cyscope`, a pip
        // install...): see whether it is loaded now, without loading it.
        this._recheck = false;
        void this._connect(false);
      }
    }
  }

  /**
   * Load (unless `load` is false or the settings or the user say not to),
   * then open the comm. With `load` false, a comm is opened only if the
   * kernel has cyscope loaded already.
   */
  private async _connect(load?: boolean): Promise<void> {
    const kernel = this._session.session?.kernel;
    if (this._disposed || !kernel || this._state.status === 'connecting') {
      return;
    }
    const generation = ++this._generation;
    const stale = () => this._disposed || generation !== this._generation;
    const loadNow =
      load ?? (this._settings().autoLoad && !this._unloadedByUser);
    this._clearRetry();
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
      if (loadNow) {
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
      } else {
        const loaded = await isLoaded(kernel);
        if (stale()) {
          return;
        }
        if (!loaded) {
          this._setState(this._unloadedByUser ? 'unloaded' : 'off', '');
          return;
        }
        this._unloadedByUser = false;
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
    comm.onClose = (msg: KM.ICommCloseMsg) => {
      if (this._comm !== comm) {
        return;
      }
      this._comm = null;
      this._clearStable();
      if (this._disposed || this._state.status !== 'ready') {
        return;
      }
      if (closeReason(msg?.content?.data) === 'unloaded') {
        this._unloadedByUser = true;
        this._setState('unloaded', '');
      } else {
        this._retryLater('the kernel closed the cyscope comm');
      }
    };
    this._comm = comm;
    const settings = kernelSettings(this._settings());
    comm.open({ ...connectMessage(settings) });
    // A comm that stays open is a working kernel: forget earlier failures.
    this._stableTimer = setTimeout(() => {
      this._stableTimer = null;
      this._failures = 0;
    }, this._backoff.stableMs);
  }

  private _retryLater(why: string): void {
    this._failures++;
    const delay = Math.min(
      this._backoff.maxMs,
      this._backoff.firstMs * 2 ** (this._failures - 1)
    );
    this._retryAt = Date.now() + delay;
    this._setState(
      'retrying',
      `${why}; trying again in ${Math.round(delay / 1000)} s`
    );
    this._clearRetry();
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      const kernel = this._session.session?.kernel;
      if (this._state.status === 'retrying' && kernel?.status === 'idle') {
        void this._connect();
      }
      // Busy now: the next 'idle' connects (its time has come).
    }, delay);
  }

  private _dispatch(data: unknown): void {
    let message: ReturnType<typeof parseKernelMessage>;
    try {
      message = parseKernelMessage(data);
    } catch (error) {
      if (error instanceof ProtocolError) {
        this._rejected.emit(error.message);
        return;
      }
      throw error;
    }
    if (message instanceof UnknownKernelMessage) {
      // A newer kernel's message: not an error (readers accept what they do
      // not know), so the panel does not hear of it.
      console.debug(
        `cyscope: ignored a kernel message of unknown type ${message.type}`
      );
      return;
    }
    this._received.emit(message);
  }

  /** Follow a kernel's IOPub for code that may have loaded cyscope. */
  private _watch(kernel: Kernel.IKernelConnection | null): void {
    this._watched?.iopubMessage.disconnect(this._onIOPub, this);
    this._watched = kernel;
    kernel?.iopubMessage.connect(this._onIOPub, this);
  }

  private _onIOPub(_: Kernel.IKernelConnection, msg: KM.IIOPubMessage): void {
    if (msg.header.msg_type === 'execute_input') {
      const code = (msg as KM.IExecuteInputMsg).content.code;
      if (typeof code === 'string' && code.includes('cyscope')) {
        this._recheck = true;
      }
    }
  }

  /** A new kernel process: nothing it did before counts. */
  private _forgetProcess(): void {
    this._unloadedByUser = false;
    this._failures = 0;
    this._recheck = false;
    this._clearRetry();
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
    this._clearStable();
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

  private _clearRetry(): void {
    if (this._retryTimer !== null) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
  }

  private _clearStable(): void {
    if (this._stableTimer !== null) {
      clearTimeout(this._stableTimer);
      this._stableTimer = null;
    }
  }

  private _setState(status: ChannelStatus, detail: string): void {
    if (this._state.status === status && this._state.detail === detail) {
      return;
    }
    this._state = { status, detail };
    this._stateChanged.emit(this._state);
  }

  private readonly _settings: () => ICyscopeSettings;
  private readonly _onReady: (channel: KernelChannel) => void;
  private readonly _backoff: IBackoff;
  private _state: IChannelState = { status: 'waiting', detail: '' };
  private _comm: Kernel.IComm | null = null;
  private _generation = 0;
  private _disposed = false;
  private _unloadedByUser = false;
  private _recheck = false;
  private _failures = 0;
  private _retryAt = 0;
  private _retryTimer: ReturnType<typeof setTimeout> | null = null;
  private _stableTimer: ReturnType<typeof setTimeout> | null = null;
  private _watched: Kernel.IKernelConnection | null = null;
  private _stateChanged = new Signal<IKernelChannel, IChannelState>(this);
  private _received = new Signal<IKernelChannel, KernelMessage>(this);
  private _rejected = new Signal<IKernelChannel, string>(this);
}

/** Whether cyscope is loaded in the kernel, asked silently (no count, no
 * history, nothing run but one expression). */
async function isLoaded(kernel: Kernel.IKernelConnection): Promise<boolean> {
  const reply = await kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    stop_on_error: false,
    user_expressions: { cyscope: IS_LOADED_EXPRESSION }
  }).done;
  const content = reply.content as KM.IExecuteReplyMsg['content'] & {
    user_expressions?: Record<
      string,
      { status?: string; data?: Record<string, unknown> }
    >;
  };
  const result = content.user_expressions?.cyscope;
  return result?.status === 'ok' && result.data?.['text/plain'] === 'True';
}
