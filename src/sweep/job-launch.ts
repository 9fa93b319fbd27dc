import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurableSync } from '../store/durable.js';
import type { AttemptContext } from './driver.js';
import { type Experiment, type JobRecord } from './records/types.js';
import { compileJob, jobScript, SCRIPT_NAME, scriptArgv, type ScriptPlace } from './script.js';
import { stageInEntries } from './staging.js';

/** What a job's guest is given, whichever executor runs it: the job script and staged inputs, its variables, and the experiment's extra resources. */

/** What one attempt boots with: the job script and the command that runs it, the staged inputs, and the job's variables. */
export interface JobLaunch {
  argv: string[];
  params: Record<string, string>;
  inputs: { path: string; name: string }[];
  /** The job script, beside the command (src/sweep/script.ts, ScriptPlace); absent when it is one of the inputs. */
  script?: string;
}

/**
 * Writes the attempt's job script beside its outputs (the exact script a job ran
 * is the first thing to look at when it fails) and lists what goes into the guest.
 * `place`: where the guest finds the script; by default beside its command, or in
 * the work dir where an image's process runs it (scriptArgv).
 */
export function prepareLaunch(ctx: Pick<AttemptContext, 'experiment' | 'job' | 'attempt' | 'outDir'>, place: ScriptPlace = ctx.experiment.target.process ? 'work' : 'beside'): JobLaunch {
  const { experiment: e, job } = ctx;
  const prog = compileJob(job.commands, `job ${job.index}`);
  const inputs = stageInEntries(prog.stageIn, e.planRoot);
  const script = jobScript(prog, { experiment: e.name, job: job.index, attempt: ctx.attempt }, place);
  const scriptPath = `${ctx.outDir}.sh`;
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileDurableSync(scriptPath, script);
  const argv = scriptArgv(place);
  if (place === 'work') return { argv, params: jobParams(e, job), inputs: [...inputs, { path: scriptPath, name: SCRIPT_NAME }] };
  return { argv, params: jobParams(e, job), inputs, script };
}

/**
 * The variables a job's guest gets: the unit's parameter defaults, overridden by
 * the plan's values for this job, plus jobindex (as in Nimrod, so `$jobindex` works
 * in a shexec that the plan did not substitute).
 */
export function jobParams(e: Experiment, job: Pick<JobRecord, 'index' | 'params'>): Record<string, string> {
  return { ...e.target.paramDefaults, ...job.params, jobindex: String(job.index) };
}

