import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AttemptResult } from './driver.js';
import type { AttemptOutcome } from './records/lifecycle.js';
import type { ExperimentState, FinishedAttempt, JobState } from './states.js';

/** What a sweep says as it goes (runner, batch ingest), and how an attempt's result becomes its recorded outcome. */

export type SweepEvent =
  | { type: 'start'; experiment: string; total: number; done: number; slots: number; hostSlots: number; explain: string; recovered: number }
  | { type: 'job-start'; job: number; attempt: number }
  | { type: 'job-end'; job: number; attempt: number; status: FinishedAttempt; exitCode: number | null; error: string | null; next: JobState; retryInMs: number | null; totalMs: number | null; runId: string | null }
  | { type: 'warning'; message: string }
  /** Something an executor wants the user to know, e.g. a Slurm submission. */
  | { type: 'info'; message: string }
  | { type: 'end'; state: ExperimentState };

/** The last line the job wrote to stderr: with onerror fail it is the script's "command N failed" note. */
function failureReason(outDir: string, exitCode: number | null): string {
  let tail = '';
  try {
    const text = readFileSync(join(outDir, 'stderr'), 'utf8');
    tail = text.trimEnd().split('\n').pop()?.slice(0, 200) ?? '';
  } catch {
    // no stderr kept
  }
  return `exit status ${exitCode}${tail ? `: ${tail}` : ''}`;
}

export function outcomeOf(r: AttemptResult, outDir: string): AttemptOutcome {
  // A failure with no exit code is vmwu's word (a VM of a multi-VM job failed), not the job script's.
  const error = r.status === 'failed' && (r.exitCode !== null || !r.error) ? failureReason(outDir, r.exitCode) : r.error ? `${r.error.code}: ${r.error.message}` : null;
  // Stopped at a checkpoint: the job goes back to pending, uncounted.
  return {
    status: r.status === 'stopped' ? 'interrupted' : r.status, runId: r.runId, exitCode: r.exitCode, error, phases: r.phases, totalMs: r.totalMs, usage: r.usage ?? null, start: r.start ?? null,
    ...(r.vms ? { vms: r.vms } : {}),
  };
}
