/**
 * A small, general QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * QMP is newline-delimited JSON. The server greets with {"QMP": {...}}, expects
 * `qmp_capabilities` before anything else, answers each command with
 * {"return": ..., "id": ...} or {"error": {"class", "desc"}, "id": ...}, and pushes
 * asynchronous {"event", "data", "timestamp"} messages at any point in between.
 *
 * Assumes QEMU's default compact output: a monitor started with `pretty=on`
 * spreads one message over several lines and cannot be framed by newlines.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { VmwuError } from '../errors.js';

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  /** `{}` when QEMU sent no data, so callers can read fields without a guard. */
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpClientOptions {
  /** Longest accepted line, in bytes; a longer one closes the connection. Default 16 MiB. */
  maxLineBytes?: number;
}

export interface ConnectOptions extends QmpClientOptions {
  /** Budget for connecting and the handshake together. Default 30 s. */
  timeoutMs?: number;
  /** Abort waiting early, e.g. when the QEMU process is seen to exit. */
  signal?: AbortSignal;
}

export interface HandshakeOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecuteOptions {
  /** No default: some commands (e.g. HMP `savevm`) legitimately block for minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Resolve with `undefined` if QEMU closes the connection while the command is in
   * flight (not if `close()` or a protocol error closed it). For commands whose effect
   * is to end QEMU (`quit`), where QEMU may close the socket before the reply is flushed.
   */
  closeIsSuccess?: boolean;
}

export interface WaitForEventOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Only resolve for an event of the given name that also passes this test. */
  filter?: (event: QmpEvent) => boolean;
}

/** A command QEMU answered with {"error": ...}. `code` is always `QMP_COMMAND_FAILED`. */
export class QmpError extends VmwuError {
  /** QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;
  constructor(command: string, errorClass: string, desc: string) {
    super('QMP_COMMAND_FAILED', `QMP command '${command}' failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** Events emitted by QmpClient. */
export interface QmpClientEvents {
  /** Every asynchronous QMP event, in arrival order. */
  event: [QmpEvent];
  /** Once, when the connection is gone; the error is what ended it, if anything did. */
  close: [Error | undefined];
}

const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
const NEWLINE = 0x0a;
/** Errors meaning "QEMU has not created or not yet listened on the socket". */
const RETRYABLE_CONNECT_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

interface PendingCommand {
  command: string;
  closeIsSuccess: boolean;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient extends EventEmitter<QmpClientEvents> {
  /** Resolves (never rejects) when the connection is gone, with the error that ended it, if any. */
  readonly closed: Promise<Error | undefined>;

  private readonly socket: net.Socket;
  private readonly socketGone: Promise<void>;
  private readonly maxLineBytes: number;
  private readonly pending = new Map<number, PendingCommand>();
  private nextId = 1;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private ready = false;
  private finished = false;
  private closedByCaller = false;
  private closeError: Error | undefined;
  private handshakePromise: Promise<QmpVersion> | undefined;
  private receivedGreeting: QmpGreeting | undefined;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined;
  private resolveClosed!: (err: Error | undefined) => void;

  private constructor(socket: net.Socket, options: QmpClientOptions = {}) {
    super();
    this.socket = socket;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.socketGone = socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk));
    socket.on('error', (err) => {
      this.closeError ??= err;
    });
    // A half-open QMP connection is useless: QEMU only ends its side when it goes away.
    socket.on('end', () => socket.destroy());
    socket.on('close', () => this.finish());
    if (socket.closed) queueMicrotask(() => this.finish());
  }

