import { ENDED_STATES, type QueuedTask } from './accounting.js';
import type { OpenTask } from './submissions.js';

/** The tasks a Slurm submitter has out and not settled, kept in memory so that a poll never reads them all from the store, with when each left the queue. */

/** A task's name in squeue and sacct: "ARRAYJOB_TASK". */
export const taskKey = (t: Pick<OpenTask, 'slurmJobId' | 'taskId'>): string => `${t.slurmJobId}_${t.taskId}`;

export class OpenTasks {
  private readonly byKey = new Map<string, OpenTask>();
  /** "job/attempt" → task key. */
  private readonly keyOf = new Map<string, string>();
  /** When a task was first seen gone from the queue, by task key. */
  private readonly goneSince = new Map<string, number>();

  /** Starts from the tasks the store has out (read once). */
  constructor(tasks: Iterable<OpenTask> = []) {
    for (const t of tasks) this.track(t);
  }

  get size(): number {
    return this.byKey.size;
  }

  track(t: OpenTask): void {
    this.byKey.set(taskKey(t), t);
    this.keyOf.set(`${t.job}/${t.attempt}`, taskKey(t));
  }

  /** Forgets the task of a settled attempt; returns its key when it was out. */
  untrack(job: number, attempt: number): string | undefined {
    const k = this.keyOf.get(`${job}/${attempt}`);
    this.keyOf.delete(`${job}/${attempt}`);
    if (k) {
      this.byKey.delete(k);
      this.goneSince.delete(k);
    }
    return k;
  }

  /** The Slurm arrays of the tasks out, each once: what one squeue call asks about. */
  arrays(): string[] {
    return [...new Set([...this.byKey.values()].map((t) => t.slurmJobId))];
  }

  /** squeue's answer at `nowMs`: a task still queued is not gone; one missing or ended is gone from the first time it was seen so. */
  observeQueue(queued: Map<string, QueuedTask>, nowMs: number): void {
    for (const k of this.byKey.keys()) {
      const s = queued.get(k);
      if (s && !ENDED_STATES.has(s.state)) this.goneSince.delete(k);
      else if (!this.goneSince.has(k)) this.goneSince.set(k, nowMs);
    }
  }

  /** Tasks gone from the queue for at least `graceMs`: long enough for their reports to have become visible. */
  goneFor(graceMs: number, nowMs: number): OpenTask[] {
    return [...this.goneSince].filter(([, since]) => nowMs - since >= graceMs).map(([k]) => this.byKey.get(k)).filter((x): x is OpenTask => Boolean(x));
  }
}
