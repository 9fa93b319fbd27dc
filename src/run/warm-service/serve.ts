import { rmSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { isVmwuError, VmwuError } from '../../errors.js';
import { ensurePrivateDir } from '../../store/private-dir.js';
import type { Store } from '../../store/store.js';
import { loadConfig } from '../../config.js';
import type { RunRequest } from '../job-request.js';
import { openNodeDirs, shortSocketRoot } from '../node-dirs.js';
import { runJobCached } from '../run-cache.js';
import { templateKey } from '../fast-start/template.js';
import { warmShape, type WarmRequest } from '../fast-start/warm.js';
import { WarmPool } from '../fast-start/warm-pool.js';
import { clientMessage, MAX_LINE, serviceRefuses, warmServiceSocket } from './protocol.js';
import { connectIfAnswered, onLines, sendLine } from './lines.js';

/**
 * A warm pool service (`vmwu warm --keep N`): a long-lived process of this host
 * that keeps N clones of one template warm and runs the jobs `vmwu run` hands
 * it, each in a clone of its own when it is of that shape (any other runs as
 * usual). Its jobs are recorded in the store like any run.
 */

export interface WarmServiceOptions {
  keep: number;
  /** Stop after this long without a job (none: until stopped). */
  idleMs?: number;
  signal?: AbortSignal;
  onReady?(info: { socket: string; key: string; keep: number }): void;
}

/** The socket of this store's service on this host. */
export async function serviceSocketOf(store: Store): Promise<string> {
  const dirs = openNodeDirs((await loadConfig(store.paths.root)).scratch, store.paths.root);
  return warmServiceSocket(dirname(dirs.instances), shortSocketRoot(), store.paths.root);
}

export async function serveWarmPool(store: Store, req: WarmRequest, o: WarmServiceOptions): Promise<void> {
  const socket = await serviceSocketOf(store);
  const live = await connectIfAnswered(socket);
  live?.destroy();
  if (live) throw new VmwuError('WARM_RUNNING', `a warm pool service for this store already runs on this host (${socket})`, 'stop it first (Ctrl-C where it runs)');
  const { shape, templates, cache } = await warmShape(store, req);
  const key = templateKey(shape);
  const pool = new WarmPool(() => o.keep, key);
  const jobs = new Set<Promise<unknown>>();
  let idle: NodeJS.Timeout | undefined;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });
  const arm = () => {
    clearTimeout(idle);
    if (o.idleMs && jobs.size === 0) idle = setTimeout(stop, o.idleMs);
  };
  const server = createServer((conn) => serve(conn));
  const serve = (conn: Socket) => {
    const ac = new AbortController();
    let started = false;
    conn.on('error', () => ac.abort());
    conn.on('close', () => ac.abort());
    onLines(conn, MAX_LINE, (line) => {
      let msg;
      try {
        msg = clientMessage.parse(JSON.parse(line));
      } catch (e) {
        sendLine(conn, { t: 'error', code: 'BAD_REQUEST', message: `not a message of the warm pool protocol: ${(e as Error).message.slice(0, 500)}` });
        conn.end();
        return;
      }
      if (msg.t === 'abort') return ac.abort();
      if (started) return;
      started = true;
      const request = msg.request as unknown as RunRequest;
      const refused = serviceRefuses(request);
      if (refused) {
        sendLine(conn, { t: 'error', code: 'NOT_FOR_SERVICE', message: `the warm pool service does not run ${refused}` });
        conn.end();
        return;
      }
      const job = runJobCached(store, request, {
        signal: ac.signal, warm: pool,
        onStart: ({ id, runDir, outDir, accel }) => sendLine(conn, { t: 'start', id, runDir, outDir, accel }),
        onOutput: (stream, chunk) => sendLine(conn, { t: 'out', stream, data: chunk.toString('base64') }),
        onCached: ({ source }) => sendLine(conn, { t: 'cached', source }),
        onDamaged: (why) => sendLine(conn, { t: 'damaged', why }),
      }, msg.cache).then((result) => sendLine(conn, { t: 'result', result }), (e: unknown) => {
        sendLine(conn, isVmwuError(e) ? { t: 'error', code: e.code, message: e.message, hint: e.hint } : { t: 'error', code: 'INTERNAL', message: (e as Error).message });
      }).finally(() => {
        conn.end();
        jobs.delete(job);
        arm();
      });
      jobs.add(job);
      clearTimeout(idle);
    });
  };
  try {
    ensurePrivateDir(dirname(socket));
    rmSync(socket, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    for (let i = 0; i < o.keep; i++) pool.keepWarm(templates, shape);
    o.onReady?.({ socket, key, keep: o.keep });
    arm();
    o.signal?.addEventListener('abort', stop);
    if (o.signal?.aborted) stop();
    await stopped;
  } finally {
    clearTimeout(idle);
    server.close();
    if (statSync(socket, { throwIfNoEntry: false })?.isSocket()) rmSync(socket, { force: true });
    await pool.close();
    // Jobs already handed in run to their end.
    await Promise.allSettled([...jobs]);
    cache.release();
  }
}
