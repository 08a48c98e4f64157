/**
 * A small Jupyter kernel client for integration tests: it starts an ipykernel
 * process and talks wire protocol 5.3 to it over ZeroMQ, the way
 * jupyter_client does, with no Jupyter server in between.
 *
 * - `KernelClient.start()` writes a connection file (free ports on 127.0.0.1,
 *   random HMAC-SHA256 key), spawns `<python> -m ipykernel_launcher -f <file>`
 *   and waits until shell and IOPub both answer.
 * - Every message sent is signed; every message received is verified, and a
 *   bad signature is recorded in `wireErrors` (tests assert it stays empty).
 * - `kill()` / `restart()` / `shutdown()` mirror jupyter_client's semantics;
 *   `shutdown()` also closes every socket so jest exits without open handles.
 */
import { ChildProcess, spawn } from 'child_process';
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { createServer, AddressInfo, Server } from 'net';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import * as zmq from 'zeromq';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const PYTHON_SHIM = join(REPO_ROOT, 'python-shim');
export const DEFAULT_PYTHON =
  process.env.CYSCOPE_TEST_PYTHON || join(REPO_ROOT, '.venv', 'bin', 'python');

const PROTOCOL_VERSION = '5.3';
const DELIMITER = '<IDS|MSG>';

export type JsonObject = { [key: string]: unknown };
export type Channel = 'shell' | 'iopub' | 'control';

export interface MessageHeader {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

export interface JupyterMessage<C extends JsonObject = JsonObject> {
  channel: Channel;
  header: MessageHeader;
  /** Empty object when the message has no parent. */
  parent_header: Partial<MessageHeader>;
  metadata: JsonObject;
  content: C;
  buffers: Buffer[];
}

export interface ConnectionInfo {
  ip: string;
  transport: 'tcp';
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: 'hmac-sha256';
  kernel_name: string;
}

export interface ExecuteOptions {
  silent?: boolean;
  storeHistory?: boolean;
  userExpressions?: Record<string, string>;
  /** Default true, as in jupyter_client. */
  stopOnError?: boolean;
  /** How long to wait for both the reply and IOPub idle (default 30 s). */
  timeoutMs?: number;
}

export interface ExecuteReplyContent extends JsonObject {
  status: 'ok' | 'error' | 'aborted';
  execution_count: number;
  user_expressions?: Record<
    string,
    { status: string; data?: Record<string, string>; ename?: string }
  >;
  ename?: string;
  evalue?: string;
}

export interface ExecuteResult {
  msgId: string;
  reply: JupyterMessage<ExecuteReplyContent>;
  /** IOPub messages whose parent is this request, up to and including idle. */
  iopub: JupyterMessage[];
}

export interface RunningExecution {
  msgId: string;
  /** Settles when the reply and IOPub idle have both arrived. */
  done: Promise<ExecuteResult>;
}

export interface CommMsgContent extends JsonObject {
  comm_id: string;
  data: unknown;
}

export interface KernelClientOptions {
  python?: string;
  /** Extra environment for the kernel process (PYTHONPATH is always set). */
  env?: Record<string, string>;
  startupTimeoutMs?: number;
}

export class KernelDiedError extends Error {}

type Listener = (msg: JupyterMessage) => void;

interface PendingWait {
  reject: (error: Error) => void;
}

/** Reserve `count` distinct free TCP ports on 127.0.0.1. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((ok, fail) => {
        server.once('error', fail);
        server.listen(0, '127.0.0.1', () => ok());
      });
    }
    return servers.map(s => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(
      servers.map(s => new Promise<void>(ok => s.close(() => ok())))
    );
  }
}

function sign(key: string, parts: Buffer[]): string {
  const hmac = createHmac('sha256', key);
  for (const part of parts) {
    hmac.update(part);
  }
  return hmac.digest('hex');
}

/** The frames of `msg` on a DEALER socket (no routing identities). */
export function encodeMessage(
  msg: JupyterMessage<JsonObject>,
  key: string
): Buffer[] {
  const parts = [msg.header, msg.parent_header, msg.metadata, msg.content].map(
    part => Buffer.from(JSON.stringify(part))
  );
  return [
    Buffer.from(DELIMITER),
    Buffer.from(sign(key, parts)),
    ...parts,
    ...msg.buffers
  ];
}

/** Parse a received multipart message, verifying its HMAC-SHA256 signature. */
export function decodeMessage(
  frames: Buffer[],
  key: string,
  channel: Channel
): { message: JupyterMessage } | { error: string } {
  const at = frames.findIndex(f => f.toString() === DELIMITER);
  if (at < 0 || frames.length < at + 6) {
    return { error: `${channel}: malformed multipart message` };
  }
  const [signature, header, parent, metadata, content, ...buffers] =
    frames.slice(at + 1);
  const expected = Buffer.from(sign(key, [header, parent, metadata, content]));
  if (
    signature.length !== expected.length ||
    !timingSafeEqual(signature, expected)
  ) {
    return {
      error: `${channel}: bad signature on ${header.toString().slice(0, 200)}`
    };
  }
  try {
    return {
      message: {
        channel,
        header: JSON.parse(header.toString()) as MessageHeader,
        parent_header: JSON.parse(parent.toString()) as Partial<MessageHeader>,
        metadata: JSON.parse(metadata.toString()) as JsonObject,
        content: JSON.parse(content.toString()) as JsonObject,
        buffers
      }
    };
  } catch (error) {
    return { error: `${channel}: undecodable JSON: ${String(error)}` };
  }
}

/** Matches the message of `type` on `channel` that answers request `msgId`. */
function answerTo(
  channel: Channel,
  type: string,
  msgId: string
): (m: JupyterMessage) => boolean {
  return m =>
    m.channel === channel &&
    m.header.msg_type === type &&
    m.parent_header.msg_id === msgId;
}

function sleep(ms: number): Promise<void> {
  return new Promise(ok => setTimeout(ok, ms));
}

export class KernelClient {
  readonly python: string;
  readonly connection: ConnectionInfo;
  readonly connectionFile: string;
  /** Signature or framing problems seen on received messages. */
  readonly wireErrors: string[] = [];
  /** Every IOPub message received since start, in order. */
  readonly iopubLog: JupyterMessage[] = [];

