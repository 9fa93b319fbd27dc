import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import picomatch from 'picomatch';
import { VmwuError } from '../errors.js';
import { linkOrCopySync } from '../store/link-or-copy.js';
import type { Store } from '../store/store.js';
import { experimentResults } from './experiment.js';
import { requireExperiment } from './records/reads.js';
import { isTerminalExperiment } from './states.js';

/**
 * `vmwu run … --inputs-from EXP:'GLOB'`: a gather job's inputs are the files of
 * every succeeded job of an experiment whose path in its work dir matches GLOB,
 * each under its job's name (`job-7/strip.ppm`), so no two can clash. Links the
 * job left are not followed; only regular files are taken.
 */

export interface InputsFrom {
  experiment: string;
  glob: string;
}

/** `EXP:GLOB`. Pure. */
export function parseInputsFrom(s: string): InputsFrom {
  const i = s.indexOf(':');
  if (i <= 0 || i === s.length - 1) throw new VmwuError('BAD_VALUE', `--inputs-from ${s}: expected EXPERIMENT:GLOB`, "for example --inputs-from mandelbrot:'*.ppm'");
  return { experiment: s.slice(0, i), glob: s.slice(i + 1) };
}

/** Stages the matching files under `into/job-N/`; returns one input per job that gave any, as runJob takes them. */
export function stageInputsFrom(store: Store, f: InputsFrom, into: string): { path: string; name: string }[] {
  const e = requireExperiment(store.db, f.experiment);
  if (!isTerminalExperiment(e.state)) {
    throw new VmwuError('NOT_FINISHED', `--inputs-from ${f.experiment}: the experiment is ${e.state}, not finished`, `wait for it with --after ${f.experiment}`);
  }
  const match = picomatch(f.glob);
  const inputs: { path: string; name: string }[] = [];
  let succeeded = 0;
  for (const j of experimentResults(store, f.experiment)) {
    if (j.status !== 'succeeded' || !j.outDir) continue;
    succeeded++;
    const name = `job-${j.job}`;
    const from = join(j.outDir, 'work');
    let any = false;
    for (const rel of regularFiles(from)) {
      if (!match(rel)) continue;
      const to = join(into, name, rel);
      mkdirSync(dirname(to), { recursive: true });
      linkOrCopySync(join(from, rel), to);
      any = true;
    }
    if (any) inputs.push({ path: join(into, name), name });
  }
  if (!inputs.length) {
    throw new VmwuError('NO_INPUTS', `--inputs-from ${f.experiment}:${f.glob}: no file of its ${succeeded} succeeded job(s) matches`, `see what they wrote with \`vmwu results ${f.experiment}\``);
  }
  return inputs;
}

/** Paths (relative, `/`-separated) of the regular files under `dir`, never through a link. */
function regularFiles(dir: string, rel = ''): string[] {
  let names: string[];
  try {
    names = readdirSync(rel ? join(dir, rel) : dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names.sort()) {
    const r = rel ? `${rel}/${n}` : n;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) out.push(...regularFiles(dir, r));
    else if (st.isFile()) out.push(r);
  }
  return out;
}
