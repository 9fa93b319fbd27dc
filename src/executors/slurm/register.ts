import { selfIdentity } from '../../store/process-identity.js';
import type { Registration } from '../registration.js';
import { cancelArrays, cancelOpenTasks } from './cancel.js';
import { runSlurmExperiment } from './submitter.js';

/** Slurm's registration: this process submits the experiment's jobs as sbatch arrays and settles what the nodes report. */

export const slurm = {
  kind: 'slurm',
  // The submitter reads its stored options itself (a re-attaching `vmwu resume` has nothing else).
  run: (store, name, _options, o) => runSlurmExperiment(store, name, { signal: o.signal, onEvent: o.onEvent, restartCancelled: o.restartCancelled, pollMs: o.pollMs }),
  async cancelRest(store, name) {
    const scancelled = await cancelArrays(store, name);
    cancelOpenTasks(store, name, selfIdentity());
    return scancelled;
  },
  suspendRefusal: 'cancel it and resume it later, or let --slurm-time / --checkpoint-every carry jobs across allocations',
} satisfies Registration;
