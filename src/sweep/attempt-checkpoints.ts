import { latestJobCheckpoint, type CheckpointRow } from '../run/checkpoint/records.js';
import type { InstanceControl } from '../run/run-control.js';
import type { Store } from '../store/store.js';
import { attemptStatus } from './records/reads.js';

/** An attempt's checkpoints: taken every `--checkpoint-every`, and the one a new attempt of the job goes on from. */

/**
 * A checkpoint of the running job every `everyMs` (`--checkpoint-every`); a
 * failure to take one is a warning, never the job's end.
 */
export function periodicCheckpoints(everyMs: number | undefined, onWarning: (m: string) => void = () => undefined): { onControl(control: InstanceControl): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  return {
    onControl: (control) => {
      if (!everyMs) return;
      timer = setInterval(() => {
        control.checkpoint({ stop: false }).catch((e: unknown) => onWarning(`checkpoint: ${(e as Error).message}`));
      }, everyMs);
      timer.unref();
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * The checkpoint a new attempt of a job goes on from: the job's latest, if its
 * run never finished (stopped by a suspend, lost with a crash or a host). A job
 * that finished and failed starts again from zero.
 */
export function resumableCheckpoint(store: Store, experiment: string, job: number): CheckpointRow | undefined {
  const ck = latestJobCheckpoint(store.db, experiment, job);
  if (!ck || ck.attempt === null) return undefined;
  const status = attemptStatus(store.db, experiment, job, ck.attempt);
  return status === 'interrupted' || status === 'error' || status === 'running' ? ck : undefined;
}
