import { closeSync, createReadStream, existsSync, openSync, readFileSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { layerChain, listUnits } from '../unit/records.js';
import { isVmwuError, VmwuError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { startWorker as startSweepWorker } from '../executors/worker.js';
import { attemptLogPaths, runLogPaths } from '../run/instance.js';
import { getRun } from '../run/records.js';
import { listBases } from '../store/bases.js';
import { cancelExperimentOn, suspendExperimentOn } from '../executors/dispatch.js';
import { jobCheckpoints } from '../run/checkpoint/records.js';
import type { Store } from '../store/store.js';
import {
  checkExperimentName, createExperiment, experimentStatus, getJob, listAttempts, listExperimentSummaries, requireExperiment,
} from '../sweep/index.js';
import { reopenCancelled } from '../sweep/records/lifecycle.js';
import { retryJob } from '../sweep/retry-job.js';
import type { JobState } from '../sweep/states.js';
import { baseUrl, hostForms, originForms, planExposure } from './exposure.js';
import { confinedFile, listFiles } from './files.js';
import { ChangeHub } from './hub.js';
import { PARAM_NAME, queryJobs, timings, type JobQuery } from './queries.js';
import { loadTls, type TlsFiles } from './tls.js';
import { checkToken, drawToken, secretMatches } from './token.js';
import { discardUpload, removeStaleUploads, stageUpload } from './uploads.js';

export interface ServerOptions {
  /** The address to bind (default 127.0.0.1). Any other than loopback needs `tls`. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The access token; drawn at random when not given. An empty, short or patterned one is refused. */
  token?: string;
  /** Where the token came from, for the refusal's message (default: "the access token"). */
  tokenSource?: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: Partial<TlsFiles>;
  /** Further names the Host header may carry (loopback names and the bind address always may). */
  allowHosts?: string[];
  /** Change-detection tick (ms). */
  tickMs?: number;
  /** Where the built dashboard is (default: web/dist in the package). */
  webDir?: string;
  /** Starts an experiment's background runner (default: `vmwu resume NAME --worker`, detached); returns its pid. */
  spawnWorker?: (store: Store, name: string, dir: string) => number;
}

export interface RunningServer {
  /** The base URL, without the token. */
  url: string;
  /** The URL to open: it carries the token once, which then lives in a cookie. */
  loginUrl: string;
  token: string;
  close(): Promise<void>;
}

interface SubmitBody { planText?: unknown; planName?: unknown; name?: unknown; unit?: unknown; base?: unknown; slots?: unknown; retries?: unknown; maxJobs?: unknown }

const SORTS = new Set(['index', 'state', 'exit', 'attempts', 'duration', 'started', 'host', 'cpu', 'rss']);

/** `vmwu sweep --detach`'s background runner, for the same store as this server. */
export function startWorker(store: Store, name: string, dir: string): number {
  return startSweepWorker(store.paths.root, name, dir);
}

function sseHead(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no',
  });
  res.write('retry: 1000\n\n');
}

function sse(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

const TAIL = 256 * 1024;

/** A port taken or forbidden, an address not on this machine: said as such, with what to do. */
function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new VmwuError('PORT_IN_USE', `port ${port} on ${host} is already in use`, 'choose another with --port N (0: any free one)', { cause: e });
  if (code === 'EACCES') return new VmwuError('PORT_DENIED', `port ${port} on ${host} needs privileges`, 'use a port above 1023, e.g. --port 8080', { cause: e });
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new VmwuError('BAD_HOST', `--host ${host}: not an address of this machine`, 'give one of its addresses, 127.0.0.1 (the default) or 0.0.0.0 (every interface, with TLS)', { cause: e });
  }
  return e;
}

/**
 * Starts the dashboard and JSON API on `host:port` (127.0.0.1 and a free port by
 * default). Every page and API call needs the token; state-changing calls are POSTs
 * that also need the per-server CSRF token and a matching Origin.
 */
