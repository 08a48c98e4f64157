/**
 * JupyterLab's debugger, as the kernel sees it: Debug Adapter Protocol requests in
 * `debug_request` messages on the control channel, replies in `debug_reply`, events in
 * `debug_event` on IOPub. The requests and their arguments are the ones
 * @jupyterlab/debugger sends (session.ts `start`, service.ts `updateBreakpoints`,
 * `_getAllFrames`, `_getScopes`, `_getVariables`, `next`, `continue`...).
 */
import {
  ExecuteResult,
  JsonObject,
  JupyterMessage,
  KernelClient
} from '../support/kernel-client';

export interface DapResponse {
  success: boolean;
  command?: string;
  message?: string;
  body: any;
}

export interface DapEvent {
  event: string;
  body: any;
}

export interface Variable {
  name: string;
  value: string;
  type: string;
  variablesReference: number;
}

export class DapClient {
  /** Every debug_event received since the client was made, in order. */
  readonly events: DapEvent[] = [];
  private seq = 1;
  private cursor = 0;
  private readonly stopListening: () => void;

  constructor(readonly kernel: KernelClient) {
    this.stopListening = kernel.onMessage((msg: JupyterMessage) => {
      if (msg.channel === 'iopub' && msg.header.msg_type === 'debug_event') {
        this.events.push(msg.content as unknown as DapEvent);
      }
    });
  }

  dispose(): void {
    this.stopListening();
  }

  /** Send one DAP request; resolves with the debug_reply's content. */
  async request(
    command: string,
    args: JsonObject = {},
    timeoutMs = 60000
  ): Promise<DapResponse> {
    const reply = await this.kernel.controlRequest(
      'debug_request',
      { type: 'request', seq: this.seq++, command, arguments: args },
      timeoutMs
    );
    return reply.content as unknown as DapResponse;
  }

  /** A raw debug_request content, sent as is (for malformed-request tests). */
  async raw(content: JsonObject): Promise<DapResponse> {
    const reply = await this.kernel.controlRequest('debug_request', content);
    return reply.content as unknown as DapResponse;
  }

  /** What JupyterLab does when the debugger is switched on. */
  async start(): Promise<void> {
    await this.request('debugInfo');
    const init = await this.request('initialize', {
      clientID: 'jupyterlab',
      clientName: 'JupyterLab',
      adapterID: 'python3',
      pathFormat: 'path',
      linesStartAt1: true,
      columnsStartAt1: true,
      supportsVariableType: true,
      supportsVariablePaging: true,
      supportsRunInTerminalRequest: true,
      locale: 'en'
    });
    if (!init.success) {
      throw new Error(`initialize failed: ${JSON.stringify(init)}`);
    }
    const attach = await this.request('attach', {});
    if (!attach.success) {
      throw new Error(`attach failed: ${JSON.stringify(attach)}`);
    }
    await this.request('debugInfo');
  }

  /** What JupyterLab does on a click in a cell's gutter: dump the cell, set the
   * cell's breakpoints (lines only), configurationDone. Returns the reply. */
  async setBreakpoints(
    code: string,
    breakpoints: JsonObject[]
  ): Promise<{ path: string; reply: DapResponse }> {
    const dump = await this.request('dumpCell', { code });
    const path = dump.body.sourcePath as string;
    await this.request('debugInfo');
    const reply = await this.request('setBreakpoints', {
      breakpoints,
      source: { path },
      sourceModified: false
    });
    await this.request('configurationDone');
    return { path, reply };
  }

  /** The next event named `name` after the ones already read. */
  async nextEvent(name: string, timeoutMs = 30000): Promise<DapEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.events.length) {
        const ev = this.events[this.cursor++];
        if (ev.event === name) {
          return ev;
        }
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no ${name} event within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-5))}`
        );
      }
      await new Promise(ok => setTimeout(ok, 5));
    }
  }

  /** Skip every event received so far. */
  drain(): void {
    this.cursor = this.events.length;
  }

  /** stackTrace, then scopes and variables of the top frame, as JupyterLab shows them. */
  async frames(threadId: number): Promise<any[]> {
    const st = await this.request('stackTrace', { threadId });
    if (!st.success) {
      throw new Error(`stackTrace failed: ${JSON.stringify(st)}`);
    }
    return st.body.stackFrames;
  }

  async scopes(frameId: number): Promise<any[]> {
    const sc = await this.request('scopes', { frameId });
    if (!sc.success) {
      throw new Error(`scopes failed: ${JSON.stringify(sc)}`);
    }
    return sc.body.scopes;
  }

  async variables(variablesReference: number): Promise<Variable[]> {
    const v = await this.request('variables', { variablesReference });
    if (!v.success) {
      throw new Error(`variables failed: ${JSON.stringify(v)}`);
    }
    return v.body.variables;
  }

  /** The top frame's locals by name. */
  async locals(threadId: number): Promise<Record<string, Variable>> {
    const [top] = await this.frames(threadId);
    const [localsScope] = await this.scopes(top.id);
    const out: Record<string, Variable> = {};
    for (const v of await this.variables(localsScope.variablesReference)) {
      out[v.name] = v;
    }
    return out;
  }

  async evaluate(expression: string, frameId: number): Promise<DapResponse> {
    return this.request('evaluate', { expression, frameId, context: 'repl' });
  }
}

/** Wait for a running cell to finish. */
export function finished(
  run: Promise<ExecuteResult>,
  timeoutMs = 60000
): Promise<ExecuteResult> {
  return Promise.race([
    run,
    new Promise<ExecuteResult>((_, fail) =>
      setTimeout(
        () => fail(new Error(`the cell did not finish in ${timeoutMs} ms`)),
        timeoutMs
      ).unref()
    )
  ]);
}
