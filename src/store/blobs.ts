import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { chmod, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VmwuError } from '../errors.js';

export type Digest = `sha256:${string}`;

/**
 * Content-addressed, read-only blobs: `blobs/sha256/<hex>`. A blob is written to a
 * temporary name, hashed while copying, then renamed into place, so a crash never
 * leaves a blob whose name lies about its content.
 */
export class BlobStore {
  constructor(readonly dir: string) {}

  path(digest: Digest): string {
    return join(this.dir, hexOf(digest));
  }

  has(digest: Digest): boolean {
    return existsSync(this.path(digest));
  }

  /** Copies a file into the store; returns its digest. Removes `src` when `move` is set. */
  async putFile(src: string, opts: { move?: boolean } = {}): Promise<{ digest: Digest; size: number }> {
    mkdirSync(this.dir, { recursive: true });
    const tmp = join(this.dir, `.tmp-${randomBytes(6).toString('hex')}`);
    try {
      const digest = await copyHashing(src, tmp);
      const dest = this.path(digest);
      if (existsSync(dest)) {
        await rm(tmp, { force: true });
      } else {
        await chmod(tmp, 0o444);
        await rename(tmp, dest);
      }
      if (opts.move) await rm(src, { force: true });
      return { digest, size: (await stat(dest)).size };
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
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
  }, createWriteStream(dest, { mode: 0o644 }));
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