  private readonly session = randomUUID();
  private readonly workDir: string;
  private readonly env: Record<string, string>;
  private readonly shell = new zmq.Dealer({ linger: 0 });
  private readonly control = new zmq.Dealer({ linger: 0 });
  private readonly iopub = new zmq.Subscriber({ linger: 0 });
  private readonly listeners = new Set<Listener>();
  private readonly pending = new Set<PendingWait>();
  private readonly readers: Promise<void>[] = [];
  private proc: ChildProcess | null = null;
  private exited: Promise<NodeJS.Signals | number | null> =
    Promise.resolve(null);
  private output = '';
  private spawnFailed = false;
  private closed = false;

  private constructor(
    python: string,
    connection: ConnectionInfo,
    workDir: string,
    env: Record<string, string>
  ) {
    this.python = python;
    this.connection = connection;
    this.workDir = workDir;
    this.connectionFile = join(workDir, 'kernel.json');
    this.env = env;
    writeFileSync(this.connectionFile, JSON.stringify(connection, null, 2), {
      mode: 0o600
    });
  }

  /** Write a connection file, start the kernel and wait until it answers. */
  static async start(options: KernelClientOptions = {}): Promise<KernelClient> {
    const [shell, iopub, stdin, control, hb] = await freePorts(5);
    const workDir = mkdtempSync(join(tmpdir(), 'cyscope-kernel-'));
    const connection: ConnectionInfo = {
      ip: '127.0.0.1',
      transport: 'tcp',
      shell_port: shell,
      iopub_port: iopub,
      stdin_port: stdin,
      control_port: control,
      hb_port: hb,
      key: randomBytes(32).toString('hex'),
      signature_scheme: 'hmac-sha256',
      kernel_name: 'cyscope-test'
    };
    const client = new KernelClient(
      options.python ?? DEFAULT_PYTHON,
      connection,
      workDir,
      options.env ?? {}
    );
    try {
      client.connectSockets();
      await client.launch(options.startupTimeoutMs);
    } catch (error) {
      await client.shutdown();
      throw error;
    }
    return client;
  }

  /** The kernel process id, or null while no process runs. */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  get isAlive(): boolean {
    return (
      this.proc !== null &&
      !this.spawnFailed &&
      this.proc.exitCode === null &&
      this.proc.signalCode === null
    );
  }

  /** Everything the kernel process wrote to stdout/stderr (for diagnostics). */
  get processOutput(): string {
    return this.output;
  }

  // -- process lifetime -----------------------------------------------------

