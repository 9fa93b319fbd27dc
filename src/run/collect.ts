import { constants } from 'node:fs';
import { lstat, chmod, mkdir, mkdtemp, open, rename, rm, symlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import picomatch from 'picomatch';
import tar from 'tar-stream';
import { VmwuError } from '../errors.js';
import { syncDir, syncTree } from '../store/durable.js';

/**
 * Extracts the tar archive a guest wrote onto its raw output disk. The archive is
 * untrusted: every entry is validated before anything touches the host file system,
 * everything lands in a staging dir inside outDir, and only a fully valid archive is
 * renamed into place, so a rejected archive leaves nothing behind. What is renamed
 * into place has been fsynced, so work/ under its name is complete after a power loss too.
 */

export interface CollectOptions {
  /** Raw disk image holding the tar at offset 0 (followed by zeros or garbage). */
  source: string;
  /** Work files go to <outDir>/work; created if missing. */
  outDir: string;
  /** Cap on the total size of all file contents in the archive (meta and skipped files included). */
  maxBytes: number;
  /** Cap on the number of entries; default 100_000. */
  maxEntries?: number;
  /** picomatch globs matched against the path relative to work/; only matching files and symlinks are written. */
  keep?: string[];
  /**
   * Leave out symlinks that are absolute or leave work/, instead of refusing the whole
   * archive: for jobs whose work dir holds trees staged from the host, links and all
   * (docker run's bind mounts). Such a link is still never written, and no path may
   * go through it.
   */
  dropUnsafeLinks?: boolean;
}

export interface CollectResult {
  /** meta/<name> -> content (utf8). */
  meta: Record<string, string>;
  /** Written regular files, paths relative to outDir (e.g. "work/a/b.txt"), in archive order. */
  files: { path: string; size: number }[];
  /** Total bytes written. */
  bytes: number;
  /** Bytes read from the source; stays small for a huge sparse image because reading stops at the end marker. */
  sourceBytesRead: number;
  /** With `dropUnsafeLinks`: the links left out, relative to work/. */
  droppedLinks: string[];
}

const BLOCK = 512;
const META_CAP = 64 * 1024;
// tar-stream accepts pax/GNU long headers of up to 4 MiB each; allow a few of them between two entries.
const MAX_HEADER_GAP = 20 * 1024 * 1024;

type Kind = 'file' | 'directory' | 'symlink';
type Header = tar.Header & { byteOffset?: number };

const HINTS: Record<string, string> = {
  UNSAFE_OUTPUT: 'the job left something unsafe in /job/work (absolute or escaping symlink, device, hard link); nothing was extracted',
  OUTPUT_TOO_LARGE: 'make the job write less, select files with keep globs, or raise the output limits',
  BAD_OUTPUT: 'the output disk does not hold a complete archive; check the job log for a guest crash or a full output disk',
};

function fail(code: keyof typeof HINTS, message: string): VmwuError {
  return new VmwuError(code, message, HINTS[code]);
}

function reject(code: keyof typeof HINTS, name: string, why: string): VmwuError {
  return fail(code, `output archive entry ${JSON.stringify(name)} rejected: ${why}`);
}

export async function collectOutputs(opts: CollectOptions): Promise<CollectResult> {
  await mkdir(opts.outDir, { recursive: true });
  const finalWork = join(opts.outDir, 'work');
  if (await lstat(finalWork).then(() => true, () => false)) {
    throw new VmwuError('BAD_OUTPUT', `${finalWork} already exists`, 'collect into a fresh output directory or remove the old results first');
  }
  const staging = await mkdtemp(join(opts.outDir, '.collect-'));
  try {
    const root = join(staging, 'work');
    await mkdir(root, { mode: 0o755 });
    const result = await extract(opts, root);
    await syncTree(root);
    await rename(root, finalWork);
    await syncDir(opts.outDir);
    return result;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function extract(opts: CollectOptions, root: string): Promise<CollectResult> {
  const maxEntries = opts.maxEntries ?? 100_000;
  const isKept = opts.keep ? picomatch(opts.keep, { dot: true }) : () => true;
  const meta = new Map<string, string>();
  const files: CollectResult['files'] = [];
  const droppedLinks: string[] = [];
  const seen = new Map<string, Kind>(); // archive view of work/, independent of keep
  const realDirs = new Set<string>([root]);
  let entries = 0, declared = 0, written = 0, probed = 0;

  const fh = await open(opts.source, 'r');
  const rs = fh.createReadStream({ start: 0, autoClose: false });
  const ex = tar.extract();
  const it = ex[Symbol.asyncIterator]();
  // tar-stream treats zero blocks as padding and keeps reading to EOF, so we check for the
  // end marker ourselves between entries; this caps what a stray pax/long header followed by
  // zeros can make it read (it never emits an entry, so the end check never runs).
  let readLimit = MAX_HEADER_GAP, passed = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      passed += chunk.length;
      cb(passed > readLimit ? fail('BAD_OUTPUT', `output archive has more than ${MAX_HEADER_GAP} bytes of headers without an entry`) : null, chunk);
    },
  });
  // An entry's stream may be destroyed before we start reading it, and then only says
  // "destroyed"; remember the real cause from upstream.
  let upstream: Error | undefined, sourceEnded = false;
  const onUpstreamError = (e: Error) => { upstream ??= e; ex.destroy(e); };
  rs.on('error', onUpstreamError).on('end', () => { sourceEnded = true; });
  tap.on('error', onUpstreamError);
  rs.pipe(tap).pipe(ex);

  const probe = async (pos: number): Promise<boolean> => {
    const buf = Buffer.alloc(BLOCK);
    const { bytesRead } = await fh.read(buf, 0, BLOCK, pos);
    probed += bytesRead;
    const zero = buf.every((b) => b === 0);
    if (pos === 0 && zero) throw fail('BAD_OUTPUT', 'the guest wrote no output archive');
    if (bytesRead < BLOCK) throw fail('BAD_OUTPUT', `output archive is truncated: no end-of-archive marker before byte ${pos + bytesRead}`);
    return zero; // one zero block ends the archive, as in GNU tar and busybox
  };

  // Reads an entry's data, counting as we go; `sink` gets each chunk (or nothing when skipped).
  const consume = async (entry: AsyncIterable<unknown>, name: string, size: number, sink?: (b: Buffer) => Promise<void>) => {
    let got = 0;
    try {
      for await (const data of entry) {
        const chunk = data as Buffer;
        got += chunk.length;
        if (got > size) throw reject('BAD_OUTPUT', name, 'more data than its header declares');
        if (sink) await sink(chunk);
      }
    } catch (e) {
      if (e instanceof VmwuError || isSystemError(e)) throw e;
      throw upstream ?? (sourceEnded ? fail('BAD_OUTPUT', `output archive is truncated inside entry ${JSON.stringify(name)}`) : archiveError(e));
    }
    if (got !== size) throw fail('BAD_OUTPUT', `output archive is truncated inside entry ${JSON.stringify(name)}`);
  };

  const ensureDir = async (dir: string, name: string) => {
    if (realDirs.has(dir)) return;
    const st = await lstat(dir).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return null; throw e; });
    if (st === null) await mkdir(dir, { mode: 0o755 });
    else if (!st.isDirectory()) throw reject('UNSAFE_OUTPUT', name, 'path goes through a symlink or file on disk');
    realDirs.add(dir);
  };

  const handle = async (h: Header, entry: AsyncIterable<unknown>) => {
    const name = h.name;
    if (++entries > maxEntries) throw fail('OUTPUT_TOO_LARGE', `output archive has more than ${maxEntries} entries`);
    // tar-stream reads a size field it cannot parse (base-256 without its 0x80/0xff mark) as null,
    // and then never ends that entry's stream: reading it would wait forever.
    if (!Number.isSafeInteger(h.size) || h.size! < 0) throw reject('BAD_OUTPUT', name, 'its size field is not a number');
    const kind = h.type === 'file' || h.type === 'directory' || h.type === 'symlink' ? h.type : null;
    if (kind === null) throw reject('UNSAFE_OUTPUT', name, `entry type ${h.type ?? 'unknown'} is not allowed`);
    const parts = splitName(name);
    const size = h.size ?? 0;
    if (kind !== 'file' && size !== 0) throw reject('BAD_OUTPUT', name, `a ${kind} must not have data`);
    declared += size;
    if (declared > opts.maxBytes) throw reject('OUTPUT_TOO_LARGE', name, `archive contents exceed ${opts.maxBytes} bytes`);
    const [top, ...rest] = parts;

    if (top === undefined || rest.length === 0) { // "./", "meta/", "work/"
      if (kind !== 'directory' || (top !== undefined && top !== 'meta' && top !== 'work')) {
        throw reject('BAD_OUTPUT', name, 'the top level may only hold the meta/ and work/ directories');
      }
      return;
    }
    if (top === 'meta') {
      const key = rest.join('/');
      if (kind !== 'file' || rest.length !== 1) throw reject('BAD_OUTPUT', name, 'meta/ may only hold plain files');
      if (size > META_CAP) throw reject('OUTPUT_TOO_LARGE', name, `meta files are capped at ${META_CAP} bytes`);
      if (meta.has(key)) throw reject('BAD_OUTPUT', name, 'duplicate entry');
      const chunks: Buffer[] = [];
      await consume(entry, name, size, async (b) => { chunks.push(b); });
      meta.set(key, Buffer.concat(chunks).toString('utf8'));
      return;
    }
    if (top !== 'work') throw reject('BAD_OUTPUT', name, 'the top level may only hold the meta/ and work/ directories');

    const rel = rest.join('/');
    for (let i = 1; i < rest.length; i++) {
      const prefix = rest.slice(0, i).join('/');
      const parent = seen.get(prefix);
      if (parent === 'symlink') throw reject('UNSAFE_OUTPUT', name, 'path goes through a symlink');
      if (parent === 'file') throw reject('BAD_OUTPUT', name, 'path goes through a file');
      // Implicit parents count as directories, so a later entry cannot turn them into symlinks.
      if (parent === undefined) seen.set(prefix, 'directory');
    }
    const prev = seen.get(rel);
    if (prev !== undefined && (prev !== 'directory' || kind !== 'directory')) {
      throw reject('BAD_OUTPUT', name, `would overwrite an earlier ${prev}`);
    }
    seen.set(rel, kind);
    if (kind === 'symlink') {
      try {
        checkLink(name, rest, h.linkname ?? '');
      } catch (e) {
        if (!opts.dropUnsafeLinks) throw e;
        droppedLinks.push(rel);
        await consume(entry, name, size);
        return;
      }
    }

    if (kind === 'directory' ? opts.keep !== undefined : !isKept(rel)) {
      await consume(entry, name, size);
      return;
    }
    let dir = root;
    for (const p of rest.slice(0, -1)) await ensureDir((dir = join(dir, p)), name);
    const target = join(dir, rest[rest.length - 1]!);
    if (kind === 'directory') {
      await ensureDir(target, name);
      // The guest's mode, within what this process's umask allows (a store's keeps its outputs private: src/store/privacy.ts).
      await chmod(target, (((h.mode ?? 0o755) & 0o755) | 0o700) & ~process.umask());
    } else if (kind === 'symlink') {
      await symlink(h.linkname!, target);
    } else {
      // O_EXCL + O_NOFOLLOW: never follow or replace whatever might already be there.
      const out: FileHandle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        ((h.mode ?? 0o644) & 0o755) | 0o600);
      try {
        await consume(entry, name, size, async (b) => {
          written += b.length;
          if (written > opts.maxBytes) throw reject('OUTPUT_TOO_LARGE', name, `archive contents exceed ${opts.maxBytes} bytes`);
          await out.write(b);
        });
      } finally {
        await out.close();
      }
      files.push({ path: `work/${rel}`, size });
    }
  };

  try {
    let next = 0; // offset of the next header block
    while (!(await probe(next))) {
      readLimit = next + MAX_HEADER_GAP;
      const r = await it.next().catch((e: unknown) => { throw archiveError(e); });
      if (r.done) throw fail('BAD_OUTPUT', 'output archive is truncated: no end-of-archive marker');
      readLimit = Infinity; // tar-stream holds back further headers until this entry is consumed
      const h = r.value.header as Header;
      try {
        await handle(h, r.value);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENAMETOOLONG') throw reject('BAD_OUTPUT', h.name, 'name too long');
        throw e;
      }
      if (h.byteOffset === undefined) throw new Error('tar-stream did not report the entry offset');
      next = h.byteOffset + Math.ceil((h.size ?? 0) / BLOCK) * BLOCK;
    }
    return { meta: Object.fromEntries(meta), files, bytes: written, sourceBytesRead: rs.bytesRead + probed, droppedLinks };
  } finally {
    ex.destroy();
    tap.destroy();
    rs.destroy();
    await fh.close();
  }
}

