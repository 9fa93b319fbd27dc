import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { chmod, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VmwuError } from '../errors.js';
import { syncDir, syncFile } from './durable.js';
import { noSpaceError } from './no-space.js';
import { blobTempName } from './temp-files.js';

/**
 * The store's content-addressed blobs (`blobs/sha256/<hex>`): written durably under their digest and
 * verified against it, and the digests of files and strings.
 */

export type Digest = `sha256:${string}`;

/**
 * Content-addressed, read-only blobs: `blobs/sha256/<hex>`. A blob is written to a
 * temporary name, hashed while copying, fsynced, renamed into place and its
 * directory fsynced (src/store/durable.ts), so neither a crash nor a power loss
 * leaves a blob whose name lies about its content, and a row naming it is only
 * written once it is on the disk.
 */
export class BlobStore {
  constructor(readonly dir: string) {}

  path(digest: Digest): string {
    return join(this.dir, hexOf(digest));
  }

  has(digest: Digest): boolean {
    return existsSync(this.path(digest));
  }

  /**
   * Copies a file into the store; returns its digest. With `move`, `src` is
   * consumed: renamed in when it is on the store's filesystem (hashed in place,
   * no second copy of a large layer), else copied and removed.
   */
  async putFile(src: string, opts: { move?: boolean } = {}): Promise<{ digest: Digest; size: number }> {
    mkdirSync(this.dir, { recursive: true });
    const tmp = join(this.dir, blobTempName());
    try {
      const digest = opts.move && await renamed(src, tmp) ? await digestFile(tmp) : await copyHashing(src, tmp);
      await syncFile(tmp);
      const size = (await stat(tmp)).size;
      const dest = this.path(digest);
      // A blob already there is kept, unless it is short: torn by a crash of a vmwu that did not fsync.
      if (await stat(dest).then((s) => s.size === size, () => false)) {
        await rm(tmp, { force: true });
      } else {
        // Read-only, and private like the rest of the store (src/store/privacy.ts).
        await chmod(tmp, 0o400);
        await rename(tmp, dest);
        await syncDir(this.dir);
      }
      if (opts.move) await rm(src, { force: true });
      return { digest, size };
    } catch (e) {
      await rm(tmp, { force: true });
      throw noSpaceError(e, { dir: this.dir });
    }
  }

  /** Re-hashes a blob; used on first use and on import, where bit rot or tampering must be caught. */
  async verify(digest: Digest): Promise<void> {
    const actual = await digestFile(this.path(digest));
    if (actual !== digest) {
      throw new VmwuError('BLOB_CORRUPT', `blob ${digest} is corrupt: its content hashes to ${actual}`,
        'remove it with `vmwu gc` and rebuild or re-import what used it');
    }
  }
}

/** Renames src to dest; false when they are on different filesystems. */
async function renamed(src: string, dest: string): Promise<boolean> {
  try {
    await rename(src, dest);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EXDEV') return false;
    throw e;
  }
}

export function hexOf(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new VmwuError('BAD_DIGEST', `not a sha256 digest: ${digest}`);
  return m[1]!;
}

/** Copies a file, hashing it on the way (one read for both); returns the copy's digest. */
export async function copyHashing(src: string, dest: string): Promise<Digest> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(src), async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      yield chunk;
    }
  }, createWriteStream(dest, { mode: 0o600 }));
  return `sha256:${hash.digest('hex')}`;
}

export async function digestFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

export function digestString(s: string): Digest {
  return `sha256:${createHash('sha256').update(s).digest('hex')}`;
}
