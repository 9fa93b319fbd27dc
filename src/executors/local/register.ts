import { runExperiment } from '../../sweep/runner.js';
import type { Registration } from '../registration.js';
import { localExecutor } from './driver.js';

/** The local executor's registration: the sweep runner with attempts on this host, whose jobs can be suspended from here. */

export const local = {
  kind: 'local',
  // Its jobs run on this host, whose CPU model the result cache's keys name.
  run: (store, name, _options, o) => runExperiment(store, name, { ...o, executor: localExecutor, resultCache: true }),
} satisfies Registration;
