import type { SshOptions } from '../../request/executor.js';
import { runExperiment } from '../../sweep/runner.js';
import type { Registration } from '../registration.js';

/**
 * The SSH pool's registration: the sweep runner with attempts placed on the pool's hosts.
 * The driver (and ssh2) is loaded when a pool experiment runs: every sweep's CLI start would pay for it.
 */

export const ssh = {
  kind: 'ssh',
  run: async (store, name, options, o) => {
    const { sshExecutor } = await import('./driver.js');
    return runExperiment(store, name, { ...o, executor: sshExecutor({ ...(options as SshOptions), onEvent: o.onEvent }) });
  },
  suspendRefusal: 'cancel it and resume it later',
} satisfies Registration;
