import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** An attempt's output files as the dashboard lists and serves them: only regular files inside its out dir, whatever a download URL tries. */

/**
 * Turns the raw (still percent-encoded) tail of a download URL into a path inside
 * `root`, or undefined when it could leave it. Each segment is decoded exactly once;
 * a segment that is empty, `.` or `..`, or that decodes to something holding a slash,
 * a backslash, a NUL or another `%` (double encoding) is refused. The result is then
 * resolved with symlinks followed and must still be a regular file under `root`.
 */
export function confinedFile(root: string, rawTail: string): string | undefined {
  const raw = rawTail.split('?')[0]!;
  if (!raw) return undefined;
  const segs: string[] = [];
  for (const part of raw.split('/')) {
    let s: string;
    try {
      s = decodeURIComponent(part);
    } catch {
      return undefined;
    }
    if (s === '' || s === '.' || s === '..' || /[/\\\0%]/.test(s)) return undefined;
    segs.push(s);
  }
  let rootReal: string;
  let real: string;
  try {
    rootReal = realpathSync(root);
    real = realpathSync(join(rootReal, ...segs));
  } catch {
    return undefined;
  }
  if (!real.startsWith(rootReal + sep)) return undefined;
  try {
    if (!statSync(real).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return real;
}

export interface FileEntry {
  /** Relative to the out dir, with `/`. */
  path: string;
  size: number;
}

/** Regular files under `root` (symlinks are not followed or listed), at most `max` of them. */
export function listFiles(root: string, max = 1000): FileEntry[] {
  const out: FileEntry[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return;
    }
    for (const e of entries) {
      if (out.length >= max) return;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push({ path: relative(root, p).split(sep).join('/'), size: lstatSync(p).size });
    }
  };
  walk(root);
  return out;
}