  private async launch(timeoutMs = 30000): Promise<void> {
    const proc = spawn(
      this.python,
      ['-m', 'ipykernel_launcher', '-f', this.connectionFile],
      {
        env: {
          ...process.env,
          ...this.env,
          PYTHONPATH: PYTHON_SHIM,
          // Keep the user's IPython profile (startup files, history) out.
          IPYTHONDIR: join(this.workDir, 'ipython'),
          PYDEVD_DISABLE_FILE_VALIDATION: '1'
        },
        stdio: ['ignore', 'pipe', 'pipe']
      }
    );
    this.proc = proc;
    this.spawnFailed = false;
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString();
      if (process.env.CYSCOPE_TEST_DEBUG) {
        process.stderr.write(chunk);
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.exited = new Promise(ok => {
      proc.once('exit', (code, signal) => {
        const failure = new KernelDiedError(
          `kernel process ${proc.pid} exited (${signal ?? `code ${code}`})`
        );
        for (const wait of [...this.pending]) {
          wait.reject(failure);
        }
        ok(signal ?? code);
      });
      proc.once('error', error => {
        this.spawnFailed = true;
        this.output += `spawn error: ${error.message}\n`;
        ok(null);
      });
    });
    await this.waitForReady(timeoutMs);
  }

  /**
   * Wait until the kernel answers kernel_info on shell AND its status
   * messages reach our IOPub subscription (the "slow joiner" problem: a SUB
   * socket misses whatever is published before its subscription lands).
   */
  async waitForReady(timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.isAlive) {
        await sleep(100); // let the exit/error handlers record the output
        throw new Error(
          `kernel (${this.python}) exited during startup:\n${this.output}`
        );
      }
      const msg = this.message('kernel_info_request', {});
      const onIopub = this.waitFor(
        answerTo('iopub', 'status', msg.header.msg_id),
        1000,
        'kernel_info status'
      );
      const onShell = this.waitFor(
        answerTo('shell', 'kernel_info_reply', msg.header.msg_id),
        1000,
        'kernel_info_reply'
      );
      await this.send(this.shell, msg);
      const results = await Promise.allSettled([onShell, onIopub]);
      if (results.every(r => r.status === 'fulfilled')) {
        return;
      }
    }
    throw new Error(
      `kernel (${this.python}) not ready after ${timeoutMs} ms:\n${this.output}`
    );
  }

  /** SIGKILL the kernel process and wait until it is gone. */
  async kill(): Promise<void> {
    if (this.isAlive) {
      this.proc?.kill('SIGKILL');
    }
    await this.exited;
  }

  /** Like jupyter_client's restart(now=True): kill, then start a fresh
   * process on the same connection file; our sockets reconnect by themselves.
   */
  async restart(timeoutMs = 30000): Promise<void> {
    await this.kill();
    await this.launch(timeoutMs);
  }

