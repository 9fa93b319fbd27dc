import { readFileSync } from 'node:fs';
import { Readable, type Duplex, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Client, type AcceptConnection, type ClientChannel, type UNIXConnectionDetails } from 'ssh2';
import type { z } from 'zod';
import { VmwuError } from '../../errors.js';
import { parseRemoteError } from './protocol.js';
import { fingerprint, remoteCommand, type RemoteVmwu } from './remote-command.js';

/**
 * The submitter's SSH connection to a pool host: the recorded host key required, keepalives that
 * notice a lost host, and each `vmwu remote` command run over it.
 */

export interface ConnectTarget extends RemoteVmwu {
  name: string;
  user: string;
  address: string;
  port: number;
  keyPath: string | null;
}

/** `--host-timeout`'s default: a host that misses keepalives this long (three in a row) is lost. */
export const DEFAULT_HOST_TIMEOUT_MS = 15_000;

export interface ConnectOptions {
  /** The recorded host key (base64 blob); the connection is refused unless the host presents exactly it. */
  hostKey: string | null;
  /** Unanswered keepalives for this long (or a connect that takes this long) mean the host is lost. */
  timeoutMs: number;
}

/** The host stopped answering (network down, host off): its jobs go elsewhere. */
export class HostLostError extends VmwuError {
  constructor(readonly host: string, why: string) {
    super('HOST_LOST', `host ${host} was lost: ${why}`, 'its jobs are requeued on the other hosts; check it with `vmwu hosts check`');
  }
}

export interface ExecOptions {
  stdin?: Buffer | Readable;
  /** Where stdout goes (piped, with backpressure); collected into the result otherwise. */
  stdout?: Writable;
  stderr?: Writable;
}

export interface ExecResult {
  code: number | null;
  stdout: Buffer;
  /** The last 64 KiB of stderr. */
  stderr: string;
}

const STDERR_TAIL = 64 * 1024;
/** A reply kept in memory (JSON answers); anything bigger goes to a stream the caller caps. */
const REPLY_CAP = 16 * 1024 * 1024;

/**
 * One SSH connection to a pool host (ssh2), shared by all the jobs running there:
 * each `vmwu remote` command is an exec channel. The host key is checked against
 * the one recorded when the host was added, never accepted blindly; keepalives
 * notice a host that went away, and every command still running on it then fails
 * with HostLostError.
 */
export class SshConnection {
  /** Bytes written to the host (command input: blobs, job archives). */
  sentBytes = 0;
  private lostWhy: string | null = null;
  private readonly onLost = new Set<(e: HostLostError) => void>();

  private constructor(readonly target: ConnectTarget, private readonly client: Client, readonly presentedKey: Buffer) {
    const lost = (why: string) => {
      if (this.lostWhy) return;
      this.lostWhy = why;
      const err = new HostLostError(target.name, why);
      for (const f of this.onLost) f(err);
    };
    client.on('error', (e) => lost(e.message));
    client.on('close', () => lost('connection closed'));
  }

  get alive(): boolean {
    return this.lostWhy === null;
  }

