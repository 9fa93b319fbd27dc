import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jobKey } from '../run/job-key.js';
import { pathDigest, type KeyContext } from '../run/result-cache.js';
import type { Experiment, JobRecord } from './records/types.js';
import { compileJob } from './script.js';

/** A sweep job's key for the result cache (src/run/result-cache.ts). */

/** The key of one job of an experiment, with its staged inputs read and hashed. */
export async function sweepJobKey(e: Experiment, job: JobRecord, ctx: KeyContext): Promise<string> {
  const program = compileJob(job.commands, `job ${job.index}`);
  const inputs: { path: string; digest: string }[] = [];
  for (const s of program.stageIn) {
    const abs = join(e.planRoot, s.from);
    // A missing input fails the job when it runs; here it only makes the key differ.
    inputs.push({ path: s.from, digest: existsSync(abs) ? await pathDigest(ctx, abs) : 'missing' });
  }
  const r = e.resources;
  const stdin = r.stdin && 'host' in r.stdin ? (existsSync(r.stdin.host) ? await pathDigest(ctx, r.stdin.host) : 'missing') : r.stdin ? `work:${r.stdin.work}` : null;
  return jobKey({
    target: { base: e.target.base, layers: e.target.layers, process: e.target.process, paramDefaults: e.target.paramDefaults },
    commands: job.commands, params: job.params, inputs, datasets: r.datasets ?? [], stdin,
    machine: { cpus: r.cpus, memoryMiB: r.memoryMiB, cpuModel: ctx.cpuModel, cpuNeeds: r.cpuNeeds ?? [], scratchBytes: r.scratchBytes ?? null, rootBytes: r.rootBytes ?? null },
  });
}
