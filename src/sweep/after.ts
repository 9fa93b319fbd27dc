import { VmwuError } from '../errors.js';
import type { ExperimentState } from './states.js';

/**
 * `--after EXP[:succeeded|:finished]`: a sweep or a run that starts only once
 * another experiment has ended as asked. `succeeded` (the default) needs every job
 * of it to have succeeded; `finished` only that it ended, however. Pure.
 */

export type AfterCondition = 'succeeded' | 'finished';

export interface After {
  experiment: string;
  condition: AfterCondition;
}

export function parseAfter(s: string, where = '--after'): After {
  const i = s.lastIndexOf(':');
  const [experiment, condition] = i < 0 ? [s, 'succeeded'] : [s.slice(0, i), s.slice(i + 1)];
  if (!experiment) throw new VmwuError('BAD_VALUE', `${where} ${s}: no experiment named`, 'give --after EXPERIMENT[:succeeded|:finished]');
  if (condition !== 'succeeded' && condition !== 'finished') {
    throw new VmwuError('BAD_VALUE', `${where} ${s}: "${condition}" is not a condition`, 'the condition is succeeded (every job succeeded, the default) or finished (it ended, however)');
  }
  return { experiment, condition };
}

/**
 * What the one waiting does, given the state of the one it waits for: wait on,
 * go, or be cancelled for the reason given. `stopped` (interrupted, or its runner
 * died) is not an end: it may be resumed.
 */
export function afterVerdict(a: After, state: ExperimentState | undefined): 'wait' | 'go' | { cancel: string } {
  if (state === undefined) return { cancel: `the experiment it waited for, ${a.experiment}, no longer exists` };
  if (state === 'succeeded') return 'go';
  if (state === 'failed' || state === 'cancelled') {
    return a.condition === 'finished' ? 'go' : { cancel: `the experiment it waited for, ${a.experiment}, ${state === 'failed' ? 'failed' : 'was cancelled'}` };
  }
  return 'wait';
}
