import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurableSync } from '../store/durable.js';
import type { AttemptContext } from './driver.js';
import { type Experiment, type JobRecord } from './records/types.js';
import { compileJob, jobScript, SCRIPT_NAME, scriptArgv } from './script.js';
import { stageInEntries } from './staging.js';

/** What a job's guest is given, whichever executor runs it: the job script and staged inputs, its variables, and the experiment's extra resources. */

/** What one attempt boots with: the job script as an input, the command that runs it, and the job's variables. */
export interface JobLaunch {
  argv: string[];
  params: Record<string, string>;
  inputs: { path: string; name: string }[];
}

/**
 * Writes the attempt's job script beside its outputs (the exact script a job ran
 * is the first thing to look at when it fails) and lists what goes into the guest.
 */
export function prepareLaunch(ctx: Pick<AttemptContext, 'experiment' | 'job' | 'attempt' | 'outDir'>): JobLaunch {
  const { experiment: e, job } = ctx;
  const prog = compileJob(job.commands, `job ${job.index}`);
  const inputs = stageInEntries(prog.stageIn, e.planRoot);
  const scriptPath = `${ctx.outDir}.sh`;
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileDurableSync(scriptPath, jobScript(prog, { experiment: e.name, job: job.index, attempt: ctx.attempt }));
  inputs.push({ path: scriptPath, name: SCRIPT_NAME });
  return { argv: scriptArgv(Boolean(e.target.process)), params: jobParams(e, job), inputs };
}

/**
 * The variables a job's guest gets: the unit's parameter defaults, overridden by
 * the plan's values for this job, plus jobindex (as in Nimrod, so `$jobindex` works
 * in a shexec that the plan did not substitute).
 */
export function jobParams(e: Experiment, job: Pick<JobRecord, 'index' | 'params'>): Record<string, string> {
  return { ...e.target.paramDefaults, ...job.params, jobindex: String(job.index) };
}

