import { createHash } from 'node:crypto';
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';

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

const fileFingerprint = (path: string) => `file:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

function fingerprint(path: string, st: Stats): string | null {
  if (st.isSymbolicLink()) return `link:${readlinkSync(path)}`;
  return st.isFile() ? fileFingerprint(path) : null;
}

export function snapshotMount(source: string): MountSnapshot {
  const snap: MountSnapshot = new Map();
  // The source itself may be the user's link to their directory or file: followed.
  if (!statSync(source).isDirectory()) return snap.set('', fileFingerprint(source));
  const visit = (rel: string) => {
    const p = join(source, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(`${rel}/${name}`);
    else {
      const f = fingerprint(p, st);
      if (f) snap.set(rel, f);
    }
  };
  for (const name of readdirSync(source)) visit(name);
  return snap;
}

export function copyBack(from: string, to: string, before: MountSnapshot): CopyBackReport {
  const report: CopyBackReport = { files: 0, unchanged: 0, skippedLinks: [] };
  if (lstatSync(from).isDirectory()) {
    // Only what is under the user's source is replaced, never the source itself.
    for (const name of readdirSync(from)) walk(from, to, name, before, report);
  } else if (lstatSync(from).isFile()) {
    if (before.get('') === fingerprint(from, lstatSync(from))) report.unchanged++;
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

function walk(from: string, to: string, rel: string, before: MountSnapshot, report: CopyBackReport): void {
  const src = join(from, rel);
  const dst = join(to, rel);
  const st = lstatSync(src);
  const there = lstatOrNull(dst);
  if (st.isDirectory()) {
    if (there && !there.isDirectory()) rmSync(dst, { force: true });
    if (!there || !there.isDirectory()) mkdirSync(dst);
    for (const name of readdirSync(src)) walk(from, to, `${rel}/${name}`, before, report);
    return;
  }
  if (!st.isFile() && !st.isSymbolicLink()) return;
  if (before.get(rel) === fingerprint(src, st)) {
    report.unchanged++;
    return;
  }
  if (st.isSymbolicLink() && !linkStaysInside(rel, readlinkSync(src))) {
    report.skippedLinks.push(rel);
    return;
  }
  // Replace, never write through: what stands there may be a link to anywhere.
  if (there) rmSync(dst, { recursive: true, force: true });
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
  else copyFileSync(src, dst);
  report.files++;
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
