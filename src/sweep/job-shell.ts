import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import type { RunRequest } from '../run/job-request.js';
import type { Store } from '../store/store.js';
import { resolveDatasetRefs } from '../data/records.js';
import { parseDuration, parseSize } from '../quantities.js';
import { wholeNumber } from '../request/executor.js';
import { SESSION_MS, type RequestFlags } from '../request/resolve.js';
import { jobExtras } from '../request/resolve.js';
import { prepareLaunch } from './job-launch.js';
import { getJob, requireExperiment } from './records/reads.js';

/** What a failed job had (its unit, inputs, job script, parameters, datasets and resources), rebuilt for a shell in its place (`vmwu shell --job`). */

/** What `vmwu shell --job` takes from its flags over the job's own request. */
export type SessionFlags = Pick<RequestFlags, 'memory' | 'cpus' | 'timeout' | 'network' | 'data'>;

/**
 * `vmwu shell --job EXP/JOB`: what a failed job had, for a shell in its place:
 * its unit (or base), its staged inputs and job script, its parameters
 * (exported), its datasets and resources. The caller adds the terminal and the
 * shell command. Nothing of the experiment changes.
 */
export function jobShellRequest(store: Store, ref: string, flags: SessionFlags = {}): { request: Omit<RunRequest, 'argv' | 'tty'>; script: string; label: string; tmp: string } {
  const m = /^([^/]+)\/(\d+)$/.exec(ref);
  if (!m) throw new VmwuError('BAD_VALUE', `--job ${ref}: expected EXPERIMENT/JOB, e.g. --job mysweep/3`);
  const e = requireExperiment(store.db, m[1]!);
  const job = getJob(store.db, e.name, Number(m[2]));
  if (!job) throw new VmwuError('NO_JOB', `experiment ${e.name} has no job ${m[2]}`, 'see `vmwu results EXP` for its jobs');
  // The job script goes beside nothing of the experiment's: a directory of the shell's own, removed by the caller.
  const tmp = mkdtempSync(join(tmpdir(), 'vmwu-shell-'));
  const outDir = join(tmp, 'attempt');
  // A person runs it, from the work dir.
  const launch = prepareLaunch({ experiment: e, job, attempt: 0, outDir }, 'work');
  return {
    label: `${e.target.label}, job ${job.index} of ${e.name}`, tmp,
    script: launch.argv.join(' '),
    request: {
      base: e.target.base, layers: e.target.layers.length ? e.target.layers : undefined, params: launch.params, inputs: launch.inputs,
      process: e.target.process,
      maxOutputBytes: e.resources.maxOutputBytes, ...jobExtras(e.resources),
      // The job's resources unless the flags say otherwise; a session, not a job: hours unless told otherwise.
      memoryMiB: flags.memory ? Math.round(parseSize(flags.memory, '--memory') / 1024 ** 2) : e.resources.memoryMiB,
      cpus: wholeNumber(flags.cpus, '--cpus', 1) ?? e.resources.cpus,
      timeoutMs: flags.timeout ? parseDuration(flags.timeout, '--timeout') : SESSION_MS,
      network: Boolean(flags.network),
      datasets: [...(jobExtras(e.resources).datasets ?? []), ...resolveDatasetRefs(store.db, flags.data ?? [])],
    },
  };
}
