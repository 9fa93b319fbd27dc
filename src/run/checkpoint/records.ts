import { VmwuError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import type { CheckpointRecord } from './format.js';

/** The store's records of checkpoints: each one registered once its directory is whole, where it came from, which are superseded, and a job's newest. */

/** A checkpoint as the store lists it; its files and full record are in `dir`. */
export interface CheckpointRow {
  id: string;
  runId: string;
  createdAt: string;
  dir: string;
  bytes: number;
  qemu: string;
  stopped: boolean;
  experiment: string | null;
  job: number | null;
  attempt: number | null;
  /** LOCAL_ORIGIN, or `host:NAME` for one fetched from that SSH pool host (docs/security.md). */
  origin: string;
}

/** Made by this store's own vmwu, or by a batch node that shares the store. */
export const LOCAL_ORIGIN = 'local';

/** The origin of a checkpoint fetched from an SSH pool host. */
export const poolOrigin = (host: string) => `host:${host}`;

interface Row {
  id: string; run_id: string; created_at: string; dir: string; bytes: number; qemu: string; stopped: number;
  experiment: string | null; job: number | null; attempt: number | null; origin: string;
}

const fromRow = (r: Row): CheckpointRow => ({
  id: r.id, runId: r.run_id, createdAt: r.created_at, dir: r.dir, bytes: r.bytes, qemu: r.qemu, stopped: r.stopped === 1,
  experiment: r.experiment, job: r.job, attempt: r.attempt, origin: r.origin,
});

/**
 * Records a checkpoint once its directory is whole (src/run/checkpoint/take.ts renames
 * it into place first). One from a pool host is dated by this store's clock:
 * its own date is the host's word, and the newest checkpoint is chosen by date.
 */
export function insertCheckpoint(db: Db, rec: Pick<CheckpointRecord, 'id' | 'runId' | 'createdAt' | 'bytes' | 'qemu' | 'stopped'> & { blobs: string[] }, dir: string,
  of: { experiment: string; job: number; attempt: number } | null = null, origin = LOCAL_ORIGIN): void {
  const createdAt = origin === LOCAL_ORIGIN ? rec.createdAt : new Date().toISOString();
  // A report applied twice records its checkpoint once.
  db.prepare(`INSERT OR IGNORE INTO checkpoints (id, run_id, created_at, dir, bytes, qemu, stopped, experiment, job, attempt, blobs, origin)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    .run(rec.id, rec.runId, createdAt, dir, rec.bytes, rec.qemu, rec.stopped ? 1 : 0, of?.experiment ?? null, of?.job ?? null, of?.attempt ?? null,
      JSON.stringify(rec.blobs), origin);
}

/** The blobs a checkpoint's restore needs. */
export function checkpointBlobs(rec: Pick<CheckpointRecord, 'vm' | 'image' | 'data'>): string[] {
  return [rec.vm.kernel, rec.vm.initrd, rec.image.root, ...(rec.data ?? []).map((d) => d.digest)];
}

/** Of each run's checkpoints, this many of the newest are kept; older ones are superseded. */
export const KEPT_PER_RUN = 2;

/**
 * Checkpoints no one can need any more: of a run or a sweep job that finished
 * (a stopped or lost one can still go on), and those superseded by newer ones of
 * the same run.
 */
export function staleCheckpoints(db: Db): (CheckpointRow & { why: string })[] {
  const rows = db.prepare(`SELECT c.*, r.status AS run_status, j.state AS job_state,
      ROW_NUMBER() OVER (PARTITION BY c.run_id ORDER BY c.created_at DESC) AS rank
    FROM checkpoints c LEFT JOIN runs r ON r.id = c.run_id LEFT JOIN experiment_jobs j ON j.experiment = c.experiment AND j.idx = c.job`)
    .all() as (Row & { run_status: string | null; job_state: string | null; rank: number })[];
  const out: (CheckpointRow & { why: string })[] = [];
  for (const r of rows) {
    const finished = r.experiment !== null
      ? ['succeeded', 'failed', 'cancelled'].includes(r.job_state ?? 'gone') || r.job_state === null
      : ['succeeded', 'failed', 'timeout'].includes(r.run_status ?? 'gone') || r.run_status === null;
    if (finished) out.push({ ...fromRow(r), why: r.experiment !== null ? `job ${r.job} of ${r.experiment} is ${r.job_state ?? 'gone'}` : `run ${r.run_id} is ${r.run_status ?? 'gone'}` });
    else if (r.rank > KEPT_PER_RUN) out.push({ ...fromRow(r), why: 'superseded by newer checkpoints of its run' });
  }
  return out;
}

export function deleteCheckpointRow(db: Db, id: string): void {
  db.prepare('DELETE FROM checkpoints WHERE id = ?').run(id);
}

/** The newest checkpoint of a sweep's job, whichever attempt took it. */
export function latestJobCheckpoint(db: Db, experiment: string, job: number): CheckpointRow | undefined {
  const r = db.prepare('SELECT * FROM checkpoints WHERE experiment = ? AND job = ? ORDER BY created_at DESC LIMIT 1').get(experiment, job) as Row | undefined;
  return r && fromRow(r);
}

/** A sweep job's checkpoints, oldest first (the dashboard shows them per attempt). */
export function jobCheckpoints(db: Db, experiment: string, job: number): CheckpointRow[] {
  return (db.prepare('SELECT * FROM checkpoints WHERE experiment = ? AND job = ? ORDER BY created_at').all(experiment, job) as Row[]).map(fromRow);
}

export function listCheckpoints(db: Db, runId?: string): CheckpointRow[] {
  const rows = runId
    ? db.prepare('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY created_at').all(runId)
    : db.prepare('SELECT * FROM checkpoints ORDER BY created_at').all();
  return (rows as Row[]).map(fromRow);
}

/** By id or a unique prefix of it (`ck-3f2a`). */
export function requireCheckpoint(db: Db, ref: string): CheckpointRow {
  const rows = (db.prepare('SELECT * FROM checkpoints WHERE id LIKE ? ORDER BY created_at DESC LIMIT 2').all(`${ref.replace(/[%_]/g, '')}%`) as Row[]).map(fromRow);
  if (rows.length === 1) return rows[0]!;
  if (!rows.length) throw new VmwuError('NO_CHECKPOINT', `no checkpoint ${ref}`, 'see `vmwu checkpoints`');
  throw new VmwuError('AMBIGUOUS', `${ref} names more than one checkpoint`, 'give more of the id');
}