  /**
   * Connect to a QEMU started with `-qmp unix:PATH,server=on,wait=off` and do the
   * handshake. Retries while the socket does not exist or nobody listens yet, because
   * QEMU creates it some time after the process starts.
   */
  static async connect(path: string, options: ConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const deadline = performance.now() + timeoutMs;
    let delayMs = 5;
    let lastError: Error | undefined;
    for (;;) {
      if (options.signal?.aborted) throw abortedError(options.signal, `connecting to QMP socket ${path}`);
      try {
        const socket = await connectOnce(path);
        const client = new QmpClient(socket, options);
        try {
          await client.handshake({ timeoutMs: Math.max(1, deadline - performance.now()), signal: options.signal });
        } catch (err) {
          socket.destroy();
          throw err;
        }
        return client;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === undefined || !RETRYABLE_CONNECT_CODES.has(code)) throw err;
        lastError = err as Error;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new VmwuError(
          'QMP_CONNECT_TIMEOUT',
          `could not connect to QMP socket ${path} within ${timeoutMs} ms: ${lastError.message}`,
          'check that QEMU is running and was started with -qmp unix:PATH,server=on,wait=off',
          { cause: lastError },
        );
      }
      await sleep(Math.min(delayMs, remaining), options.signal, `connecting to QMP socket ${path}`);
      delayMs = Math.min(delayMs * 2, 100);
    }
  }

  /**
   * Wrap an already connected socket, e.g. the one QEMU opens to a server vmwu listens
   * on (`-chardev socket,id=qmp,path=PATH -mon chardev=qmp,mode=control`). Call
   * `handshake()` before `execute()`. The socket must not have been read from: the
   * greeting is usually already waiting in it.
   */
  static fromSocket(socket: net.Socket, options: QmpClientOptions = {}): QmpClient {
    return new QmpClient(socket, options);
  }

  /**
   * Read the greeting, negotiate capabilities and return QEMU's version. Idempotent:
   * later calls return the first call's promise (and ignore their options).
   */
  handshake(options: HandshakeOptions = {}): Promise<QmpVersion> {
    this.handshakePromise ??= this.doHandshake(options);
    return this.handshakePromise;
  }

  /**
   * Run a QMP command and resolve with its `return` value. Rejects with QmpError when
   * QEMU reports an error, and with a VmwuError (`QMP_CLOSED`, `QMP_PROTOCOL`,
   * `QMP_TIMEOUT`, `QMP_ABORTED`, `QMP_NOT_READY`) when no reply can be had.
   */
  execute<T = unknown>(command: string, args?: object, options: ExecuteOptions = {}): Promise<T> {
    if (!this.ready && !this.finished) {
      return Promise.reject(
        new VmwuError('QMP_NOT_READY', `QMP command '${command}' issued before the handshake`, 'await client.handshake() first'),
      );
    }
    return this.send<T>(command, args, options);
  }

  /**
   * Ask QEMU to exit. Resolves once QEMU acknowledged or dropped the connection, which
   * is not yet the process having exited: wait for that on the process itself.
   */
  async quit(options: Omit<ExecuteOptions, 'closeIsSuccess'> = {}): Promise<void> {
    await this.execute('quit', undefined, { ...options, closeIsSuccess: true });
  }

  /**
   * Resolve with the next event called `name` (passing `filter`, if given). Start
   * waiting before issuing the command that causes the event: QEMU often sends it
   * before the command's reply. Rejects if the connection closes first.
   */
  waitForEvent(name: string, options: WaitForEventOptions = {}): Promise<QmpEvent> {
    const what = `QMP event ${name}`;
    if (this.finished) return Promise.reject(this.closedError(what));
    if (options.signal?.aborted) return Promise.reject(abortedError(options.signal, what));
    return new Promise<QmpEvent>((resolve, reject) => {
      const onEvent = (ev: QmpEvent): void => {
        if (ev.event !== name || (options.filter && !options.filter(ev))) return;
        disarm();
        resolve(ev);
      };
      const onClose = (): void => {
        disarm();
        reject(this.closedError(what));
      };
      const disarm = (): void => {
        disarmGuard();
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      const disarmGuard = guard(options, what, (err) => {
        disarm();
        reject(err);
      });
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /** QEMU's greeting, once received. */
  get greeting(): QmpGreeting | undefined {
    return this.receivedGreeting;
  }

  /** True once the connection is gone (or being torn down by `close()`). */
  get isClosed(): boolean {
    return this.finished;
  }

  /** Close the connection; commands and waits in flight reject with `QMP_CLOSED`. */
  async close(): Promise<void> {
    if (!this.finished) {
      this.closedByCaller = true;
      // Settle everything now rather than on the socket's 'close', so nothing resolves afterwards.
      this.finish();
      this.socket.destroy();
    }
    await this.socketGone;
  }

  private async doHandshake(options: HandshakeOptions): Promise<QmpVersion> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const greeting = await this.waitForGreeting({ timeoutMs, signal: options.signal });
    await this.send('qmp_capabilities', undefined, { timeoutMs, signal: options.signal });
    this.ready = true;
    return greeting.version;
  }

  private waitForGreeting(options: HandshakeOptions): Promise<QmpGreeting> {
    const what = 'the QMP greeting';
    if (this.receivedGreeting) return Promise.resolve(this.receivedGreeting);
    if (this.finished) return Promise.reject(this.closedError(what));
    if (options.signal?.aborted) return Promise.reject(abortedError(options.signal, what));
    return new Promise<QmpGreeting>((resolve, reject) => {
      const hint = 'QEMU serves one QMP client per socket: is another one connected?';
      const disarm = guard(options, what, (err) => {
        this.greetingWaiter = undefined;
        reject(err);
      }, hint);
      this.greetingWaiter = {
        resolve: (g) => {
          disarm();
          resolve(g);
        },
        reject: (e) => {
          disarm();
          reject(e);
        },
      };
    });
  }

  private send<T>(command: string, args: object | undefined, options: ExecuteOptions): Promise<T> {
    const what = `the reply to QMP command '${command}'`;
    if (this.finished) return Promise.reject(this.closedError(what));
    // Checked before writing: an aborted call must not reach QEMU at all.
    if (options.signal?.aborted) return Promise.reject(abortedError(options.signal, what));
    const id = this.nextId++;
    const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return new Promise<T>((resolve, reject) => {
      const disarm = guard(options, what, (err) => {
        // A late reply to this id finds nothing pending and is dropped.
        this.pending.delete(id);
        reject(err);
      });
      this.pending.set(id, {
        command,
        closeIsSuccess: options.closeIsSuccess ?? false,
        resolve: (v) => {
          disarm();
          resolve(v as T);
        },
        reject: (e) => {
          disarm();
          reject(e);
        },
      });
      // A failed write surfaces as the socket's 'error' then 'close', which settles this.
      this.socket.write(JSON.stringify(message) + '\n');
    });
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl);
      if (this.bufferedBytes + piece.length > this.maxLineBytes) return this.failLineTooLong();
      // Join only on a newline: concatenating on every chunk would be quadratic for a
      // long line trickling in.
      lines.push(this.chunks.length === 0 ? piece : Buffer.concat([...this.chunks, piece]));
      this.chunks = [];
      this.bufferedBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.bufferedBytes + rest.length > this.maxLineBytes) return this.failLineTooLong();
      this.chunks.push(rest);
      this.bufferedBytes += rest.length;
    }
    // Decode whole lines only, so a multi-byte UTF-8 character split across chunks survives.
    for (const line of lines) {
      if (this.finished) return;
      const text = line.toString('utf8').trim();
      if (text === '') continue;
      let message: unknown;
      try {
        message = JSON.parse(text);
      } catch {
        return this.failProtocol(`QMP sent a line that is not JSON: ${truncate(text)}`);
      }
      this.onMessage(message);
    }
  }

  private onMessage(message: unknown): void {
    if (!isObject(message)) return this.failProtocol(`QMP sent a non-object message: ${truncate(JSON.stringify(message))}`);

    if ('QMP' in message) {
      const greeting = parseGreeting(message.QMP);
      if (!greeting) return this.failProtocol(`QMP greeting is malformed: ${truncate(JSON.stringify(message))}`);
      this.receivedGreeting = greeting;
      this.greetingWaiter?.resolve(greeting);
      this.greetingWaiter = undefined;
      return;
    }

    if (typeof message.event === 'string') {
      const ts = isObject(message.timestamp) ? message.timestamp : {};
      this.emit('event', {
        event: message.event,
        data: isObject(message.data) ? message.data : {},
        timestamp: {
          seconds: typeof ts.seconds === 'number' ? ts.seconds : 0,
          microseconds: typeof ts.microseconds === 'number' ? ts.microseconds : 0,
        },
      });
      return;
    }

    if ('return' in message || 'error' in message) {
      const pending = this.takePending(message.id);
      // Nothing pending: the command timed out or was aborted locally; its reply is moot.
      if (!pending) return;
      if ('error' in message) {
        const error = isObject(message.error) ? message.error : {};
        pending.reject(
          new QmpError(
            pending.command,
            typeof error.class === 'string' ? error.class : 'GenericError',
            typeof error.desc === 'string' ? error.desc : JSON.stringify(message.error),
          ),
        );
      } else {
        pending.resolve(message.return);
      }
      return;
    }

    this.failProtocol(`QMP sent an unrecognised message: ${truncate(JSON.stringify(message))}`);
  }

  private takePending(id: unknown): PendingCommand | undefined {
    if (typeof id === 'number') {
      const pending = this.pending.get(id);
      this.pending.delete(id);
      return pending;
    }
    // QEMU omits the id only when it could not parse the request far enough to read it
    // (e.g. nesting too deep). Without OOB it answers in order, so it is the oldest.
    if (id === undefined) {
      const first = this.pending.entries().next();
      if (first.done) return undefined;
      this.pending.delete(first.value[0]);
      return first.value[1];
    }
    return undefined;
  }

  private failLineTooLong(): void {
    this.failProtocol(`QMP sent a line longer than ${this.maxLineBytes} bytes`);
  }

  private failProtocol(message: string): void {
    this.closeError ??= new VmwuError('QMP_PROTOCOL', message, 'is the socket really a QEMU QMP monitor (mode=control, pretty=off)?');
    this.finish();
    this.socket.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.chunks = [];
    this.bufferedBytes = 0;
    this.greetingWaiter?.reject(this.closedError('the QMP greeting'));
    this.greetingWaiter = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      // Only QEMU hanging up says the command took effect; our own close() or a
      // protocol failure says nothing about it.
      if (p.closeIsSuccess && !this.closedByCaller && !isProtocolError(this.closeError)) p.resolve(undefined);
      else p.reject(this.closedError(`the reply to QMP command '${p.command}'`));
    }
    // Before emitting, so a throwing listener cannot leave `closed` pending forever.
    this.resolveClosed(this.closeError);
    this.emit('close', this.closeError);
  }

  private closedError(what: string): VmwuError {
    // A protocol violation is the more useful thing to report than the close it caused.
    if (isProtocolError(this.closeError)) {
      return new VmwuError('QMP_PROTOCOL', `${this.closeError.message} (connection closed before ${what})`, this.closeError.hint, {
        cause: this.closeError,
      });
    }
    const by = this.closedByCaller ? 'by the caller' : this.closeError ? `(${this.closeError.message})` : 'by QEMU';
    return new VmwuError('QMP_CLOSED', `QMP connection closed ${by} before ${what}`, 'check whether QEMU is still running', {
      cause: this.closeError,
    });
  }
}

