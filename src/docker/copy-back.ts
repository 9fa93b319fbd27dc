import { constants, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { digestFile } from '../store/blobs.js';

/**
 * A read-write mount's contents, as the job left them, written back into the host
 * directory. Only what the job changed comes back: what went in is fingerprinted
 * before the job (`snapshotMount`), and a file the job left as it came is not
 * written, so it cannot overwrite what the host wrote meanwhile (cwltool fills a
 * tool's stdout file in the output directory while the job runs).
 *
 * What comes back is the guest's: collect already refused links out of the work
 * dir, but a link may still leave the mount (`../other-mount`), so a link is
 * written back only where it stays inside this mount's tree; and nothing is
 * written through a link that is already on the host side.
 */

/** Each file's (or link's) fingerprint as it went in, by its path inside the mount. */
export type MountSnapshot = Map<string, string>;

export interface CopyBackReport {
  files: number;
  /** Files the job left as they came in. */
  unchanged: number;
  /** Links the guest left that would point out of the mount: not written back. */
  skippedLinks: string[];
}

// Streamed: a mount may hold files bigger than this process's memory.
const fileFingerprint = async (path: string) => `file:${await digestFile(path)}`;

async function fingerprint(path: string, st: Stats): Promise<string | null> {
  if (st.isSymbolicLink()) return `link:${readlinkSync(path)}`;
  return st.isFile() ? fileFingerprint(path) : null;
}

export async function snapshotMount(source: string): Promise<MountSnapshot> {
  const snap: MountSnapshot = new Map();
  // The source itself may be the user's link to their directory or file: followed.
  if (!statSync(source).isDirectory()) return snap.set('', await fileFingerprint(source));
  const visit = async (rel: string) => {
    const p = join(source, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) for (const name of readdirSync(p)) await visit(`${rel}/${name}`);
    else {
      const f = await fingerprint(p, st);
      if (f) snap.set(rel, f);
    }
  };
  for (const name of readdirSync(source)) await visit(name);
  return snap;
}

export async function copyBack(from: string, to: string, before: MountSnapshot): Promise<CopyBackReport> {
  const report: CopyBackReport = { files: 0, unchanged: 0, skippedLinks: [] };
  const st = lstatSync(from);
  if (st.isDirectory()) {
    // Only what is under the user's source is replaced, never the source itself.
    for (const name of readdirSync(from)) await walk(from, to, name, before, report);
  } else if (st.isFile()) {
    if (before.get('') === await fingerprint(from, st)) report.unchanged++;
    else {
      // A file mount is written where the user pointed it, through their own link if it is one.
      copyFileSync(from, to);
      report.files++;
    }
  }
  return report;
}

/** Whether a link at `rel` (inside the mount) pointing at `target` stays inside the mount. Pure. */
export function linkStaysInside(rel: string, target: string): boolean {
  if (posix.isAbsolute(target)) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
  return resolved !== '..' && !resolved.startsWith('../');
}

async function walk(from: string, to: string, rel: string, before: MountSnapshot, report: CopyBackReport): Promise<void> {
  const src = join(from, rel);
  const dst = join(to, rel);
  const st = lstatSync(src);
  const there = lstatOrNull(dst);
  if (st.isDirectory()) {
    if (there && !there.isDirectory()) rmSync(dst, { force: true });
    if (!there || !there.isDirectory()) mkdirSync(dst);
    for (const name of readdirSync(src)) await walk(from, to, `${rel}/${name}`, before, report);
    return;
  }
  if (!st.isFile() && !st.isSymbolicLink()) return;
  if (before.get(rel) === await fingerprint(src, st)) {
    report.unchanged++;
    return;
  }
  if (st.isSymbolicLink() && !linkStaysInside(rel, readlinkSync(src))) {
    report.skippedLinks.push(rel);
    return;
  }
  // Replace, never write through: what stands there may be a link to anywhere (and
  // an exclusive copy fails rather than follow one put there meanwhile).
  if (there) rmSync(dst, { recursive: true, force: true });
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
  else copyFileSync(src, dst, constants.COPYFILE_EXCL);
  report.files++;
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
