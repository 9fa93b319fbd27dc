import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { VmwuError } from '../errors.js';
import type { LayerEntry } from './layer-script.js';
import { badEntry } from './layer-paths.js';
import { keepBinaryXattrs, paxXattrs } from './tar-pax.js';

/**
 * One image layer read from its blob: decompressed (gzip in-process, zstd by Debian's
 * `zstd`), hashed twice (the blob against its digest, the tar against the config's
 * diff_id), parsed with tar-stream, and each regular file's content staged on the
 * host for debugfs. Sizes and counts are capped: a layer is untrusted input.
 */

export interface LayerSource {
  blob: string;
  digest: string;
  diffId: string;
  compression: 'gzip' | 'zstd' | 'none';
  /** "layer 2 (sha256:…)", for errors. */
  label: string;
}

export interface LayerLimits {
  /** Bytes of file content the layer may hold. */
  maxBytes: number;
  maxEntries: number;
}

const TYPES: Record<string, LayerEntry['type']> = {
  file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink', link: 'link',
  'character-device': 'char', 'block-device': 'block', fifo: 'fifo',
};

function hashing(into: ReturnType<typeof createHash>): Transform {
  return new Transform({ transform(chunk: Buffer, _e, cb) { into.update(chunk); cb(null, chunk); } });
}

function zstdDecompress(): { stream: Transform; done: Promise<void> } {
  const child = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const err: Buffer[] = [];
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', () => reject(new VmwuError('TOOL_MISSING', 'cannot run zstd: not installed', 'install zstd (Debian package zstd)')));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new VmwuError('BAD_IMAGE', `a zstd layer does not decompress: ${Buffer.concat(err).toString().trim()}`))));
  });
  // A duplex over the child's pipes, so the layer reads as one pipeline.
  const stream = new Transform({
    transform(chunk: Buffer, _e, cb) { if (child.stdin.write(chunk)) cb(); else child.stdin.once('drain', () => cb()); },
    flush(cb) { child.stdin.end(); child.stdout.once('end', () => cb()); },
  });
  child.stdout.on('data', (d: Buffer) => stream.push(d));
  child.stdin.on('error', () => undefined);
  return { stream, done };
}

/**
 * Reads a layer. With `stage`, each regular file's content is written to
 * `stage/<n>`; without, only the entries are listed (to mirror a layer already
 * converted). Refuses a layer over its limits or whose hashes do not match.
 */
export async function readLayer(src: LayerSource, limits: LayerLimits, stage?: string): Promise<LayerEntry[]> {
  keepBinaryXattrs();
  const entries: LayerEntry[] = [];
  let bytes = 0;
  const blobHash = createHash('sha256');
  const tarHash = createHash('sha256');
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    const type = TYPES[h.type ?? 'file'];
    const at = { layer: src.label, name: h.name };
    const fail = (e: unknown) => { stream.resume(); next(e as Error); };
    if (!type) return fail(badEntry(at, `is of a kind vmwu does not unpack (${h.type})`));
    if (entries.length >= limits.maxEntries) return fail(new VmwuError('IMAGE_TOO_BIG', `${src.label} has more than ${limits.maxEntries} entries`, 'the image is unusually large, or crafted to be'));
    const size = type === 'file' ? h.size ?? 0 : 0;
    bytes += size;
    if (bytes > limits.maxBytes) {
      return fail(new VmwuError('IMAGE_TOO_BIG', `${src.label} holds more than ${limits.maxBytes} bytes of files, more than a base's root filesystem holds`, 'the image is too large for a vmwu base'));
    }
    const e: LayerEntry = {
      name: h.name, type, mode: h.mode ?? 0o644, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: Math.floor((h.mtime?.getTime() ?? 0) / 1000),
      ...(h.linkname ? { linkname: h.linkname } : {}), devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0, xattrs: paxXattrs(h.pax as Record<string, string> | undefined),
    };
    entries.push(e);
    if (type === 'file' && stage) {
      e.content = join(stage, String(entries.length));
      // Written synchronously as it arrives: thousands of small files, and a write through the thread pool costs five times as much.
      let fd: number;
      try {
        fd = openSync(e.content, 'wx', 0o600);
      } catch (err) {
        return fail(err);
      }
      let failed: unknown;
      stream.on('data', (c: unknown) => {
        if (failed) return;
        try {
          writeSync(fd, c as Buffer);
        } catch (err) {
          failed = err;
        }
      });
      stream.on('end', () => {
        closeSync(fd);
        next(failed as Error | undefined);
      });
    } else {
      stream.on('end', () => next());
      stream.resume();
    }
  });
  const steps: (NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream)[] = [createReadStream(src.blob), hashing(blobHash)];
  let zstdDone: Promise<void> | undefined;
  if (src.compression === 'gzip') steps.push(createGunzip());
  if (src.compression === 'zstd') {
    const z = zstdDecompress();
    steps.push(z.stream);
    zstdDone = z.done;
  }
  steps.push(hashing(tarHash), extract);
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(...steps);
    await zstdDone;
  } catch (e) {
    if (e instanceof VmwuError) throw e;
    throw new VmwuError('BAD_IMAGE', `${src.label} is not a readable ${src.compression === 'none' ? 'tar' : `${src.compression} tar`} stream: ${(e as Error).message}`, 'the image is damaged; nothing was registered');
  }
  const blob = `sha256:${blobHash.digest('hex')}`;
  const diff = `sha256:${tarHash.digest('hex')}`;
  if (blob !== src.digest) throw new VmwuError('IMAGE_DIGEST', `${src.label}: its blob hashes to ${blob}, not ${src.digest}`, 'the blob was changed or damaged; nothing was registered');
  if (diff !== src.diffId) throw new VmwuError('IMAGE_DIGEST', `${src.label}: its content hashes to ${diff}, but the image's config says ${src.diffId}`, 'the image is damaged or was tampered with; nothing was registered');
  return entries;
}
