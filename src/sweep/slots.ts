import { bootId } from '../store/process-identity.js';
import type { Db } from '../store/db.js';

/**
 * Host-wide instance slots, shared by every vmwu process of this machine using
 * this store: each running instance holds a lease row. Leases are taken and
 * released only inside the callers' IMMEDIATE transactions, so two sweeps from two
 * shells count the same rows and never both take the last slot. Only leases of
 * this machine (its boot id) count against its slots.
 */

export interface SlotRequest {
  experiment: string;
  owner: string;
  /** At most this many instances for this experiment in this process. */
  perExperiment: number;
  /** At most this many instances on the host, all experiments together. */
  hostSlots: number;
  memoryMiB: number;
  cpus: number;
}

/** Leases of processes that died (kill -9, power loss), or of another machine that no longer uses the store, free their slots. */
export function reclaimDeadLeases(db: Db, isAlive: (id: string) => boolean): number {
  let n = 0;
  for (const { owner } of db.prepare('SELECT DISTINCT owner FROM slot_leases').all() as { owner: string }[]) {
    if (!isAlive(owner)) n += db.prepare('DELETE FROM slot_leases WHERE owner = ?').run(owner).changes;
  }
  return n;
}

/** Takes a slot for one job if both limits allow; call inside a transaction. */
export function takeLease(db: Db, r: SlotRequest & { job: number }): boolean {
  // Owners written before hosts were recorded (no '@') were always this machine's.
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM slot_leases WHERE owner NOT LIKE '%@%' OR owner LIKE ?`).get(`%/${bootId()}`) as { n: number }).n;
  const mine = (db.prepare('SELECT COUNT(*) AS n FROM slot_leases WHERE experiment = ? AND owner = ?').get(r.experiment, r.owner) as { n: number }).n;
  if (mine >= r.perExperiment || total >= r.hostSlots) return false;
  db.prepare('INSERT INTO slot_leases (owner, experiment, job, memory_mib, cpus, acquired_at) VALUES (?, ?, ?, ?, ?, ?)')
    .run(r.owner, r.experiment, r.job, r.memoryMiB, r.cpus, new Date().toISOString());
  return true;
}

export function releaseLease(db: Db, experiment: string, job: number): void {
  db.prepare('DELETE FROM slot_leases WHERE experiment = ? AND job = ?').run(experiment, job);
}

export interface LeaseInfo {
  owner: string;
  experiment: string;
  job: number;
  memoryMiB: number;
  cpus: number;
  acquiredAt: string;
}

export function listLeases(db: Db): LeaseInfo[] {
  return (db.prepare('SELECT owner, experiment, job, memory_mib AS memoryMiB, cpus, acquired_at AS acquiredAt FROM slot_leases ORDER BY id').all() as LeaseInfo[]);
}
