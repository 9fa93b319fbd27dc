import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { VmwuError } from '../errors.js';
import { hexOf, type Digest } from '../store/blobs.js';
import { blobEntryName, decodeManifest, MANIFEST_NAME, MAX_TEXT_ENTRY, OVF_NAME, type BundleManifest } from './manifest.js';
import { renameDurable } from '../store/durable.js';

/**
 * The tar layer of a bundle: plain ustar entries (manifest.json, unit.ovf, then
 * blobs/sha256/<hex>), written and read as streams so a blob is never held in memory.
 */

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

export interface BundleBlobSource {
  digest: Digest;
  size: number;
  path: string;
}

export interface WriteBundleOptions {
  out: string;
  manifest: string;
  ovf: string;
  blobs: BundleBlobSource[];
  /** Entry mtimes: the bundle's creation time, so entries do not leak when each blob was made. */
  mtime: Date;
  onProgress?(bytes: number): void;
  signal?: AbortSignal;
}

/**
 * Writes the bundle to a temporary name next to `out` and renames it into place, so a
 * failed or interrupted export never leaves a file that looks complete. Each blob is
 * re-hashed as it streams out: a blob that rotted in the store is not shipped.
 */
export async function writeBundle(o: WriteBundleOptions): Promise<{ bytes: number }> {
  const tmp = join(dirname(o.out), `.${basename(o.out)}.tmp-${randomBytes(4).toString('hex')}`);
  const pack = tar.pack();
  const writing = pipeline(pack, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
  const common = { mode: 0o644, mtime: o.mtime, uid: 0, gid: 0, uname: '', gname: '' };
  try {
    pack.entry({ ...common, name: MANIFEST_NAME }, o.manifest);
    pack.entry({ ...common, name: OVF_NAME }, o.ovf);
    for (const b of o.blobs) {
      o.signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const hash = createHash('sha256');
        let failed = false;
        const fail = (e: unknown) => {
          failed = true;
          reject(e);
        };
        const sink = pack.entry({ ...common, name: blobEntryName(b.digest), size: b.size, mode: 0o444 }, (e) => (e ? fail(e) : failed || resolve()));
        const rs = createReadStream(b.path);
        const onAbort = () => rs.destroy(o.signal?.reason as Error);
        o.signal?.addEventListener('abort', onAbort, { once: true });
        rs.on('data', (c) => {
          hash.update(c as Buffer);
          o.onProgress?.(c.length);
        });
        rs.on('error', fail);
        rs.on('close', () => o.signal?.removeEventListener('abort', onAbort));
        rs.on('end', () => {
          const actual = `sha256:${hash.digest('hex')}`;
          if (actual !== b.digest) {
            const e = new VmwuError('BLOB_CORRUPT', `blob ${b.digest} in the store is corrupt: its content hashes to ${actual}`,
              'remove it with `vmwu gc` after removing what uses it, then rebuild the unit; nothing was exported');
            fail(e);
          }
        });
        // Failures reach us through the entry callback and `writing`; the pack's teardown re-emits them here.
        sink.on('error', () => undefined);
        rs.pipe(sink);
      });
    }
    pack.finalize();
    await writing;
    await renameDurable(tmp, o.out);
    return { bytes: (await stat(o.out)).size };
  } catch (e) {
    pack.destroy(e as Error);
    await writing.catch(() => undefined);
    await rm(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new VmwuError('NO_SPACE', `no space left on the disk of ${dirname(o.out)} for the bundle`, 'write it elsewhere with -o; nothing was left behind');
    throw e;
  }
}

export interface ReadBundleOptions {
  file: string;
  /** Where blobs are written as `<hex>`; must exist and be empty. */
  staging: string;
  /** Called once the manifest is verified, before any blob is read: lets the caller refuse early. */
  onManifest?(m: BundleManifest): void | Promise<void>;
  onProgress?(bytes: number): void;
  signal?: AbortSignal;
}

export interface ReadBundleResult {
  manifest: BundleManifest;
  ovf: string;
  /** digest → staged file. */
  staged: Map<Digest, string>;
  bytes: number;
}

const HINT = 'the bundle is damaged or was altered: copy it again from the source, or export it again';
const bad = (message: string, hint = HINT) => new VmwuError('BAD_BUNDLE', message, hint);
const isSystemError = (e: unknown) => typeof (e as NodeJS.ErrnoException | undefined)?.errno === 'number';

interface Span { name: string; header: number; data: number; size: number }

