import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { cp, mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VmwuError } from '../errors.js';
import { isInside } from './confine.js';
import type { Transfer } from './script.js';

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `copy root:X node:Y` → an input entry placed at Y in the work dir. X must
 * still be inside the experiment root once symlinks are resolved (the lexical
 * check happened when the experiment was created). A missing X fails the attempt
 * unless `onerror ignore` was in force at that copy.
 */
export function stageInEntries(transfers: Transfer[], root: string): { path: string; name: string }[] {
  const realRoot = realpathSync(root);
  const out: { path: string; name: string }[] = [];
  for (const t of transfers) {
    const src = join(root, t.from);
    if (!existsSync(src)) {
      if (t.onerror === 'ignore') continue;
      throw new VmwuError('STAGE_IN', `copy root:${t.from} node:${t.to}: ${src} does not exist`, 'root: paths are relative to the plan file\'s directory');
    }
    const real = realpathSync(src);
    if (!isInside(realRoot, real)) {
      throw new VmwuError('PATH_ESCAPE', `copy root:${t.from} node:${t.to}: ${src} leads outside the experiment root (${real})`, 'stage in only files inside the plan file\'s directory');
    }
    out.push({ path: real, name: t.to });
  }
  return out;
}

/**
 * `copy node:X root:Y` after a successful attempt: from the attempt's collected
 * work dir into the experiment's results dir. Each copy lands under a temporary
 * name and is renamed into place, so a crash mid-copy leaves no half file under
 * the final name, and copying again (a job adopted after a crash) is harmless.
 * Returns the destinations written, relative to the results dir.
 */
export async function stageOut(transfers: Transfer[], workDir: string, resultsDir: string): Promise<string[]> {
  const written: string[] = [];
  await mkdir(resultsDir, { recursive: true });
  const realResults = realpathSync(resultsDir);
  const realWork = existsSync(workDir) ? realpathSync(workDir) : workDir;
  for (const t of transfers) {
    const src = join(workDir, t.from);
    if (!exists(src) || !existsSync(src)) {
      if (t.onerror === 'ignore') continue;
      throw new VmwuError('STAGE_OUT', `copy node:${t.from} root:${t.to}: the job left no ${t.from} in its work dir`, 'check the job\'s stdout/stderr: vmwu logs EXPERIMENT/JOB');
    }
    const real = realpathSync(src);
    if (!isInside(realWork, real)) throw new VmwuError('PATH_ESCAPE', `copy node:${t.from} root:${t.to}: ${t.from} leads outside the job's work dir`);
    const dest = join(resultsDir, t.to);
    await mkdir(dirname(dest), { recursive: true });
    if (!isInside(realResults, realpathSync(dirname(dest)))) throw new VmwuError('PATH_ESCAPE', `copy node:${t.from} root:${t.to}: the destination leads outside ${resultsDir}`);
    const tmp = join(dirname(dest), `.${basename(dest)}.vmwu-${randomBytes(4).toString('hex')}`);
    try {
      await cp(real, tmp, { recursive: true, dereference: true, errorOnExist: true, force: false });
      await rm(dest, { recursive: true, force: true });
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw new VmwuError('STAGE_OUT', `copy node:${t.from} root:${t.to}: ${(e as Error).message}`, undefined, { cause: e });
    }
    written.push(t.to);
  }
  return written;
}
