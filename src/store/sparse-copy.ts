import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';

/** A copy that keeps a file's holes, for when a file bound for the store (a dataset's single file) can be neither linked nor cloned. */

const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);
const READ = 1 << 20;

/**
 * Copies a file, leaving a hole wherever a 4 KiB block is all zeros. A plain copy
 * (read and write, sendfile, copy_file_range across filesystems) writes the zeros
 * a hole reads as, so a 300 MiB sparse file with 12 KiB of data would take 300 MiB.
 * `dest` must not exist.
 */
export function copyFileSparse(src: string, dest: string): void {
  const from = openSync(src, 'r');
  let to: number | undefined;
  try {
    to = openSync(dest, 'wx', 0o644);
    const size = fstatSync(from).size;
    const buf = Buffer.allocUnsafe(READ);
    for (let at = 0; at < size;) {
      const n = readSync(from, buf, 0, Math.min(READ, size - at), at);
      if (n === 0) break;
      // Runs of non-zero blocks are written at their offsets; zero blocks are skipped.
      let run = -1;
      for (let b = 0; b < n; b += BLOCK) {
        const end = Math.min(b + BLOCK, n);
        const zero = buf.subarray(b, end).equals(ZERO.subarray(0, end - b));
        if (!zero && run < 0) {
          run = b;
        } else if (zero && run >= 0) {
          writeAll(to, buf.subarray(run, b), at + run);
          run = -1;
        }
      }
      if (run >= 0) writeAll(to, buf.subarray(run, n), at + run);
      at += n;
    }
    // The length, holes at the end included.
    ftruncateSync(to, size);
  } finally {
    closeSync(from);
    if (to !== undefined) closeSync(to);
  }
}

function writeAll(fd: number, data: Buffer, position: number): void {
  for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done, position + done);
}
