/** A scripted IKernelChannel: lets models be tested without a kernel. */
import { ISignal, Signal } from '@lumino/signaling';

import {
  ChannelStatus,
  IChannelState,
  IKernelChannel
} from '../../src/channel';
import { FrontendMessage, KernelMessage } from '../../src/protocol';

export class FakeChannel implements IKernelChannel {
  sent: FrontendMessage[] = [];
  loads = 0;
  state: IChannelState = { status: 'ready', detail: '' };
  isDisposed = false;

  get stateChanged(): ISignal<IKernelChannel, IChannelState> {
    return this._stateChanged;
  }
  get received(): ISignal<IKernelChannel, KernelMessage> {
    return this._received;
  }
  get rejected(): ISignal<IKernelChannel, string> {
    return this._rejected;
  }

  send(message: FrontendMessage): boolean {
    this.sent.push(message);
    return this.state.status === 'ready';
  }

  async load(): Promise<void> {
    this.loads++;
  }

  dispose(): void {
    this.isDisposed = true;
  }

  emit(message: KernelMessage): void {
    this._received.emit(message);
  }

  reject(reason: string): void {
    this._rejected.emit(reason);
  }

  setState(status: ChannelStatus, detail = ''): void {
    this.state = { status, detail };
    this._stateChanged.emit(this.state);
  }

  private _stateChanged = new Signal<IKernelChannel, IChannelState>(this);
  private _received = new Signal<IKernelChannel, KernelMessage>(this);
  private _rejected = new Signal<IKernelChannel, string>(this);
}
