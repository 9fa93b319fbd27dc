import type { Db } from '../../store/db.js';
import { ENDED_STATES, type TaskAccounting } from './accounting.js';

/** Finished attempts whose resource use sacct has yet to report, collected in one sacct call at most every `everyMs`. */

/** How long an attempt's accounting is waited for once its task finished. */
const WAIT_MS = 120_000;

export interface UsageOptions {
  everyMs: number;
  /** `sacct` for these arrays' tasks (src/executors/slurm/commands.ts); undefined when it failed. */
  sacct(arrayIds: string[]): Promise<Map<string, TaskAccounting> | undefined>;
  record(job: number, attempt: number, usage: { cpuMs: number; maxRssKiB: number }): void;
  /** The clock (a fake one in unit tests). */
  now?: () => number;
}

export class AwaitedUsage {
  /** Task key → its attempt and until when it is waited for. */
  private readonly awaiting = new Map<string, { job: number; attempt: number; until: number }>();
  private last = 0;
  private readonly now: () => number;

  constructor(private readonly o: UsageOptions) {
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.awaiting.size;
  }

  /** The attempt of task `key` finished: its accounting is waited for, a while. */
  expect(key: string, job: number, attempt: number): void {
    this.awaiting.set(key, { job, attempt, until: this.now() + WAIT_MS });
  }

  /**
   * Asks sacct about the awaited tasks (once `everyMs` has passed since the last
   * time, or when forced) and records the use of those that ended with it known;
   * gives up on those waited for too long.
   */
  async collect(force = false): Promise<void> {
    if (!this.awaiting.size || (!force && this.now() - this.last < this.o.everyMs)) return;
    this.last = this.now();
    const acct = await this.o.sacct([...new Set([...this.awaiting.keys()].map((k) => k.split('_')[0]!))]);
    if (!acct) return;
    for (const [k, w] of this.awaiting) {
      const a = acct.get(k);
      if (a && a.cpuMs !== undefined && a.maxRssKiB !== undefined && ENDED_STATES.has(a.state)) {
        this.o.record(w.job, w.attempt, { cpuMs: a.cpuMs, maxRssKiB: a.maxRssKiB });
        this.awaiting.delete(k);
      } else if (this.now() > w.until) {
        this.awaiting.delete(k);
      }
    }
  }
}

/** Attempts of an earlier submitter whose accounting never came, by task key. */
export function unaccountedAttempts(db: Db, experiment: string): { job: number; attempt: number; batch_id: string }[] {
  return db.prepare(`SELECT job, attempt, batch_id FROM attempts WHERE experiment = ? AND batch_id IS NOT NULL AND status != 'running'
    AND (usage_source IS NULL OR usage_source != 'sacct')`).all(experiment) as { job: number; attempt: number; batch_id: string }[];
}
