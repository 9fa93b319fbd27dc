import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import cookie from '@fastify/cookie';
import Fastify from 'fastify';
import { isVmwuError, VmwuError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { startWorker as startSweepWorker } from '../executors/worker.js';
import type { Store } from '../store/store.js';
import { baseUrl, hostForms, originForms, planExposure } from './exposure.js';
import { ChangeHub } from './hub.js';
import { deny, type RouteContext } from './routes/context.js';
import { registerEvents } from './routes/events.js';
import { registerExperiments } from './routes/experiments.js';
import { registerJobs } from './routes/jobs.js';
import { registerPage } from './routes/page.js';
import { registerSubmit } from './routes/submit.js';
import { registerUnits } from './routes/units.js';
import { loadTls, type TlsFiles } from './tls.js';
import { checkToken, drawToken, secretMatches } from './token.js';
import { removeStaleUploads } from './uploads.js';

/**
 * The dashboard's server (`vmwu serve`): Fastify with TLS and the token, CSRF, Origin and Host checks
 * before every route, and the background runners it starts for experiments.
 */

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

/** `vmwu sweep --detach`'s background runner, for the same store as this server. */
export function startWorker(store: Store, name: string, dir: string): number {
  return startSweepWorker(store.paths.root, name, dir);
}

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

  // On the app itself, not in a plugin's scope: the hooks above run before every route.
  const ctx: RouteContext = { store, hub, worker, csrf, webDir, indexHtml, streams };
  await registerPage(app, ctx);
  registerExperiments(app, ctx);
  registerJobs(app, ctx);
  registerUnits(app, ctx);
  registerEvents(app, ctx);
  registerSubmit(app, ctx);

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
