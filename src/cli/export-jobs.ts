import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { exportJobsText, type ExportFormat } from '../executors/export.js';
import { packageRoot } from '../paths.js';
import { requireBase } from '../store/bases.js';
import { listJobs, requireExperiment } from '../sweep/records/reads.js';
import { taskFileFor, writeFileAtomic } from '../sweep/batch/task-files.js';
import { withStore } from './context.js';

/**
 * Handing an experiment's unfinished jobs to HTCondor or PBS (`vmwu export-jobs`): a task file per
 * job, and the submit description or array script that runs them.
 */

/** `vmwu export-jobs EXP --format htcondor|pbs [-o FILE]`: the experiment's unfinished jobs for another batch system. */
export async function exportJobs(name: string, o: { format: ExportFormat; output?: string }): Promise<void> {
  await withStore(async (store) => {
    const e = requireExperiment(store.db, name);
    const jobs = listJobs(store.db, name).filter((j) => j.state !== 'succeeded' && j.state !== 'failed');
    if (!jobs.length) throw new VmwuError('NOTHING_TO_EXPORT', `experiment ${name} has no unfinished jobs`, `see \`vmwu results ${name}\``);
    const logDir = join(e.dir, o.format);
    const tasksDir = join(logDir, 'tasks');
    mkdirSync(tasksDir, { recursive: true });
    // The nodes read everything from these files; they never open the store's database.
    const base = requireBase(store.db, e.target.base);
    for (const j of jobs) writeFileAtomic(join(tasksDir, `${j.index}.json`), JSON.stringify(taskFileFor(store, e, base, j, j.attempts + 1)));
    const text = exportJobsText(o.format, {
      experiment: name, jobs: jobs.map((j) => ({ index: j.index, params: j.params })), resources: e.resources,
      tasksDir, node: process.execPath, vmwuJs: join(packageRoot, 'bin', 'vmwu.js'), logDir,
    });
    if (o.output) {
      writeFileSync(o.output, text);
      process.stderr.write(`vmwu: ${jobs.length} job${jobs.length === 1 ? '' : 's'} of ${name} written to ${resolve(o.output)} (${o.format})\n`);
    } else {
      process.stdout.write(text);
    }
  });
}