/**
 * Arm a timeout and an abort signal for one wait. `fail` is called at most once, with
 * the reason; the returned function disarms both and must be called on settlement.
 * The caller must have checked `signal.aborted` already: 'abort' does not fire again.
 */
function guard(
  options: { timeoutMs?: number; signal?: AbortSignal },
  what: string,
  fail: (err: Error) => void,
  timeoutHint = 'check whether QEMU is hung',
): () => void {
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    cleanup();
    fail(abortedError(options.signal, what));
  };
  const cleanup = (): void => {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      cleanup();
      fail(new VmwuError('QMP_TIMEOUT', `timed out after ${options.timeoutMs} ms waiting for ${what}`, timeoutHint));
    }, options.timeoutMs);
  }
  return cleanup;
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    const onError = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function abortedError(signal: AbortSignal | undefined, what: string): VmwuError {
  return new VmwuError('QMP_ABORTED', `gave up waiting for ${what}`, undefined, { cause: signal?.reason });
}

function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(signal, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function parseGreeting(value: unknown): QmpGreeting | undefined {
  if (!isObject(value) || !isObject(value.version) || !isObject(value.version.qemu)) return undefined;
  const { major, minor, micro } = value.version.qemu;
  if (typeof major !== 'number' || typeof minor !== 'number' || typeof micro !== 'number') return undefined;
  return {
    version: {
      qemu: { major, minor, micro },
      package: typeof value.version.package === 'string' ? value.version.package : '',
    },
    capabilities: Array.isArray(value.capabilities) ? value.capabilities.filter((c): c is string => typeof c === 'string') : [],
  };
}

function isProtocolError(err: Error | undefined): err is VmwuError {
  return err instanceof VmwuError && err.code === 'QMP_PROTOCOL';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function truncate(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
