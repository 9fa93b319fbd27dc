import { VmwuError } from '../errors.js';
import type { Db } from '../store/db.js';
import type { CheckpointRecord } from './checkpoint.js';

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
}

interface Row {
  id: string; run_id: string; created_at: string; dir: string; bytes: number; qemu: string; stopped: number;
  experiment: string | null; job: number | null; attempt: number | null;
}

const fromRow = (r: Row): CheckpointRow => ({
  id: r.id, runId: r.run_id, createdAt: r.created_at, dir: r.dir, bytes: r.bytes, qemu: r.qemu, stopped: r.stopped === 1,
  experiment: r.experiment, job: r.job, attempt: r.attempt,
});

/** Records a checkpoint once its directory is whole (src/run/checkpoint.ts renames it into place first). */
export function insertCheckpoint(db: Db, rec: Pick<CheckpointRecord, 'id' | 'runId' | 'createdAt' | 'bytes' | 'qemu' | 'stopped'>, dir: string,
  of: { experiment: string; job: number; attempt: number } | null = null): void {
  // A report applied twice records its checkpoint once.
  db.prepare(`INSERT OR IGNORE INTO checkpoints (id, run_id, created_at, dir, bytes, qemu, stopped, experiment, job, attempt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    .run(rec.id, rec.runId, rec.createdAt, dir, rec.bytes, rec.qemu, rec.stopped ? 1 : 0, of?.experiment ?? null, of?.job ?? null, of?.attempt ?? null);
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
