import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import tar from 'tar-stream';
import { collectOutputs, type CollectOptions } from '../../../src/run/collect.js';
import { VmwuError } from '../../../src/errors.js';
import { fixTarChecksums } from '../../fuzz/tar-checksums.js';

type Entry = Partial<tar.Header> & { name: string; content?: string | Buffer };

const GiB = 1024 ** 3;
const temps: string[] = [];
after(async () => { await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))); });

/** Builds a tar in memory; tar-stream's pack writes whatever header we ask for, malicious or not. */
async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of pack) chunks.push(c as Buffer); })();
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content !== undefined) pack.entry(h, content, cb);
      else pack.entry({ type: 'directory', ...h }, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A fresh parent dir holding the disk image, the output dir and a "victim" dir escapes would hit. */
async function setup(archive: Buffer, diskSize?: number) {
  const parent = await mkdtemp(join(tmpdir(), 'vmwu-collect-'));
  temps.push(parent);
  const source = join(parent, 'disk.raw');
  const outDir = join(parent, 'out');
  const victim = join(parent, 'victim');
  await mkdir(victim);
  await writeFile(source, archive);
  if (diskSize !== undefined) await truncate(source, diskSize);
  return { parent, source, outDir, victim };
}

async function collect(archive: Buffer, extra: Partial<CollectOptions> = {}, diskSize?: number) {
  const env = await setup(archive, diskSize);
  const result = await collectOutputs({ source: env.source, outDir: env.outDir, maxBytes: 1 << 20, ...extra });
  return { ...env, result };
}

/** Expects a rejection and checks that nothing was left behind, inside or outside outDir. */
async function rejects(archive: Buffer, code: string, message: RegExp, extra: Partial<CollectOptions> = {}, diskSize?: number) {
  const env = await setup(archive, diskSize);
  await assert.rejects(collectOutputs({ source: env.source, outDir: env.outDir, maxBytes: 1 << 20, ...extra }), (e: unknown) => {
    assert.ok(e instanceof VmwuError, `not a VmwuError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.ok(e.hint);
    return true;
  });
  assert.deepEqual((await readdir(env.parent)).sort(), ['disk.raw', 'out', 'victim']);
  assert.deepEqual(await readdir(env.victim), []);
  assert.deepEqual(await readdir(env.outDir), []);
  return env;
}

const ok: Entry[] = [
  { name: 'meta/exit_code', content: '0\n' },
  { name: 'work/', type: 'directory' },
  { name: 'work/ok.txt', content: 'fine' },
];

describe('collectOutputs', () => {
  it('extracts files, nested dirs and meta', async () => {
    const archive = await makeTar([
      { name: 'meta/', type: 'directory' },
      { name: 'meta/exit_code', content: '0\n' },
      { name: 'meta/timings', content: 'wall 1.5\n' },
      { name: 'work/', type: 'directory' },
      { name: 'work/a.txt', content: 'hello', mode: 0o4755 },
      { name: 'work/sub/deep/b.bin', content: Buffer.alloc(1000, 7), mode: 0o400 },
      { name: 'work/sub/empty/', type: 'directory', mode: 0o1777 },
      { name: 'work/link', type: 'symlink', linkname: 'sub/deep/b.bin' },
      { name: 'work/sub/up', type: 'symlink', linkname: '../a.txt' },
    ]);
    const { outDir, result } = await collect(archive);
    assert.deepEqual(result.meta, { exit_code: '0\n', timings: 'wall 1.5\n' });
    assert.deepEqual(result.files, [{ path: 'work/a.txt', size: 5 }, { path: 'work/sub/deep/b.bin', size: 1000 }]);
    assert.equal(result.bytes, 1005);
    assert.deepEqual(await readdir(outDir), ['work']);
    assert.equal(await readFile(join(outDir, 'work/a.txt'), 'utf8'), 'hello');
    assert.deepEqual(await readFile(join(outDir, 'work/sub/deep/b.bin')), Buffer.alloc(1000, 7));
    assert.equal((await stat(join(outDir, 'work/a.txt'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(outDir, 'work/sub/deep/b.bin'))).mode & 0o7000, 0);
    assert.equal((await stat(join(outDir, 'work/sub/deep/b.bin'))).mode & 0o600, 0o600);
    assert.equal((await stat(join(outDir, 'work/sub/empty'))).mode & 0o7000, 0);
    assert.equal(await readlink(join(outDir, 'work/link')), 'sub/deep/b.bin');
    assert.equal(await readFile(join(outDir, 'work/sub/up'), 'utf8'), 'hello');
  });

  it('normalises a leading ./ on every name', async () => {
    const archive = await makeTar([
      { name: './', type: 'directory' },
      { name: './meta/', type: 'directory' },
      { name: './meta/exit_code', content: '3\n' },
      { name: './work/', type: 'directory' },
      { name: './work/x/y.txt', content: 'y' },
    ]);
    const { outDir, result } = await collect(archive);
    assert.deepEqual(result.meta, { exit_code: '3\n' });
    assert.deepEqual(result.files, [{ path: 'work/x/y.txt', size: 1 }]);
    assert.equal(await readFile(join(outDir, 'work/x/y.txt'), 'utf8'), 'y');
  });

  it('writes only files matching the keep globs, still validating the rest', async () => {
    const entries: Entry[] = [
      ...ok,
      { name: 'work/skipped/', type: 'directory' },
      { name: 'work/skipped/big.dat', content: 'x'.repeat(100) },
      { name: 'work/res/', type: 'directory' },
      { name: 'work/res/r.csv', content: 'a,b' },
      { name: 'work/res/.hidden.csv', content: 'h' },
    ];
    const { outDir, result } = await collect(await makeTar(entries), { keep: ['res/**/*.csv', 'ok.txt'] });
    assert.deepEqual(result.files.map((f) => f.path), ['work/ok.txt', 'work/res/r.csv', 'work/res/.hidden.csv']);
    assert.equal(result.bytes, 8);
    assert.deepEqual((await readdir(join(outDir, 'work'))).sort(), ['ok.txt', 'res']);
    // skipped entries still count towards the size cap and are still validated
    await rejects(await makeTar(entries), 'OUTPUT_TOO_LARGE', /"work\/skipped\/big\.dat"/, { keep: ['ok.txt'], maxBytes: 50 });
    await rejects(await makeTar([...entries, { name: 'work/dev', type: 'character-device', devmajor: 1, devminor: 3 }]),
      'UNSAFE_OUTPUT', /"work\/dev"/, { keep: ['ok.txt'] });
  });

  it('stops reading at the end-of-archive marker of a 1 GiB sparse disk', async () => {
    const { outDir, result } = await collect(await makeTar(ok), {}, GiB);
    assert.ok(result.sourceBytesRead < 1 << 20, `read ${result.sourceBytesRead} bytes`);
    assert.equal(await readFile(join(outDir, 'work/ok.txt'), 'utf8'), 'fine');
  });

  it('ignores garbage after the end-of-archive marker', async () => {
    const archive = Buffer.concat([await makeTar(ok), Buffer.alloc(4096, 0xab)]);
    const { result } = await collect(archive);
    assert.deepEqual(result.files, [{ path: 'work/ok.txt', size: 4 }]);
  });

  it('with dropUnsafeLinks: leaves out links out of work/, writes the rest, and refuses paths through a dropped link', async () => {
    const drop = { dropUnsafeLinks: true };
    const { outDir, result } = await collect(await makeTar([...ok, { name: 'work/m/abs', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'work/m/up', type: 'symlink', linkname: '../../x' }, { name: 'work/m/in', type: 'symlink', linkname: '../ok.txt' }]), drop);
    assert.deepEqual(result.droppedLinks, ['m/abs', 'm/up']);
    assert.equal(await readlink(join(outDir, 'work/m/in')), '../ok.txt');
    await assert.rejects(lstat(join(outDir, 'work/m/abs')), { code: 'ENOENT' });
    await rejects(await makeTar([...ok, { name: 'work/l', type: 'symlink', linkname: '/etc' }, { name: 'work/l/x', content: 'x' }]), 'UNSAFE_OUTPUT',
      /"work\/l\/x" rejected: path goes through a symlink/, drop);
  });

  describe('rejects', () => {
    const unsafe: [string, Entry[], RegExp][] = [
      ['a ../ path', [{ name: '../escape', content: 'x' }], /"\.\.\/escape" rejected: path leaves the output directory/],
      ['a .. inside work', [{ name: 'work/a/../../../escape', content: 'x' }], /"work\/a\/\.\.\/\.\.\/\.\.\/escape"/],
      ['an absolute path', [{ name: '/abs', content: 'x' }], /"\/abs" rejected: absolute path/],
      ['a symlink to /etc', [{ name: 'work/etc', type: 'symlink', linkname: '/etc' }], /"work\/etc" rejected: .*absolute/],
      ['a symlink escaping via ../../x', [{ name: 'work/a/l', type: 'symlink', linkname: '../../x' }], /"work\/a\/l" rejected: .*leaves work/],
      ['a symlink with .. after a name', [{ name: 'work/l', type: 'symlink', linkname: 'd/../..' }], /"work\/l"/],
      ['a file through a symlink to .', [{ name: 'work/l', type: 'symlink', linkname: '.' }, { name: 'work/l/x', content: 'x' }],
        /"work\/l\/x" rejected: path goes through a symlink/],
      ['a dir through a symlink', [{ name: 'work/d/', type: 'directory' }, { name: 'work/l', type: 'symlink', linkname: 'd' },
        { name: 'work/l/sub/', type: 'directory' }], /"work\/l\/sub\/"/],
      ['a hard link', [{ name: 'work/h', type: 'link', linkname: 'work/ok.txt' }], /"work\/h" rejected: entry type link/],
      ['a character device', [{ name: 'work/c', type: 'character-device', devmajor: 1, devminor: 3 }], /"work\/c".*character-device/],
      ['a block device', [{ name: 'work/b', type: 'block-device', devmajor: 8, devminor: 0 }], /"work\/b".*block-device/],
      ['a fifo', [{ name: 'work/f', type: 'fifo' }], /"work\/f".*fifo/],
      ['a NUL byte in a pax name', [{ name: 'work/a\0b', content: 'x', pax: {} }], /NUL/],
      ['an empty name', [{ name: '', content: 'x' }], /"" rejected: empty name/],
    ];
    for (const [what, entries, message] of unsafe) {
      it(`${what} (UNSAFE_OUTPUT)`, async () => { await rejects(await makeTar([...ok, ...entries]), 'UNSAFE_OUTPUT', message); });
    }

    it('a symlink into the victim dir and a file through it, leaving the victim untouched', async () => {
      const env = await setup(Buffer.alloc(0));
      const archive = await makeTar([...ok, { name: 'work/l', type: 'symlink', linkname: env.victim }, { name: 'work/l/x', content: 'pwned' }]);
      await rejects(archive, 'UNSAFE_OUTPUT', /"work\/l" rejected/);
      const abs = await makeTar([...ok, { name: `${env.victim}/x`, content: 'pwned' }]);
      await rejects(abs, 'UNSAFE_OUTPUT', /absolute path/);
      assert.deepEqual(await readdir(env.victim), []);
    });

    const bad: [string, Entry[], RegExp][] = [
      ['an unexpected top-level entry', [{ name: 'etc/passwd', content: 'x' }], /"etc\/passwd"/],
      ['work as a symlink', [{ name: 'work', type: 'symlink', linkname: '.' }], /"work"/],
      ['a nested meta file', [{ name: 'meta/a/b', content: 'x' }], /"meta\/a\/b"/],
      ['a file replacing a dir', [{ name: 'work/d/', type: 'directory' }, { name: 'work/d', content: 'x' }], /"work\/d".*overwrite an earlier directory/],
      ['a duplicate file', [{ name: 'work/ok.txt', content: 'again' }], /"work\/ok\.txt".*overwrite an earlier file/],
      ['a symlink replacing an implicit dir', [{ name: 'work/a/f', content: 'x' }, { name: 'work/a', type: 'symlink', linkname: 'b' }],
        /"work\/a".*overwrite an earlier directory/],
      ['a file below a file', [{ name: 'work/ok.txt/x', content: 'x' }], /"work\/ok\.txt\/x".*through a file/],
    ];
    for (const [what, entries, message] of bad) {
      it(`${what} (BAD_OUTPUT)`, async () => { await rejects(await makeTar([...ok, ...entries]), 'BAD_OUTPUT', message); });
    }

    it('archives over the byte cap, from the header and cumulatively', async () => {
      await rejects(await makeTar([...ok, { name: 'work/big', content: Buffer.alloc(11) }]), 'OUTPUT_TOO_LARGE', /"work\/big".*exceed 14 bytes/, { maxBytes: 14 });
      await rejects(await makeTar([...ok, { name: 'work/x', content: 'abcdef' }, { name: 'work/y', content: 'abcdef' }]),
        'OUTPUT_TOO_LARGE', /"work\/y"/, { maxBytes: 16 });
      await rejects(await makeTar([{ name: 'meta/huge', content: Buffer.alloc(65 * 1024) }]), 'OUTPUT_TOO_LARGE', /"meta\/huge"/);
    });

    it('archives over the entry cap', async () => {
      await rejects(await makeTar([...ok, { name: 'work/x', content: 'x' }]), 'OUTPUT_TOO_LARGE', /more than 3 entries/, { maxEntries: 3 });
    });

    it('a truncated archive', async () => {
      const full = await makeTar([...ok, { name: 'work/big', content: Buffer.alloc(5000, 1) }]);
      await rejects(full.subarray(0, full.length - 1024 - 2000), 'BAD_OUTPUT', /truncated/);
      await rejects(full.subarray(0, full.length - 1024), 'BAD_OUTPUT', /truncated: no end-of-archive marker/);
      await rejects(full.subarray(0, 300), 'BAD_OUTPUT', /truncated/);
    });

    it('an empty disk', async () => {
      await rejects(Buffer.alloc(0), 'BAD_OUTPUT', /^the guest wrote no output archive$/, {}, GiB);
      await rejects(Buffer.alloc(0), 'BAD_OUTPUT', /^the guest wrote no output archive$/);
    });

    it('a corrupt header', async () => {
      const archive = await makeTar(ok);
      archive[1024 + 10] ^= 0xff; // second header (work/) no longer matches its checksum
      await rejects(archive, 'BAD_OUTPUT', /corrupt/);
    });

    // Found by fuzzing (test/fuzz/corpus/collect/regress-unreadable-size.tar): tar-stream gave size null
    // and never ended the entry, so collection never settled (the process exited 13, or hung).
    it('a size field tar-stream cannot read (base-256 without its 0x80 mark)', async () => {
      const archive = await makeTar(ok);
      archive[124] = 0x98; // the size field of the first entry, meta/exit_code
      await rejects(fixTarChecksums(archive), 'BAD_OUTPUT', /"meta\/exit_code" rejected: its size field is not a number/);
    });

    it('a pax header followed by nothing but zeros, without reading the whole disk', async () => {
      const archive = await makeTar([{ name: 'work/x', content: '', pax: { comment: 'x' } }]);
      await rejects(archive.subarray(0, 1024), 'BAD_OUTPUT', /headers without an entry/, {}, 64 << 20);
    });

    it('an output dir that already has work/', async () => {
      const env = await setup(await makeTar(ok));
      await mkdir(join(env.outDir, 'work'), { recursive: true });
      await writeFile(join(env.outDir, 'work/old'), 'old');
      await assert.rejects(collectOutputs({ source: env.source, outDir: env.outDir, maxBytes: 100 }), { code: 'BAD_OUTPUT' });
      assert.deepEqual(await readdir(env.outDir), ['work']);
      assert.deepEqual(await readdir(join(env.outDir, 'work')), ['old']);
    });
  });

  for (const [tool, format] of [['tar', 'gnu'], ['tar', 'posix'], ['busybox', '']] as const) {
    it(`reads archives written by ${tool} ${format}`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'vmwu-collect-src-'));
      temps.push(dir);
      const long = `work/${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(80)}.txt`;
      await mkdir(join(dir, 'meta'));
      await mkdir(join(dir, long, '..'), { recursive: true });
      await writeFile(join(dir, 'meta/exit_code'), '0\n');
      await writeFile(join(dir, 'work/result.txt'), 'result');
      await writeFile(join(dir, long), 'long');
      await symlink('result.txt', join(dir, 'work/link'));
      const disk = join(dir, 'disk.raw');
      try {
        const args = ['-C', dir, '-cf', disk, ...(format ? [`--format=${format}`] : []), 'meta', 'work'];
        execFileSync(tool, tool === 'busybox' ? ['tar', ...args] : args, { stdio: 'pipe' });
      } catch {
        t.skip(`${tool} tar unavailable`);
        return;
      }
      const { outDir, result } = await collect(await readFile(disk), {}, 64 << 20);
      assert.deepEqual(result.meta, { exit_code: '0\n' });
      assert.deepEqual(result.files.map((f) => f.path).sort(), [long, 'work/result.txt']);
      assert.equal(await readFile(join(outDir, long), 'utf8'), 'long');
      assert.ok((await lstat(join(outDir, 'work/link'))).isSymbolicLink());
      assert.equal(await readFile(join(outDir, 'work/link'), 'utf8'), 'result');
    });
  }
});
