import { closeSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { FastifyInstance } from 'fastify';
import { attemptLogPaths, runLogPaths } from '../../run/instance.js';
import { getRun } from '../../run/records.js';
import { getJob, listAttempts } from '../../sweep/index.js';
import { jobOf, type RouteContext } from './context.js';

/** The server-sent event streams: every change to the store, and one job's live log. */

function sseHead(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no',
  });
  res.write('retry: 1000\n\n');
}

function sse(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** A log's first read starts at most this far before its end. */
const TAIL = 256 * 1024;

export function registerEvents(app: FastifyInstance, { store, hub, streams }: RouteContext): void {
  app.get('/api/events', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    sseHead(res);
    const off = hub.subscribe((ev) => sse(res, 'change', ev));
    // After subscribing: a client that has seen `hello` misses no change.
    sse(res, 'hello', { at: new Date().toISOString() });
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const end = () => {
      off();
      clearInterval(ping);
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
  });

  app.get<{ Params: { name: string; idx: string } }>('/api/experiments/:name/jobs/:idx/log', (req, reply) => {
    const j = jobOf(store, req.params.name, req.params.idx);
    reply.hijack();
    const res = reply.raw;
    sseHead(res);
    let attempt = 0;
    let offsets = { stdout: 0, stderr: 0 };
    let decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    let files: { stdout: string; stderr: string } | undefined;
    let watcher: FSWatcher | undefined;
    let closed = false;
    const pump = () => {
      if (!files || closed) return;
      for (const s of ['stdout', 'stderr'] as const) {
        let size: number;
        try {
          size = statSync(files[s]).size;
        } catch {
          continue;
        }
        if (size <= offsets[s]) continue;
        if (offsets[s] === 0 && size > TAIL) offsets[s] = size - TAIL;
        const fd = openSync(files[s], 'r');
        try {
          while (offsets[s] < size) {
            const buf = Buffer.alloc(Math.min(size - offsets[s], 64 * 1024));
            const n = readSync(fd, buf, 0, buf.length, offsets[s]);
            if (n <= 0) break;
            offsets[s] += n;
            const text = decoders[s].write(buf.subarray(0, n));
            if (text) sse(res, 'log', { stream: s, text });
          }
        } finally {
          closeSync(fd);
        }
      }
    };
    /**
     * Follows the job's latest attempt that has started: a run of this store keeps
     * its logs in its run dir; one on an SSH host or a batch node streams them into
     * the attempt's own dir. A new attempt starts a new log.
     */
    const resolve = () => {
      const latest = listAttempts(store.db, j.experiment, j.index).filter((a) => a.runId || a.host).pop();
      if (!latest || latest.attempt === attempt) return;
      const run = latest.runId ? getRun(store.db, latest.runId) : undefined;
      attempt = latest.attempt;
      offsets = { stdout: 0, stderr: 0 };
      decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
      files = run ? runLogPaths(run.runDir) : attemptLogPaths(latest.outDir);
      watcher?.close();
      try {
        watcher = watch(dirname(files.stdout), () => pump());
        watcher.on('error', () => undefined);
      } catch {
        watcher = undefined;
      }
      sse(res, 'attempt', { attempt, runId: latest.runId, host: latest.host });
    };
    const settle = () => {
      const now = getJob(store.db, j.experiment, j.index);
      const runningAttempt = listAttempts(store.db, j.experiment, j.index).some((a) => a.status === 'running');
      sse(res, 'job', { state: now?.state, attempt });
      if (now && ['succeeded', 'failed', 'cancelled'].includes(now.state) && !runningAttempt) {
        pump();
        sse(res, 'end', { state: now.state });
        end();
      }
    };
    // Files are watched; the fallback timer only stats two files (no database).
    const fallback = setInterval(pump, 1000);
    const off = hub.subscribe((ev) => {
      if (!ev.experiments.includes(j.experiment)) return;
      resolve();
      pump();
      settle();
    });
    const end = () => {
      if (closed) return;
      closed = true;
      off();
      clearInterval(fallback);
      watcher?.close();
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
    resolve();
    pump();
    settle();
  });
}
