import { posix } from 'node:path';
import { VmwuError } from '../errors.js';

/** Paths that a plan's copy commands name, kept inside the experiment's own directories and refused before any job runs when they would leave them. */

/**
 * A path named in a plan, made safe to join under a directory the experiment owns
 * (the plan's directory for stage-in, `results/` or a job's work dir for stage-out).
 * Plans are shared and edited by hand: a typo such as `root:../x` or `root:/tmp/x`
 * must be refused before any job runs, not discovered as a file written elsewhere.
 * Returns the normalised relative path.
 */
export function confinePath(path: string, what: string): string {
  const hint = 'paths in copy commands are relative to the experiment (root:) or the job\'s work dir (node:), and may not leave it';
  if (path === '') throw new VmwuError('PATH_ESCAPE', `${what}: empty path`, hint);
  if (path.includes('\0')) throw new VmwuError('PATH_ESCAPE', `${what}: the path contains a NUL byte`, hint);
  if (path.startsWith('/')) throw new VmwuError('PATH_ESCAPE', `${what}: absolute path "${path}" is not allowed`, hint);
  const norm = posix.normalize(path).replace(/\/+$/, '');
  if (norm === '..' || norm.startsWith('../')) throw new VmwuError('PATH_ESCAPE', `${what}: "${path}" leaves its directory`, hint);
  if (norm === '.' || norm === '') throw new VmwuError('PATH_ESCAPE', `${what}: "${path}" names the directory itself, not a file in it`, hint);
  return norm;
}

/**
 * A copy's destination. As in Nimrod, `node:.` or a path ending in `/` names a
 * directory, and the source keeps its base name there: `copy node:out.3 root:results/`
 * writes results/out.3.
 */
export function confineDestination(to: string, from: string, what: string): string {
  const dirLike = to === '.' || to.endsWith('/') || posix.normalize(to) === '.';
  if (!dirLike) return confinePath(to, what);
  const name = posix.basename(from.replace(/\/+$/, ''));
  return confinePath(posix.join(to, name), what);
}
