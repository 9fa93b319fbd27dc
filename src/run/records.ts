import type { Db } from '../store/db.js';
import type { Usage } from '../vm/usage.js';
import type { JobTerms } from './checkpoint/trust.js';
import type { Phases } from './phase-clock.js';
import type { StartRecord } from './fast-start/clone.js';

/** The store's records of runs (the `runs` table): each written when it starts, marked running, and finished in one statement, then listed and found by id. */

/** `stopped`: at a checkpoint, from which `vmwu restore` continues it. */
export type RunStatus = 'preparing' | 'running' | 'stopped' | 'succeeded' | 'failed' | 'timeout' | 'error';

export interface RunRecord {
  id: string;
  createdAt: string;
  finishedAt: string | null;
  base: string;
  status: RunStatus;
  exitCode: number | null;
  accel: string | null;
  argv: string[];
  params: Record<string, string>;
  /** `terms`: what the job runs, which a checkpoint must agree with to be restored as it (absent in runs of older vmwu and of firmware-booted images). */
  resources: { memoryMiB: number; cpus: number; timeoutMs: number; terms?: JobTerms };
  outDir: string;
  runDir: string;
  /** The instance's node-local directory (disks, sockets); null for runs of stores from before scratch existed. */
  scratchDir: string | null;
  owner: string;
  qemuPid: number | null;
  phases: Phases | null;
  totalMs: number | null;
  error: string | null;
  usage: Usage | null;
  start: StartRecord | null;
  /** Answered by the result cache (no VM ran): whose result it took. */
  cachedFrom: string | null;
  /** The socket its vmwu takes requests on (src/run/run-control.ts), on the host running it. */
  control: string | null;
}

interface Row {
  id: string; created_at: string; finished_at: string | null; base: string; status: RunStatus;
  exit_code: number | null; accel: string | null; argv: string; params: string; resources: string;
  out_dir: string; run_dir: string; scratch_dir: string | null; owner: string; qemu_pid: number | null; phases: string | null;
  total_ms: number | null; error: string | null; usage: string | null; start: string | null; control: string | null;
  cached_from: string | null;
}

function fromRow(r: Row): RunRecord {
  return {
    id: r.id, createdAt: r.created_at, finishedAt: r.finished_at, base: r.base, status: r.status,
    exitCode: r.exit_code, accel: r.accel, argv: JSON.parse(r.argv), params: JSON.parse(r.params),
    resources: JSON.parse(r.resources), outDir: r.out_dir, runDir: r.run_dir, scratchDir: r.scratch_dir, owner: r.owner,
    qemuPid: r.qemu_pid, phases: r.phases ? JSON.parse(r.phases) : null, totalMs: r.total_ms, error: r.error,
    usage: r.usage ? (JSON.parse(r.usage) as Usage) : null,
    start: r.start ? (JSON.parse(r.start) as StartRecord) : null, cachedFrom: r.cached_from ?? null, control: r.control ?? null,
  };
}

export function insertRun(db: Db, r: Pick<RunRecord, 'id' | 'base' | 'argv' | 'params' | 'resources' | 'outDir' | 'runDir' | 'scratchDir' | 'owner'>): void {
  db.prepare(`INSERT INTO runs (id, created_at, base, status, argv, params, resources, out_dir, run_dir, scratch_dir, owner)
    VALUES (?, ?, ?, 'preparing', ?, ?, ?, ?, ?, ?, ?)`)
    .run(r.id, new Date().toISOString(), r.base, JSON.stringify(r.argv), JSON.stringify(r.params),
      JSON.stringify(r.resources), r.outDir, r.runDir, r.scratchDir, r.owner);
}

/** Running, with its QEMU's pid and, when its vmwu takes requests (src/run/run-control.ts), the socket it listens on. */
export function markRunning(db: Db, id: string, accel: string, qemuPid: number, control: string | null = null): void {
  db.prepare(`UPDATE runs SET status = 'running', accel = ?, qemu_pid = ?, control = ? WHERE id = ?`).run(accel, qemuPid, control, id);
}

/** The final state, in one statement: a record is either in flight or complete, never half-written. */
export function finishRun(db: Db, id: string, f: { status: RunStatus; exitCode: number | null; phases: Phases | null; totalMs: number | null; error: string | null; usage?: Usage | null; start?: StartRecord; cachedFrom?: string }): void {
  db.prepare(`UPDATE runs SET status = ?, exit_code = ?, phases = ?, total_ms = ?, error = ?, usage = ?, start = ?, cached_from = ?, control = NULL, finished_at = ? WHERE id = ?`)
    .run(f.status, f.exitCode, f.phases ? JSON.stringify(f.phases) : null, f.totalMs, f.error, f.usage ? JSON.stringify(f.usage) : null,
      f.start ? JSON.stringify(f.start) : null, f.cachedFrom ?? null, new Date().toISOString(), id);
}

/** A stopped (or orphaned) run taken up again from a checkpoint, by this process, into `outDir`. */
export function reopenRun(db: Db, id: string, f: { owner: string; outDir: string; scratchDir: string }): void {
  db.prepare(`UPDATE runs SET status = 'preparing', finished_at = NULL, exit_code = NULL, error = NULL, qemu_pid = NULL, control = NULL,
    owner = ?, out_dir = ?, scratch_dir = ? WHERE id = ?`).run(f.owner, f.outDir, f.scratchDir, id);
}

export function getRun(db: Db, id: string): RunRecord | undefined {
  const r = db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Row | undefined;
  return r && fromRow(r);
}

/** Accepts a unique prefix, as git does, since ids are long to type. */
export function findRunByPrefix(db: Db, prefix: string): RunRecord[] {
  return (db.prepare('SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at DESC LIMIT 5').all(`${prefix.replace(/[%_]/g, '')}%`) as Row[]).map(fromRow);
}

export function listRuns(db: Db, limit = 50): RunRecord[] {
  return (db.prepare('SELECT * FROM runs ORDER BY created_at DESC LIMIT ?').all(limit) as Row[]).map(fromRow);
}

export function activeRuns(db: Db): RunRecord[] {
  return (db.prepare(`SELECT * FROM runs WHERE status IN ('preparing', 'running')`).all() as Row[]).map(fromRow);
}