/** Splits an entry name into components, dropping a leading "./" and a trailing "/". */
function splitName(name: string): string[] {
  if (name === '') throw reject('UNSAFE_OUTPUT', name, 'empty name');
  if (name.includes('\0')) throw reject('UNSAFE_OUTPUT', name, 'name contains a NUL byte');
  if (name.startsWith('/')) throw reject('UNSAFE_OUTPUT', name, 'absolute path');
  let n = name.startsWith('./') ? name.slice(2) : name;
  if (n.endsWith('/')) n = n.slice(0, -1);
  if (n === '' || n === '.') return [];
  const parts = n.split('/');
  if (parts.includes('..')) throw reject('UNSAFE_OUTPUT', name, 'path leaves the output directory');
  if (parts.some((p) => p === '' || p === '.')) throw reject('UNSAFE_OUTPUT', name, 'empty or "." path component');
  return parts;
}

/**
 * A symlink may only point inside work/. Its ".." components must all come first: they then
 * climb real directories (entries under symlinks are rejected), so counting them against the
 * link's depth is exact. "a/../.." could climb out of a symlinked "a", which a string check
 * would miss, so it is rejected outright.
 */
function checkLink(name: string, rest: string[], target: string): void {
  if (target === '' || target.includes('\0')) throw reject('UNSAFE_OUTPUT', name, 'symlink has an empty or NUL-containing target');
  if (target.startsWith('/')) throw reject('UNSAFE_OUTPUT', name, `symlink target ${JSON.stringify(target)} is absolute`);
  const parts = target.split('/').filter((p) => p !== '' && p !== '.');
  const ups = parts.findIndex((p) => p !== '..');
  const climbs = ups === -1 ? parts.length : ups;
  if (parts.slice(climbs).includes('..')) throw reject('UNSAFE_OUTPUT', name, `symlink target ${JSON.stringify(target)} has ".." after a name`);
  if (climbs > rest.length - 1) throw reject('UNSAFE_OUTPUT', name, `symlink target ${JSON.stringify(target)} leaves work/`);
}

function archiveError(e: unknown): unknown {
  if (e instanceof VmwuError || !(e instanceof Error) || isSystemError(e)) return e;
  if (/unexpected end/i.test(e.message)) return fail('BAD_OUTPUT', 'output archive is truncated');
  return new VmwuError('BAD_OUTPUT', `output archive is corrupt: ${e.message}`, HINTS.BAD_OUTPUT, { cause: e });
}

function isSystemError(e: unknown): boolean {
  return typeof (e as NodeJS.ErrnoException | undefined)?.errno === 'number';
}
