import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync } from 'node:fs';
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

/**
 * Opens a file confinedFile has vetted, for reading: still a regular file, and not a
 * symlink swapped in since (O_NOFOLLOW), nor a FIFO that would block the open
 * (O_NONBLOCK). Undefined when it is no longer such a file.
 */
function openRegular(path: string): { fd: number; size: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    return undefined;
  }
  return { fd, size: st.size };
}

/** Reads into `buf` from the start until it is full or the file ends; the count read. */
function readInto(fd: number, buf: Buffer): number {
  let n = 0;
  while (n < buf.length) {
    const got = readSync(fd, buf, n, buf.length - n, n);
    if (got === 0) break;
    n += got;
  }
  return n;
}

/** A vetted file's bytes when it holds at most `max` of them; `{tooBig}` with its size otherwise; undefined when it is not a regular file. */
export function readCapped(path: string, max: number): { data: Buffer } | { tooBig: number } | undefined {
  const f = openRegular(path);
  if (!f) return undefined;
  try {
    if (f.size > max) return { tooBig: f.size };
    const buf = Buffer.alloc(f.size);
    return { data: buf.subarray(0, readInto(f.fd, buf)) };
  } finally {
    closeSync(f.fd);
  }
}

/** A vetted file's first `n` bytes and its size; undefined when it is not a regular file. */
export function readHead(path: string, n: number): { head: Buffer; size: number } | undefined {
  const f = openRegular(path);
  if (!f) return undefined;
  try {
    const buf = Buffer.alloc(Math.min(n, f.size));
    return { head: buf.subarray(0, readInto(f.fd, buf)), size: f.size };
  } finally {
    closeSync(f.fd);
  }
}
