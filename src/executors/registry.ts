import type { ExecutorChoice } from '../request/executor.js';
import { local } from './local/register.js';
import type { Registration } from './registration.js';
import { slurm } from './slurm/register.js';
import { ssh } from './ssh/register.js';

/** The one place that maps an experiment's stored executor kind to its registration: every executor is listed here. */

const registry: { readonly [K in ExecutorChoice['kind']]: Registration & { kind: K } } = { local, ssh, slurm };

export function registrationFor(kind: ExecutorChoice['kind']): Registration {
  return registry[kind];
}