  /** Whether the process exits within `ms` (no timer left behind). */
  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>(ok => {
      timer = setTimeout(() => ok(false), ms);
    });
    try {
      return await Promise.race([this.exited.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ask politely on control, SIGKILL after `timeoutMs`, close all sockets. */
  async shutdown(timeoutMs = 5000): Promise<void> {
    if (this.closed) {
      return;
    }
    if (this.isAlive) {
      try {
        const request = this.message('shutdown_request', { restart: false });
        const reply = this.waitFor(
          m =>
            m.channel === 'control' &&
            m.parent_header.msg_id === request.header.msg_id,
          timeoutMs,
          'shutdown_reply'
        );
        await this.send(this.control, request);
        await reply;
      } catch {
        // No answer: the kill below handles it.
      }
      if (!(await this.exitsWithin(timeoutMs))) {
        await this.kill();
      }
    }
    await this.exited;
    this.closed = true;
    for (const socket of [this.shell, this.control, this.iopub]) {
      socket.close();
    }
    await Promise.allSettled(this.readers);
    for (const wait of [...this.pending]) {
      wait.reject(new Error('kernel client closed'));
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }

  // -- sockets ----------------------------------------------------------------

  private url(port: number): string {
    return `tcp://${this.connection.ip}:${port}`;
  }

  private connectSockets(): void {
    this.shell.connect(this.url(this.connection.shell_port));
    this.control.connect(this.url(this.connection.control_port));
    this.iopub.connect(this.url(this.connection.iopub_port));
    this.iopub.subscribe();
    this.readers.push(
      this.readLoop(this.shell, 'shell'),
      this.readLoop(this.control, 'control'),
      this.readLoop(this.iopub, 'iopub')
    );
  }

  private async readLoop(
    socket: zmq.Dealer | zmq.Subscriber,
    channel: Channel
  ): Promise<void> {
    try {
      for await (const frames of socket) {
        const msg = this.decode(frames, channel);
        if (msg === null) {
          continue;
        }
        if (channel === 'iopub') {
          this.iopubLog.push(msg);
        }
        for (const listener of [...this.listeners]) {
          listener(msg);
        }
      }
    } catch (error) {
      if (!this.closed) {
        this.wireErrors.push(`${channel} reader failed: ${String(error)}`);
      }
    }
  }

  private decode(frames: Buffer[], channel: Channel): JupyterMessage | null {
    const decoded = decodeMessage(frames, this.connection.key, channel);
    if ('error' in decoded) {
      this.wireErrors.push(decoded.error);
      return null;
    }
    return decoded.message;
  }

  private message<C extends JsonObject>(
    msgType: string,
    content: C
  ): JupyterMessage<C> {
    return {
      channel: 'shell',
      header: {
        msg_id: randomUUID(),
        msg_type: msgType,
        session: this.session,
        username: 'cyscope-test',
        date: new Date().toISOString(),
        version: PROTOCOL_VERSION
      },
      parent_header: {},
      metadata: {},
      content,
      buffers: []
    };
  }

  private async send(
    socket: zmq.Dealer,
    msg: JupyterMessage<JsonObject>
  ): Promise<void> {
    await socket.send(encodeMessage(msg, this.connection.key));
  }

  // -- waiting ---------------------------------------------------------------

  /** Call `listener` for every message received on any channel; returns an
   * unsubscribe function. */
  onMessage(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * The next message (from now on) matching `predicate`. Rejects after
   * `timeoutMs`, or with KernelDiedError when the kernel process exits.
   * Register the wait BEFORE sending the request it answers.
   */
  waitFor(
    predicate: (msg: JupyterMessage) => boolean,
    timeoutMs: number,
    what = 'message'
  ): Promise<JupyterMessage> {
    return new Promise((ok, fail) => {
      const wait: PendingWait = {
        reject: error => {
          finish();
          fail(error);
        }
      };
      const timer = setTimeout(
        () =>
          wait.reject(
            new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
          ),
        timeoutMs
      );
      const unsubscribe = this.onMessage(msg => {
        if (predicate(msg)) {
          finish();
          ok(msg);
        }
      });
      const finish = (): void => {
        clearTimeout(timer);
        unsubscribe();
        this.pending.delete(wait);
      };
      this.pending.add(wait);
    });
  }

  // -- requests ---------------------------------------------------------------

  /** Send execute_request; `done` settles when reply and IOPub idle arrived. */
  startExecute(code: string, options: ExecuteOptions = {}): RunningExecution {
    const silent = options.silent ?? false;
    const msg = this.message('execute_request', {
      code,
      silent,
      store_history: options.storeHistory ?? !silent,
      user_expressions: options.userExpressions ?? {},
      allow_stdin: false,
      stop_on_error: options.stopOnError ?? true
    });
    const msgId = msg.header.msg_id;
    const timeoutMs = options.timeoutMs ?? 30000;
    const iopub: JupyterMessage[] = [];
    const unsubscribe = this.onMessage(m => {
      if (m.channel === 'iopub' && m.parent_header.msg_id === msgId) {
        iopub.push(m);
      }
    });
    const reply = this.waitFor(
      answerTo('shell', 'execute_reply', msgId),
      timeoutMs,
      `execute_reply to ${JSON.stringify(code)}`
    );
    const status = answerTo('iopub', 'status', msgId);
    const idle = this.waitFor(
      m => status(m) && m.content.execution_state === 'idle',
      timeoutMs,
      `IOPub idle after ${JSON.stringify(code)}`
    );
    const done = this.send(this.shell, msg)
      .then(() => Promise.all([reply, idle]))
      .then(([replyMsg]) => ({
        msgId,
        reply: replyMsg as JupyterMessage<ExecuteReplyContent>,
        iopub
      }))
      .finally(unsubscribe);
    return { msgId, done };
  }

  execute(code: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    return this.startExecute(code, options).done;
  }

  /** Evaluate one expression through user_expressions of a silent execute
   * (no execution_count bump, no history, no pre/post_run_cell events). */
  async evaluate(expression: string): Promise<string> {
    const { reply } = await this.execute('', {
      silent: true,
      storeHistory: false,
      userExpressions: { value: expression }
    });
    const result = reply.content.user_expressions?.value;
    if (reply.content.status !== 'ok' || result?.status !== 'ok') {
      throw new Error(
        `evaluating ${expression} failed: ${JSON.stringify(reply.content)}`
      );
    }
    return result.data?.['text/plain'] ?? '';
  }

  /** Open a comm from the client side; collection starts before sending, so
   * nothing the kernel answers is missed. */
  async commOpen(
    targetName: string,
    data: JsonObject = {}
  ): Promise<{ commId: string; msgId: string; messages: CommCollector }> {
    const commId = randomUUID().replace(/-/g, '');
    const messages = new CommCollector(this, commId);
    const msg = this.message('comm_open', {
      comm_id: commId,
      target_name: targetName,
      data
    });
    await this.send(this.shell, msg);
    return { commId, msgId: msg.header.msg_id, messages };
  }

  /** Send comm_msg on shell; returns the request's msg_id (the parent of any
   * direct answer on IOPub). `data` is sent as given, even if not an object. */
  async commMsg(commId: string, data: unknown): Promise<string> {
    const msg = this.message('comm_msg', { comm_id: commId, data });
    await this.send(this.shell, msg);
    return msg.header.msg_id;
  }

  async commClose(commId: string, data: JsonObject = {}): Promise<string> {
    const msg = this.message('comm_close', { comm_id: commId, data });
    await this.send(this.shell, msg);
    return msg.header.msg_id;
  }

  /** Send a request on the control channel (e.g. debug_request, the way JupyterLab's
   * debugger does) and wait for its reply. */
  async controlRequest(
    msgType: string,
    content: JsonObject,
    timeoutMs = 30000
  ): Promise<JupyterMessage> {
    const msg = this.message(msgType, content);
    const reply = this.waitFor(
      m =>
        m.channel === 'control' && m.parent_header.msg_id === msg.header.msg_id,
      timeoutMs,
      `the reply to ${msgType} ${JSON.stringify(content).slice(0, 120)}`
    );
    await this.send(this.control, msg);
    return reply;
  }

  /** A single heartbeat round trip on a fresh REQ socket. */
  async ping(timeoutMs = 2000): Promise<boolean> {
    const hb = new zmq.Request({
      linger: 0,
      sendTimeout: timeoutMs,
      receiveTimeout: timeoutMs
    });
    try {
      hb.connect(this.url(this.connection.hb_port));
      const payload = randomUUID();
      await hb.send(payload);
      const [echo] = await hb.receive();
      return echo.toString() === payload;
    } catch {
      return false;
    } finally {
      hb.close();
    }
  }
}

/**
 * The comm_msg traffic of one comm on IOPub, from the moment the collector is
 * created. Read it as a queue (`next`, `waitFor`, async iteration), search it
 * with `find`, or look at `received` as a whole.
 */
export class CommCollector {
  readonly received: JupyterMessage<CommMsgContent>[] = [];
  private cursor = 0;
  private readonly wakers = new Set<() => void>();
  private readonly unsubscribe: () => void;

  constructor(
    client: KernelClient,
    readonly commId: string
  ) {
    this.unsubscribe = client.onMessage(msg => {
      if (
        msg.channel === 'iopub' &&
        msg.header.msg_type === 'comm_msg' &&
        msg.content.comm_id === commId
      ) {
        this.received.push(msg as JupyterMessage<CommMsgContent>);
        for (const wake of [...this.wakers]) {
          wake();
        }
      }
    });
  }

  /** Resolve when a message arrives (true) or after `ms` (false). */
  private arrival(ms: number): Promise<boolean> {
    return new Promise(ok => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        ok(true);
      };
      const timer = setTimeout(() => {
        this.wakers.delete(wake);
        ok(false);
      }, ms);
      this.wakers.add(wake);
    });
  }

  /** The next unread message; rejects after `timeoutMs`. */
  async next(timeoutMs = 10000): Promise<JupyterMessage<CommMsgContent>> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.arrival(left))) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for a comm_msg on ${this.commId}`
        );
      }
    }
    return this.received[this.cursor++];
  }

  /** Read on from the cursor until a message matches and return it. */
  async waitFor(
    predicate: (msg: JupyterMessage<CommMsgContent>) => boolean,
    timeoutMs = 10000,
    what = 'a matching comm_msg'
  ): Promise<JupyterMessage<CommMsgContent>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let msg: JupyterMessage<CommMsgContent>;
      try {
        msg = await this.next(Math.max(deadline - Date.now(), 0));
      } catch {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      }
      if (predicate(msg)) {
        return msg;
      }
    }
  }

  /** The first message ever received that matches, waiting if none has yet
   * (independent of the cursor). */
  async find(
    predicate: (msg: JupyterMessage<CommMsgContent>) => boolean,
    timeoutMs = 10000,
    what = 'a matching comm_msg'
  ): Promise<JupyterMessage<CommMsgContent>> {
    const deadline = Date.now() + timeoutMs;
    let checked = 0;
    for (;;) {
      for (; checked < this.received.length; checked++) {
        if (predicate(this.received[checked])) {
          return this.received[checked];
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.arrival(left))) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<
    JupyterMessage<CommMsgContent>
  > {
    for (;;) {
      yield await this.next();
    }
  }

  /** Stop collecting. */
  close(): void {
    this.unsubscribe();
  }
}
