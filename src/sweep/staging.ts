import { randomBytes } from 'node:crypto';
import { constants, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, renameSync, statSync, symlinkSync, type Stats } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isVmwuError, VmwuError } from '../errors.js';
import { DirSyncBatch, NO_LINK, syncFile, syncTree } from '../store/durable.js';
import { isInside } from '../paths.js';
import type { Transfer } from './script.js';

/**
 * A job's files between the experiment and the guest: its `root:` inputs found for the input disk, and
 * its outputs linked or copied into results/ after a successful attempt.
 */

/** Hard-links src at dest; false when dest exists or the filesystem cannot link them (then the caller copies). */
function linked(src: string, dest: string): boolean {
  try {
    linkSync(src, dest);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST' || NO_LINK.has(code)) return false;
    throw e;
  }
}

/** lstat (or stat, following a link), or null when there is nothing there. */
function statOrNull(path: string, follow = false): Stats | null {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * `copy root:X node:Y` → an input entry placed at Y in the work dir. X must
 * still be inside the experiment root once symlinks are resolved (the lexical
 * check happened when the experiment was created). A missing X fails the attempt
 * unless `onerror ignore` was in force at that copy.
 */
export function stageInEntries(transfers: Transfer[], root: string): { path: string; name: string }[] {
  const realRoot = realpathSync.native(root);
  const out: { path: string; name: string }[] = [];
  for (const t of transfers) {
    const src = join(root, t.from);
    if (!existsSync(src)) {
      if (t.onerror === 'ignore') continue;
      throw new VmwuError('STAGE_IN', `copy root:${t.from} node:${t.to}: ${src} does not exist`, 'root: paths are relative to the plan file\'s directory');
    }
    const real = realpathSync.native(src);
    if (!isInside(realRoot, real)) {
      throw new VmwuError('PATH_ESCAPE', `copy root:${t.from} node:${t.to}: ${src} leads outside the experiment root (${real})`, 'stage in only files inside the plan file\'s directory');
    }
    out.push({ path: real, name: t.to });
  }
  return out;
}


export interface StageOutOptions {
  /** The job's output cap: what lands in results/ counts against it. */
  maxBytes: number;
  /** Another job's recorded output at, around or inside a destination (relative to the results dir), if any. */
  othersOutput?: (dest: string) => { job: number; path: string } | undefined;
  /** Where to note the directories that got new names, for the caller to fsync once for a batch; default: fsynced before returning. */
  dirs?: DirSyncBatch;
}

/**
 * `copy node:X root:Y` after a successful attempt: from the attempt's collected
 * work dir into the experiment's results dir. A file is hard-linked when both are
 * on one filesystem (no data copied, whatever its size, like Nextflow's
 * publishDir mode 'link'), else copied. Each lands under a temporary name and is
 * renamed into place, so a crash mid-copy leaves no half file under the final
 * name, and copying again (a job adopted after a crash) is harmless. A copy is
 * fsynced before its rename (a link shares the attempt's data, fsynced when it was
 * collected), and the directories that got new names are fsynced before this
 * returns, or, with `o.dirs`, by the caller, once for a batch of attempts, before
 * it records them. Returns the destinations written, relative to the results dir.
 *
 * The work dir is the guest's: every byte that lands counts against `o.maxBytes`
 * (the job's output cap), linked or copied, so links cannot multiply what a job
 * hands back. Inside a copied directory a symlink that stays inside that
 * directory is kept as a link; a link to a file elsewhere in the work dir is
 * followed and its bytes counted; a link to a directory elsewhere is refused
 * (following it could loop).
 */
export async function stageOut(transfers: Transfer[], workDir: string, resultsDir: string, o: StageOutOptions): Promise<string[]> {
  const written: string[] = [];
  const sync = o.dirs ?? new DirSyncBatch();
  // Metadata calls are synchronous: each takes microseconds, less than a round trip
  // through the thread pool; only a copy of data goes there.
  if (mkdirSync(resultsDir, { recursive: true })) sync.add(dirname(resultsDir));
  const tag = randomBytes(4).toString('hex');
  // Resolved when first needed: a job may have left no work dir at all.
  let realWorkDir: string | undefined;
  const realWork = () => (realWorkDir ??= realpathSync.native(workDir));
  const { maxBytes } = o;
  const budget = { left: maxBytes };
  for (const [i, t] of transfers.entries()) {
    const what = `copy node:${t.from} root:${t.to}`;
    const src = join(workDir, t.from);
    const st = statOrNull(src);
    // A link is followed (and must stay inside the work dir); a dangling one counts as missing.
    const target = st?.isSymbolicLink() ? statOrNull(src, true) : st;
    if (!target) {
      if (t.onerror === 'ignore') continue;
      throw new VmwuError('STAGE_OUT', `${what}: the job left no ${t.from} in its work dir`, 'check the job\'s stdout/stderr: vmwu logs EXPERIMENT/JOB');
    }
    // Replacing a directory deletes what is in it: never another job's recorded output.
    const taken = o.othersOutput?.(t.to);
    if (taken) {
      throw new VmwuError('STAGE_OUT', `${what}: job ${taken.job}'s recorded output ${taken.path} ${taken.path === t.to ? 'is already there' : 'overlaps it'}; nothing was replaced`,
        'give each job a destination of its own, e.g. root:out-${jobindex}/ (plans are checked for this when an experiment is created)');
    }
    // A plain name that is no link cannot lead anywhere else; anything else is resolved and checked.
    const plain = !t.from.includes('/') && !st!.isSymbolicLink();
    const real = plain ? src : realpathSync.native(src);
    if (!plain && !isInside(realWork(), real)) throw new VmwuError('PATH_ESCAPE', `${what}: ${t.from} leads outside the job's work dir`);
    const dest = join(resultsDir, t.to);
    const destDir = dirname(dest);
    for (let d = destDir; d.length >= resultsDir.length && d !== dirname(d); d = dirname(d)) sync.add(d);
    if (destDir !== resultsDir) {
      mkdirSync(destDir, { recursive: true });
      if (!isInside(realpathSync.native(resultsDir), realpathSync.native(destDir))) throw new VmwuError('PATH_ESCAPE', `${what}: the destination leads outside ${resultsDir}`);
    }
    const file = target.isFile();
    if (file) spend(budget, target.size, what, maxBytes);
    // A hard link appears whole or not at all: straight to its name, when that is free.
    if (file && linked(real, dest)) {
      written.push(t.to);
      continue;
    }
    const tmp = join(destDir, `.${basename(dest)}.vmwu-${tag}-${i}`);
    try {
      if (file) {
        await placeFile(real, tmp, true);
      } else {
        await copyTree(real, tmp, realWork(), budget, what, maxBytes);
        await syncTree(tmp);
      }
      // A rename replaces a file in place; a directory in the way goes first.
      if (!file || statOrNull(dest)?.isDirectory()) await rm(dest, { recursive: true, force: true });
      renameSync(tmp, dest);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      if (isVmwuError(e)) throw e;
      throw new VmwuError('STAGE_OUT', `${what}: ${(e as Error).message}`, undefined, { cause: e });
    }
    written.push(t.to);
  }
  if (!o.dirs) sync.flushSync();
  return written;
}

function spend(budget: { left: number }, bytes: number, what: string, maxBytes: number): void {
  budget.left -= bytes;
  if (budget.left < 0) {
    throw new VmwuError('OUTPUT_TOO_LARGE', `${what}: the job's staged-out files exceed its output cap of ${maxBytes} bytes`,
      'links count once per name they are copied under; raise --max-output or stage out less');
  }
}

/** A link, else a copy; with `sync`, a copy is fsynced (a link's data is the attempt's, already on the disk). */
async function placeFile(src: string, dest: string, sync = false): Promise<void> {
  if (linked(src, dest)) return;
  await copyFile(src, dest, constants.COPYFILE_EXCL);
  if (sync) await syncFile(dest);
}

/**
 * Copies a directory of the work dir without trusting it (see stageOut for links);
 * anything but files, directories and links (devices, fifos) is left out.
 */
async function copyTree(src: string, dest: string, realWork: string, budget: { left: number }, what: string, maxBytes: number): Promise<void> {
  const realSrc = realpathSync.native(src);
  const walk = async (from: string, to: string): Promise<void> => {
    mkdirSync(to);
    for (const name of readdirSync(from)) {
      const a = join(from, name);
      const b = join(to, name);
      const st = lstatSync(a);
      if (st.isDirectory()) {
        await walk(a, b);
      } else if (st.isFile()) {
        spend(budget, st.size, what, maxBytes);
        await placeFile(a, b);
      } else if (st.isSymbolicLink()) {
        let real: string;
        try {
          real = realpathSync.native(a);
        } catch {
          continue; // dangling: nothing to hand back
        }
        // Resolved by the kernel in the source, so it resolves the same way in the copy.
        if (isInside(realSrc, real)) {
          symlinkSync(readlinkSync(a), b);
          continue;
        }
        const rel = a.slice(realSrc.length + 1);
        if (!isInside(realWork, real)) throw new VmwuError('PATH_ESCAPE', `${what}: ${rel} leads outside the job's work dir`);
        const t = statSync(real);
        if (t.isDirectory()) {
          throw new VmwuError('STAGE_OUT', `${what}: ${rel} is a link to a directory outside the copied one`, 'stage that directory out with its own copy command');
        }
        if (t.isFile()) {
          spend(budget, t.size, what, maxBytes);
          await placeFile(real, b);
        }
      }
    }
  };
  await walk(realSrc, dest);
}
