import { selfIdentity } from '../../store/process-identity.js';
import type { Registration } from '../registration.js';

/**
 * Slurm's registration: this process submits the experiment's jobs as sbatch arrays and settles what the nodes report.
 * Its modules are loaded when a Slurm experiment runs or is cancelled: every sweep's CLI start would pay for them.
 */

export const slurm = {
  kind: 'slurm',
  // The submitter reads its stored options itself (a re-attaching `vmwu resume` has nothing else).
  run: async (store, name, _options, o) => {
    const { runSlurmExperiment } = await import('./submitter.js');
    return runSlurmExperiment(store, name, { signal: o.signal, onEvent: o.onEvent, restartCancelled: o.restartCancelled, pollMs: o.pollMs });
  },
  async cancelRest(store, name) {
    const { cancelArrays, cancelOpenTasks } = await import('./cancel.js');
    const scancelled = await cancelArrays(store, name);
    cancelOpenTasks(store, name, selfIdentity());
    return scancelled;
  },
  suspendRefusal: 'cancel it and resume it later, or let --slurm-time / --checkpoint-every carry jobs across allocations',
} satisfies Registration;
