import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { VmwuError } from '../errors.js';

/** A cheap check that a dataset's blob is an erofs image as `vmwu data add` makes them, for bundles that carry datasets out of or into the store. */

/** The erofs superblock sits at byte 1024 and starts with this magic (little-endian). */
const SUPERBLOCK_OFFSET = 1024;
const EROFS_MAGIC = 0xe0f5e1e2;
const BLOCK = 4096;

/**
 * A cheap check that a file is an erofs image as `vmwu data add` makes them:
 * the magic and a whole number of 4 KiB blocks. The host never mounts a dataset
 * (only a confined guest does), so this guards against a mislabelled blob, not
 * a crafted one; the digest already says it is the bytes its owner registered.
 */
export function checkErofsImage(path: string, label: string, code = 'BAD_BUNDLE'): void {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(4);
    const n = size >= SUPERBLOCK_OFFSET + 4 ? readSync(fd, buf, 0, 4, SUPERBLOCK_OFFSET) : 0;
    if (n !== 4 || buf.readUInt32LE(0) !== EROFS_MAGIC) {
      throw new VmwuError(code, `${label} is not an erofs image (no erofs superblock at byte ${SUPERBLOCK_OFFSET})`, 'make datasets with `vmwu data add`, and export them again');
    }
    if (size % BLOCK !== 0) throw new VmwuError(code, `${label} is ${size} bytes, not a whole number of ${BLOCK}-byte erofs blocks`, 'make datasets with `vmwu data add`, and export them again');
  } finally {
    closeSync(fd);
  }
}