/**
 * Reads and verifies a bundle into `staging`. Every byte of the file is accounted for:
 * headers by their checksum (and the exact form our writer gives the checksum field),
 * manifest.json by its self-digest, unit.ovf and each blob by the digest and size the
 * manifest lists, the padding and the end-of-archive marker by being zero. Any
 * failure throws BAD_BUNDLE; the caller removes `staging`.
 */
export async function readBundle(o: ReadBundleOptions): Promise<ReadBundleResult> {
  const fh = await open(o.file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new VmwuError('BAD_BUNDLE', `cannot open ${o.file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, 'give the path of a .vmwu bundle written by `vmwu export`');
  });
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new VmwuError('BAD_BUNDLE', `${o.file} is not a file`, 'give the path of a .vmwu bundle written by `vmwu export`');
  }
  const fileSize = st.size;
  const rs = fh.createReadStream({ start: 0, autoClose: false });
  const ex = tar.extract();
  let sourceEnded = false;
  let upstream: Error | undefined;
  rs.on('end', () => { sourceEnded = true; });
  rs.on('error', (e) => { upstream ??= e; ex.destroy(e); });
  const onAbort = () => ex.destroy(o.signal?.reason as Error);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  rs.pipe(ex);
  const it = ex[Symbol.asyncIterator]();

  const spans: Span[] = [];
  const staged = new Map<Digest, string>();
  let manifest: BundleManifest | undefined;
  let ovf: string | undefined;
  let bytes = 0;
  let next = 0;

  const tarError = (e: unknown, where: string): unknown => {
    if (o.signal?.aborted) return o.signal.reason;
    if (e instanceof VmwuError || isSystemError(e)) return e;
    if (upstream) return upstream;
    const msg = (e as Error)?.message ?? String(e);
    const complete = manifest !== undefined && ovf !== undefined && staged.size === manifest.blobs.length;
    const trailing = () => bad(`the bundle has unexpected data after its last entry (from byte ${next} on, where only the end-of-archive marker belongs)`);
    if (sourceEnded && /unexpected end|destroyed|premature/i.test(msg)) {
      if (complete && fileSize >= next + 2 * BLOCK) return trailing();
      return bad(`the bundle is truncated (${fileSize} bytes): it ends ${where}`);
    }
    if (complete) return trailing();
    if (/invalid tar header/i.test(msg)) return bad(`the bundle has a corrupt tar header ${where} (checksum mismatch)`);
    return bad(`the bundle is not a valid tar file ${where}: ${msg}`);
  };

  const readText = async (entry: AsyncIterable<unknown>, name: string, size: number): Promise<Buffer> => {
    if (size > MAX_TEXT_ENTRY) throw bad(`${name} claims ${size} bytes; vmwu writes it far smaller`);
    const chunks: Buffer[] = [];
    let got = 0;
    try {
      for await (const c of entry) {
        chunks.push(c as Buffer);
        got += (c as Buffer).length;
      }
    } catch (e) {
      throw tarError(e, `inside ${name}`);
    }
    if (got !== size) throw bad(`the bundle is truncated: ${name} has ${got} of ${size} bytes`);
    return Buffer.concat(chunks);
  };

  try {
    for (;;) {
      const r = await it.next().catch((e: unknown) => { throw tarError(e, spans.length ? `after ${spans[spans.length - 1]!.name}` : 'at its start'); });
      if (r.done) break;
      const entry = r.value;
      const h = entry.header;
      const name = h.name;
      const where = `at entry ${JSON.stringify(name)} (byte ${entry.offset})`;
      // Our writer puts entries back to back; tar readers skip zero blocks, which would hide inserted ones.
      if (entry.offset !== next) throw bad(`the bundle has unexpected data before entry ${JSON.stringify(name)} at byte ${entry.offset} (the previous entry ended at byte ${next})`);
      if (h.pax) throw bad(`${where} uses a pax extension header, which vmwu bundles never contain`);
      if (h.type !== 'file') throw bad(`${where} is a ${h.type}; bundles hold only files`);
      // tar-stream reads a size field it cannot parse as null, and then never ends the entry's stream.
      if (!Number.isSafeInteger(h.size) || h.size < 0) throw bad(`${where} has a size field that is not a number`);
      const dataAt = (h as tar.Header & { byteOffset?: number }).byteOffset ?? entry.offset + BLOCK;
      spans.push({ name, header: entry.offset, data: dataAt, size: h.size });
      next = dataAt + padded(h.size);

      if (!manifest) {
        if (name !== MANIFEST_NAME) throw bad(`the first entry is ${JSON.stringify(name)}, not ${MANIFEST_NAME}`, 'this file is not a vmwu bundle, or it is damaged');
        manifest = decodeManifest(await readText(entry, name, h.size));
        await o.onManifest?.(manifest);
        continue;
      }
      if (name === OVF_NAME) {
        if (ovf !== undefined) throw bad(`${where}: ${OVF_NAME} appears twice`);
        const buf = await readText(entry, name, h.size);
        const digest = `sha256:${createHash('sha256').update(buf).digest('hex')}`;
        if (buf.length !== manifest.ovf.size || digest !== manifest.ovf.digest) throw bad(`${OVF_NAME} does not match the manifest (digest ${digest}, ${buf.length} bytes)`);
        ovf = buf.toString('utf8');
        continue;
      }
      const blob = manifest.blobs.find((b) => blobEntryName(b.digest) === name);
      if (!blob) throw bad(`${where} is not listed in the manifest`);
      if (staged.has(blob.digest)) throw bad(`${where} appears twice`);
      if (h.size !== blob.size) throw bad(`${where} has ${h.size} bytes, the manifest says ${blob.size}`);
      const path = join(o.staging, hexOf(blob.digest));
      const hash = createHash('sha256');
      let got = 0;
      const out: FileHandle = await open(path, 'wx', 0o644);
      try {
        try {
          for await (const c of entry) {
            const chunk = c as Buffer;
            hash.update(chunk);
            got += chunk.length;
            await out.write(chunk).catch((e: NodeJS.ErrnoException) => {
              throw e.code === 'ENOSPC' || e.code === 'EDQUOT'
                ? new VmwuError('NO_SPACE', `the store ran out of disk space while staging ${name} (${blob.size} bytes)`, 'free space (vmwu gc removes what nothing uses) or point VMWU_HOME at a bigger disk; the store is unchanged')
                : e;
            });
            o.onProgress?.(chunk.length);
          }
        } catch (e) {
          throw tarError(e, `inside ${name}`);
        }
      } finally {
        await out.close();
      }
      staged.set(blob.digest, path);
      if (got !== blob.size) throw bad(`the bundle is truncated: ${name} has ${got} of ${blob.size} bytes`);
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== blob.digest) throw bad(`${blob.role} blob ${blob.digest} is corrupt: its content hashes to ${actual}`);
      bytes += got;
    }

    if (!manifest) throw bad(fileSize === 0 ? 'the bundle is empty' : `${o.file} holds no ${MANIFEST_NAME}`, 'this file is not a vmwu bundle, or it is damaged');
    const missing = manifest.blobs.filter((b) => !staged.has(b.digest)).map((b) => `${b.role} ${b.digest.slice(0, 19)}`);
    if (ovf === undefined) missing.unshift(OVF_NAME);
    if (missing.length) throw bad(`the bundle is truncated or incomplete: ${missing.length} entr${missing.length === 1 ? 'y' : 'ies'} missing (${missing.join(', ')})`);
    await checkUnusedBytes(fh, spans, next, fileSize);
    return { manifest, ovf: ovf!, staged, bytes };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    ex.destroy();
    rs.destroy();
    await fh.close();
  }
}

/**
 * What tar readers skip: the two checksum-field bytes they do not parse, the padding
 * after each entry, and the end-of-archive marker. Checked here so that a changed byte
 * anywhere in the file is refused, and a file cut right after an entry is seen as cut.
 */
async function checkUnusedBytes(fh: FileHandle, spans: Span[], end: number, fileSize: number): Promise<void> {
  const buf = Buffer.alloc(64 * 1024);
  const zero = async (from: number, to: number, what: string) => {
    for (let pos = from; pos < to;) {
      const n = Math.min(buf.length, to - pos);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      if (bytesRead !== n) throw bad(`the bundle is truncated inside ${what}`);
      const i = buf.subarray(0, n).findIndex((b) => b !== 0);
      if (i !== -1) throw bad(`the bundle has a changed byte at ${pos + i}, in ${what}`);
      pos += n;
    }
  };
  for (const s of spans) {
    const { bytesRead } = await fh.read(buf, 0, BLOCK, s.header);
    // tar-stream writes the checksum as six octal digits, a space and a NUL; readers parse only the digits.
    if (bytesRead !== BLOCK || !/^[0-7]{6} $/.test(buf.toString('latin1', 148, 155)) || buf[155] !== 0) {
      throw bad(`the tar header of ${JSON.stringify(s.name)} at byte ${s.header} is corrupt (checksum field)`);
    }
    await zero(s.data + s.size, s.data + padded(s.size), `the padding after ${s.name}`);
  }
  if (fileSize < end + 2 * BLOCK) throw bad(`the bundle is truncated: the end-of-archive marker is missing (${fileSize} bytes, expected at least ${end + 2 * BLOCK})`);
  await zero(end, fileSize, 'the end-of-archive marker');
}