  static open(t: ConnectTarget, o: ConnectOptions): Promise<SshConnection> {
    const client = new Client();
    let presented: Buffer | undefined;
    let auth: { privateKey?: Buffer; agent?: string };
    if (t.keyPath) {
      try {
        auth = { privateKey: readFileSync(t.keyPath) };
      } catch (e) {
        return Promise.reject(new VmwuError('BAD_KEY', `cannot read the key ${t.keyPath} for host ${t.name}: ${(e as Error).message}`));
      }
    } else if (process.env.SSH_AUTH_SOCK) {
      auth = { agent: process.env.SSH_AUTH_SOCK };
    } else {
      return Promise.reject(new VmwuError('NO_KEY', `no key for host ${t.name}`, 'give --key FILE, or start ssh-agent with your key'));
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        reject(e);
      };
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        // Frames of a multi-VM job's segment ride this connection (forwardUnixSocket): small writes go at once, not behind Nagle.
        client.setNoDelay(true);
        resolve(new SshConnection(t, client, presented!));
      });
      client.once('error', (e: Error & { level?: string }) => {
        if (presented && o.hostKey !== null && presented.toString('base64') !== o.hostKey) {
          fail(new VmwuError('HOST_KEY_CHANGED', `host ${t.name} (${t.address}:${t.port}) presented host key ${fingerprint(presented)}, not the recorded one; refusing to connect`,
            'if the host was really reinstalled, check its key on the console and re-add it: vmwu hosts rm NAME && vmwu hosts add …'));
        } else if (e.level === 'client-authentication') {
          fail(new VmwuError('SSH_AUTH', `host ${t.name}: ${t.user}@${t.address} refused our key (${e.message})`, 'check --key and the authorized_keys of that user on the host'));
        } else {
          fail(new HostLostError(t.name, `cannot connect to ${t.address}:${t.port}: ${e.message}`));
        }
      });
      client.once('close', () => fail(new HostLostError(t.name, `connection to ${t.address}:${t.port} closed during the handshake`)));
      client.connect({
        host: t.address, port: t.port, username: t.user, ...auth,
        readyTimeout: o.timeoutMs, keepaliveInterval: Math.max(250, Math.round(o.timeoutMs / 3)), keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          presented = Buffer.from(key);
          return o.hostKey === null || presented.toString('base64') === o.hostKey;
        },
      });
    });
  }

  /** Runs `vmwu remote ARGS…` on the host. Rejects with HostLostError if the connection dies first. */
  exec(args: string[], o: ExecOptions = {}): Promise<ExecResult> {
    if (this.lostWhy) return Promise.reject(new HostLostError(this.target.name, this.lostWhy));
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (f: () => void) => {
        if (done) return;
        done = true;
        this.onLost.delete(onLost);
        f();
      };
      const onLost = (e: HostLostError) => finish(() => reject(e));
      this.onLost.add(onLost);
      this.client.exec(remoteCommand(this.target, args), (err, ch: ClientChannel) => {
        if (err) return finish(() => reject(this.lostWhy ? new HostLostError(this.target.name, this.lostWhy) : new VmwuError('SSH_EXEC', `host ${this.target.name}: ${err.message}`)));
        const out: Buffer[] = [];
        let errTail = '';
        let code: number | null = null;
        const sinks: Promise<void>[] = [];
        if (o.stdout) {
          ch.pipe(o.stdout);
          // Awaited only to let the sink flush; a sink that breaks is its owner's news, never an unhandled rejection here.
          sinks.push(finished(o.stdout).catch(() => undefined));
        } else {
          let kept = 0;
          ch.on('data', (c: Buffer) => {
            kept += c.length;
            if (kept <= REPLY_CAP) {
              out.push(c);
              return;
            }
            ch.close();
            finish(() => reject(new VmwuError('REMOTE_PROTOCOL', `host ${this.target.name}: \`vmwu remote ${args[0]}\` replied with more than ${REPLY_CAP} bytes`)));
          });
        }
        ch.stderr.on('data', (c: Buffer) => {
          errTail = (errTail + c.toString('utf8')).slice(-STDERR_TAIL);
        });
        if (o.stderr) {
          ch.stderr.pipe(o.stderr);
          sinks.push(finished(o.stderr).catch(() => undefined));
        }
        ch.on('exit', (c: number | null) => {
          code = c;
        });
        ch.on('close', () => {
          void Promise.all(sinks).then(() => finish(() => {
            if (code === null && this.lostWhy) reject(new HostLostError(this.target.name, this.lostWhy));
            else resolve({ code, stdout: Buffer.concat(out), stderr: errTail });
          }));
        });
        const input = o.stdin;
        if (input === undefined) {
          ch.end();
        } else {
          const src = Buffer.isBuffer(input) ? Readable.from([input]) : input;
          src.on('data', (c: Buffer) => {
            this.sentBytes += c.length;
          });
          src.on('error', (e) => {
            ch.close();
            finish(() => reject(e));
          });
          src.pipe(ch);
        }
      });
    });
  }

  /** Runs a remote command that replies with JSON; its failure becomes the host's own error. */
  async json<T>(args: string[], schema: z.ZodType<T>, o: ExecOptions = {}): Promise<T> {
    const r = await this.exec(args, o);
    if (r.code !== 0) throw remoteFailure(this.target.name, args[0]!, r);
    const text = r.stdout.toString('utf8').trim().split('\n').pop() ?? '';
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new VmwuError('REMOTE_PROTOCOL', `host ${this.target.name}: \`vmwu remote ${args[0]}\` replied ${JSON.stringify(text.slice(0, 200))}, not JSON`,
        'check that --vmwu starts a vmwu of this version on the host');
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new VmwuError('REMOTE_PROTOCOL', `host ${this.target.name}: unexpected reply to \`vmwu remote ${args[0]}\`: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  /**
   * Asks the host's sshd to listen on the unix socket `path` there and forward each
   * connection to it back over this connection, to `onStream` (OpenSSH's
   * streamlocal forwarding: `ssh -R path:…`). Resolves with what stops it.
   */
  async forwardUnixSocket(path: string, onStream: (s: Duplex) => void): Promise<() => void> {
    if (this.lostWhy) throw new HostLostError(this.target.name, this.lostWhy);
    // ssh2 hands over connections only for the paths it was asked to forward.
    const onConnection = (info: UNIXConnectionDetails, accept: AcceptConnection) => {
      if (info.socketPath === path) onStream(accept());
    };
    this.client.on('unix connection', onConnection);
    try {
      await new Promise<void>((resolve, reject) => {
        this.client.openssh_forwardInStreamLocal(path, (err) => (err ? reject(new VmwuError('SSH_FORWARD', `host ${this.target.name}: sshd would not forward ${path}: ${err.message}`, 'the host\'s sshd_config must allow it (AllowStreamLocalForwarding, the default)')) : resolve()));
      });
    } catch (e) {
      this.client.off('unix connection', onConnection);
      throw e;
    }
    return () => {
      this.client.off('unix connection', onConnection);
      if (this.alive) this.client.openssh_unforwardInStreamLocal(path, () => undefined);
    };
  }

  close(): void {
    this.lostWhy ??= 'closed by vmwu';
    this.client.end();
  }
}

/** A failed `vmwu remote` command as an error in the host's own words (its code kept). */
export function remoteFailure(host: string, what: string, r: ExecResult): VmwuError {
  const body = parseRemoteError(r.stderr);
  if (body) return new VmwuError(body.code, `host ${host}: ${body.message}`, body.hint);
  const tail = r.stderr.trim().split('\n').slice(-3).join(' / ');
  return new VmwuError('REMOTE_FAILED', `host ${host}: \`vmwu remote ${what}\` exited with ${r.code ?? 'no status'}${tail ? `: ${tail}` : ''}`,
    r.code === 127 ? 'vmwu is not on the host\'s PATH: give --vmwu with the command that starts it' : undefined);
}
