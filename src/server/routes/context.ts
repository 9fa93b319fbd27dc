import type { FastifyReply } from 'fastify';
import { VmwuError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { getJob, listAttempts, requireExperiment } from '../../sweep/index.js';
import { confinedFile } from '../files.js';
import type { ChangeHub } from '../hub.js';

/** What the route files share: the server's context, a refusal in the API's JSON shape, and the job a URL names. */

export interface RouteContext {
  store: Store;
  /** Tells open event streams what changed in the store. */
  hub: ChangeHub;
  /** Starts an experiment's background runner; returns its pid. */
  worker: (store: Store, name: string, dir: string) => number;
  /** The per-server CSRF token: the page carries it, GET /api/session gives it. */
  csrf: string;
  /** The built dashboard's directory, and its index.html. */
  webDir: string;
  indexHtml: string;
  /** One ender per open event stream; the server's close() calls them. */
  streams: Set<() => void>;
}

/** An error answer: `{error, message}` with this status. */
export const deny = (reply: FastifyReply, code: number, error: string, message: string) => reply.code(code).send({ error, message });

/** Job `idx` of experiment `name`, as the URL spells them; NO_EXPERIMENT or NO_JOB (404) otherwise. */
export const jobOf = (store: Store, name: string, idx: string) => {
  requireExperiment(store.db, name);
  const n = /^\d+$/.test(idx) ? Number(idx) : NaN;
  const j = Number.isSafeInteger(n) ? getJob(store.db, name, n) : undefined;
  if (!j) throw new VmwuError('NO_JOB', `experiment ${name} has no job ${idx}`);
  return j;
};

/**
 * The file a URL names under a job's attempt (`…/jobs/IDX/MARKER/PATH[?attempt=K]`,
 * the latest attempt by default), confined to that attempt's out dir. The raw
 * URL, not the router's decoded parameter: each segment is decoded once, by
 * confinedFile. An error answer's status, code and message otherwise.
 */
export function attemptFile(store: Store, p: { name: string; idx: string }, attempt: string | undefined, rawUrl: string, marker: string):
  { file: string } | { status: number; error: string; message: string } {
  const j = jobOf(store, p.name, p.idx);
  const attempts = listAttempts(store.db, j.experiment, j.index);
  const a = attempt ? attempts.find((x) => String(x.attempt) === attempt) : attempts[attempts.length - 1];
  if (!a) return { status: 404, error: 'NO_ATTEMPT', message: 'no such attempt' };
  const file = confinedFile(a.outDir, rawUrl.slice(rawUrl.indexOf(marker) + marker.length));
  return file ? { file } : { status: 404, error: 'NO_FILE', message: 'no such file in the job\'s outputs' };
}
