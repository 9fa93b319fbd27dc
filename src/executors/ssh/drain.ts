import { identityAlive } from '../../store/process-identity.js';
import type { Db } from '../../store/db.js';
import { requireHost, setHostDrained } from './hosts.js';

/**
 * `vmwu hosts drain NAME` (VMM's migration, Slurm's drain): the host is marked
 * in the store, which every runner of an SSH sweep watches. Runners place no
 * more jobs there, stop the ones running there at a checkpoint, fetch it, and
 * the jobs go on from it on other hosts (src/executors/ssh/pool.ts). This
 * module only marks and reports; the runners do the moving, because they hold
 * the connections and the jobs.
 */

/** An attempt that was running on the host when it was drained, and what became of it. */
export interface DrainedAttempt {
  experiment: string;
  job: number;
  attempt: number;
  status: string;
  /** The checkpoint it stopped at and goes on from, once it has moved. */
  checkpoint: string | null;
  error: string | null;
}

interface Row { experiment: string; job: number; attempt: number; status: string; error: string | null; owner: string }

/** Marks the host drained and returns the attempts running there whose runner is alive (a dead runner moves nothing). */
export function drainHost(db: Db, name: string): DrainedAttempt[] {
  const host = requireHost(db, name);
  if (!host.drainedAt) setHostDrained(db, name, new Date().toISOString());
  const rows = db.prepare(`SELECT experiment, job, attempt, status, error, owner FROM attempts WHERE host = ? AND status = 'running'`).all(name) as Row[];
  return rows.filter((r) => identityAlive(r.owner)).map((r) => ({ experiment: r.experiment, job: r.job, attempt: r.attempt, status: r.status, checkpoint: null, error: null }));
}

/** Puts a drained host back into placement. */
export function undrainHost(db: Db, name: string): void {
  requireHost(db, name);
  setHostDrained(db, name, null);
}

/** Where each of these attempts stands now: still running, or ended (moved at a checkpoint, or finished there). */
export function drainProgress(db: Db, attempts: DrainedAttempt[]): DrainedAttempt[] {
  const get = db.prepare('SELECT status, error FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?');
  const ck = db.prepare('SELECT id FROM checkpoints WHERE experiment = ? AND job = ? AND attempt = ? AND stopped = 1 ORDER BY created_at DESC LIMIT 1');
  return attempts.map((a) => {
    const r = get.get(a.experiment, a.job, a.attempt) as { status: string; error: string | null } | undefined;
    const c = ck.get(a.experiment, a.job, a.attempt) as { id: string } | undefined;
    return { ...a, status: r?.status ?? 'gone', error: r?.error ?? null, checkpoint: c?.id ?? null };
  });
}
