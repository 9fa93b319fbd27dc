import { runExperiment } from '../../sweep/runner.js';
import type { Registration } from '../registration.js';
import { localExecutor } from './driver.js';

/** The local executor's registration: the sweep runner with attempts on this host, whose jobs can be suspended from here. */

export const local = {
  kind: 'local',
  run: (store, name, _options, o) => runExperiment(store, name, { ...o, executor: localExecutor }),
} satisfies Registration;
