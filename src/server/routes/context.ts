import type { FastifyReply } from 'fastify';
import { VmwuError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { getJob, requireExperiment } from '../../sweep/index.js';
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
