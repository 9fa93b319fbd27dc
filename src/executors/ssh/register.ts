import type { SshOptions } from '../../request/executor.js';
import { runExperiment } from '../../sweep/runner.js';
import type { Registration } from '../registration.js';
import { sshExecutor } from './driver.js';

/** The SSH pool's registration: the sweep runner with attempts placed on the pool's hosts. */

export const ssh = {
  kind: 'ssh',
  run: (store, name, options, o) => runExperiment(store, name, { ...o, executor: sshExecutor({ ...(options as SshOptions), onEvent: o.onEvent }) }),
  suspendRefusal: 'cancel it and resume it later',
} satisfies Registration;