export async function startServer(store: Store, opts: ServerOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  // Only an absent token is drawn; any given one, the empty string included, must pass the check.
  const token = opts.token === undefined ? drawToken() : checkToken(opts.token, opts.tokenSource ?? 'the access token');
  const csrf = drawToken();
  const tls = opts.tls ? loadTls(opts.tls) : undefined;
  const exposure = planExposure({ host, tls: tls !== undefined, allowHosts: opts.allowHosts ?? [], machineName: hostname(), port: opts.port ?? 0 });
  const webDir = opts.webDir ?? join(packageRoot, 'web', 'dist');
  if (!existsSync(join(webDir, 'index.html'))) {
    throw new VmwuError('NO_DASHBOARD', `the dashboard is not built (${webDir}/index.html is missing)`, 'run `node scripts/build-web.mjs` (scripts/setup.sh does)');
  }
  const indexHtml = readFileSync(join(webDir, 'index.html'), 'utf8');
  removeStaleUploads(store);
  const hub = new ChangeHub(store.db, opts.tickMs ?? 500);
  const worker = opts.spawnWorker ?? startWorker;
  const app = Fastify({ logger: false, bodyLimit: 1 << 20, ...(tls ? { https: tls } : {}) });
  await app.register(cookie);
  let cookieName = 'vmwu_token';
  // Filled in once the port is known; until then (no request can come) they accept nothing.
  let hosts = new Set<string>();
  let origins = new Set<string>();
  const streams = new Set<() => void>();

  const deny = (reply: FastifyReply, code: number, error: string, message: string) => reply.code(code).send({ error, message });

  app.addHook('onRequest', async (req, reply) => {
    // A DNS-rebinding page reaches us under its own host name: refuse it.
    if (!hosts.has((req.headers.host ?? '').toLowerCase())) return deny(reply, 421, 'BAD_HOST', 'unexpected Host header');
    const q = (req.query ?? {}) as Record<string, unknown>;
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const fromQuery = typeof q.token === 'string' ? q.token : undefined;
    const fromCookie = req.cookies[cookieName];
    // secretMatches never matches an empty or missing candidate, and `token` was checked at start.
    const ok = [bearer, fromQuery, fromCookie].some((t) => secretMatches(t, token));
    if (!ok) return deny(reply, 401, 'UNAUTHORIZED', 'an access token is needed: open the URL `vmwu serve` printed, or send Authorization: Bearer TOKEN');
    if (fromQuery !== undefined && req.method === 'GET' && !req.url.startsWith('/api/')) {
      // First visit: the token moves into a cookie and out of the address bar.
      reply.setCookie(cookieName, token, { httpOnly: true, sameSite: 'strict', path: '/', secure: tls !== undefined });
      const u = new URL(req.url, 'http://x');
      u.searchParams.delete('token');
      return reply.redirect(u.pathname + u.search, 303);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const origin = req.headers.origin;
      if (origin !== undefined && !origins.has(origin.toLowerCase())) return deny(reply, 403, 'BAD_ORIGIN', 'cross-origin request refused');
      const h = req.headers['x-csrf-token'];
      if (typeof h !== 'string' || !secretMatches(h, csrf)) return deny(reply, 403, 'CSRF', 'missing or wrong X-CSRF-Token header (GET /api/session gives it)');
    }
    return undefined;
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff').header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer');
    return payload;
  });

  app.setErrorHandler((err, _req, reply) => {
    if (isVmwuError(err)) {
      const notFound = /^NO_/.test(err.code);
      return reply.code(notFound ? 404 : 400).send({ error: err.code, message: err.message, hint: err.hint });
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ error: 'INTERNAL', message: (err as Error).message });
  });

  await app.register(fastifyStatic, { root: webDir, prefix: '/static/', index: false, cacheControl: false });

  const page = (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'")
      .send(indexHtml.replace('__CSRF__', csrf));
  app.get('/', page);

  // ---- API ----
  app.get('/api/session', async () => ({ csrf }));

  app.get('/api/experiments', async () => listExperimentSummaries(store).map((x) => {
    let etaMs: number | null = null;
    if (x.state === 'running') etaMs = experimentStatus(store, x.name).etaMs;
    const started = store.db.prepare('SELECT MIN(started_at) AS s FROM experiment_jobs WHERE experiment = ?').get(x.name) as { s: string | null };
    return { ...x, etaMs, startedAt: started.s };
  }));

  app.get<{ Params: { name: string } }>('/api/experiments/:name', async (req) => {
    const st = experimentStatus(store, req.params.name);
    const e = requireExperiment(store.db, req.params.name);
    const first = getJob(store.db, e.name, 1) ?? undefined;
    const started = store.db.prepare('SELECT MIN(started_at) AS s FROM experiment_jobs WHERE experiment = ?').get(e.name) as { s: string | null };
    return {
      ...st, failures: st.failures.slice(0, 100), failureCount: st.failures.length, startedAt: started.s,
      paramNames: first ? Object.keys(first.params) : [], planText: e.planText, planFile: basename(e.planPath), maxRetries: e.maxRetries, resources: e.resources,
    };
  });

  app.get<{ Params: { name: string }; Querystring: Record<string, string> }>('/api/experiments/:name/jobs', async (req) => {
    requireExperiment(store.db, req.params.name);
    const q = req.query;
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(q)) {
      if (k.startsWith('param.') && PARAM_NAME.test(k.slice(6)) && v !== '') params[k.slice(6)] = v;
    }
    const query: JobQuery = {
      state: q.state ? (q.state.split(',') as JobState[]) : undefined, params,
      sort: SORTS.has(q.sort ?? '') ? (q.sort as JobQuery['sort']) : 'index', dir: q.dir === 'desc' ? 'desc' : 'asc',
      offset: Number(q.offset) || 0, limit: Number(q.limit) || 50,
    };
    return queryJobs(store.db, req.params.name, query);
  });

  app.get<{ Params: { name: string } }>('/api/experiments/:name/timings', async (req) => {
    requireExperiment(store.db, req.params.name);
    return timings(store.db, req.params.name);
  });

  const jobOf = (name: string, idx: string) => {
    requireExperiment(store.db, name);
    const n = /^\d+$/.test(idx) ? Number(idx) : NaN;
    const j = Number.isSafeInteger(n) ? getJob(store.db, name, n) : undefined;
    if (!j) throw new VmwuError('NO_JOB', `experiment ${name} has no job ${idx}`);
    return j;
  };

  app.get<{ Params: { name: string; idx: string } }>('/api/experiments/:name/jobs/:idx', async (req) => {
    const j = jobOf(req.params.name, req.params.idx);
    const checkpoints = jobCheckpoints(store.db, j.experiment, j.index);
    const attempts = listAttempts(store.db, j.experiment, j.index).map((a) => ({
      ...a, files: listFiles(a.outDir), runStatus: a.runId ? getRun(store.db, a.runId)?.status ?? null : null,
      checkpoints: checkpoints.filter((c) => c.attempt === a.attempt).map((c) => ({ id: c.id, createdAt: c.createdAt, bytes: c.bytes, stopped: c.stopped })),
    }));
    return { job: j, attempts };
  });

  app.get<{ Params: { name: string; idx: string; '*': string }; Querystring: { attempt?: string } }>('/api/experiments/:name/jobs/:idx/files/*', async (req, reply) => {
    const j = jobOf(req.params.name, req.params.idx);
    const attempts = listAttempts(store.db, j.experiment, j.index);
    const a = req.query.attempt ? attempts.find((x) => String(x.attempt) === req.query.attempt) : attempts[attempts.length - 1];
    if (!a) return deny(reply, 404, 'NO_ATTEMPT', 'no such attempt');
    // The raw URL, not the router's decoded parameter: each segment is decoded once, here.
    const raw = req.raw.url ?? '';
    const marker = '/files/';
    const tail = raw.slice(raw.indexOf(marker) + marker.length);
    const file = confinedFile(a.outDir, tail);
    if (!file) return deny(reply, 404, 'NO_FILE', 'no such file in the job\'s outputs');
    return reply.header('content-type', 'application/octet-stream')
      .header('content-disposition', `attachment; filename="${basename(file).replace(/[^A-Za-z0-9._-]/g, '_')}"`)
      .header('content-length', statSync(file).size)
      .send(createReadStream(file));
  });

  app.get('/api/units', async () => listUnits(store.db).map((u) => {
    const chain = layerChain(store.db, u.top).map((l) => ({ digest: l.digest, kind: l.kind, packages: l.packages, size: l.size, createdAt: l.createdAt }));
    return {
      name: u.name, version: u.version, digest: u.digest, base: u.base, baseDigest: u.baseDigest, createdAt: u.createdAt,
      packages: u.packages, chain, size: chain.reduce((s, l) => s + l.size, 0),
    };
  }));

  app.get('/api/bases', async () => listBases(store.db).map((b) => ({ ...b })));

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
    const j = jobOf(req.params.name, req.params.idx);
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

  app.post<{ Params: { name: string } }>('/api/experiments/:name/cancel', async (req) => {
    requireExperiment(store.db, req.params.name);
    const { state } = await cancelExperimentOn(store, req.params.name, { signal: AbortSignal.timeout(60_000) });
    return { name: req.params.name, state };
  });

  app.post<{ Params: { name: string } }>('/api/experiments/:name/suspend', async (req) => {
    requireExperiment(store.db, req.params.name);
    const taken = await suspendExperimentOn(store, req.params.name);
    return { name: req.params.name, state: requireExperiment(store.db, req.params.name).state, checkpoints: taken.map((c) => c.id) };
  });

  app.post<{ Params: { name: string } }>('/api/experiments/:name/resume', async (req) => {
    const e = requireExperiment(store.db, req.params.name);
    if (e.state === 'succeeded' || e.state === 'failed') {
      throw new VmwuError('BAD_STATE', `experiment ${e.name} has already ${e.state}`, e.state === 'failed' ? 'retry its failed jobs (POST …/jobs/N/retry)' : undefined);
    }
    reopenCancelled(store.db, e.name);
    const pid = worker(store, e.name, e.dir);
    return { name: e.name, pid };
  });

  app.post<{ Params: { name: string; idx: string } }>('/api/experiments/:name/jobs/:idx/retry', async (req) => {
    const j = jobOf(req.params.name, req.params.idx);
    const r = retryJob(store.db, j.experiment, j.index);
    // A living runner of a running experiment picks the job up itself; otherwise a worker is started.
    const pid = r.runnerAlive ? null : worker(store, j.experiment, requireExperiment(store.db, j.experiment).dir);
    return { name: j.experiment, job: j.index, pid };
  });

  // Whatever becomes of a submission (a bad plan, an unknown unit, a client gone
  // mid-way), its upload directory stays only if an experiment now uses it.
  const staged = new WeakMap<FastifyRequest, string>();
  const stage = (req: FastifyRequest, fileName: string, text: string) => {
    const u = stageUpload(store, fileName, text);
    staged.set(req, u.dir);
    return u.planPath;
  };
  const keepingOnlyUsedUpload = <Q extends FastifyRequest, R>(handler: (req: Q, reply: FastifyReply) => Promise<R>) =>
    async (req: Q, reply: FastifyReply): Promise<R> => {
      try {
        return await handler(req, reply);
      } finally {
        const dir = staged.get(req);
        if (dir) discardUpload(store, dir);
      }
    };

  app.post<{ Body: SubmitBody }>('/api/experiments', keepingOnlyUsedUpload(async (req, reply) => {
    const b = req.body;
    if (!b || typeof b !== 'object' || typeof b.planText !== 'string' || !b.planText.trim()) throw new VmwuError('BAD_VALUE', 'planText (the plan file\'s text) is required');
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    const num = (v: unknown, what: string) => {
      if (v === undefined || v === null || v === '') return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new VmwuError('BAD_VALUE', `${what}: expected a whole number`);
      return n;
    };
    const name = str(b.name);
    if (name !== undefined) checkExperimentName(name);
    // The plan lands in a directory of its own, which becomes the experiment root (root: paths resolve inside it).
    const fileName = (str(b.planName) ?? 'plan.pln').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '') || 'plan.pln';
    const planPath = stage(req, fileName, b.planText);
    const e = await createExperiment(store, {
      planPath, name, unit: str(b.unit), base: str(b.base), slots: num(b.slots, 'slots'), retries: num(b.retries, 'retries'),
      maxJobs: num(b.maxJobs, 'maxJobs'),
    });
    const pid = worker(store, e.name, e.dir);
    return reply.code(201).send({ name: e.name, jobs: e.jobCount, pid });
  }));

  try {
    await app.listen({ host, port: opts.port ?? 0 });
  } catch (e) {
    await app.close();
    throw listenError(e, host, opts.port ?? 0);
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  hosts = hostForms(exposure, port);
  origins = originForms(exposure, port);
  cookieName = `vmwu_token_${port}`; // cookies are not per port: two servers on one host must not share one
  const url = baseUrl(exposure, port);
  return {
    url, token, loginUrl: `${url}?token=${encodeURIComponent(token)}`,
    async close() {
      for (const end of [...streams]) end();
      hub.close();
      await app.close();
    },
  };
}
