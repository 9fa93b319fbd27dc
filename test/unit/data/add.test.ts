import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { addDataset, scanTree } from '../../../src/data/add.js';
import { erofsImageBytes } from '../../../src/data/image-size.js';
import { listDatasets, requireDataset } from '../../../src/data/records.js';
import { parseDatasetRef } from '../../../src/data/ref.js';
import { isVmwuError } from '../../../src/errors.js';
import { freeBytes } from '../../../src/store/free-space.js';
import { openStore } from '../../../src/store/store.js';

/** `vmwu data add` against a real store and the real mkfs.erofs. */
const made: string[] = [];
after(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
};
const scratchStore = () => openStore(tempDir('vmwu-data-store-'));
function tree(files: Record<string, string>): string {
  const dir = tempDir('vmwu-data-src-');
  for (const [f, body] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), body);
  }
  return dir;
}
const code = (c: string) => (e: unknown) => isVmwuError(e) && e.code === c;

test('dataset names: name[:version], "latest" by default; a name that is not a directory name is refused with the field', () => {
  assert.deepEqual(parseDatasetRef('uniprot'), { name: 'uniprot', version: 'latest' });
  assert.deepEqual(parseDatasetRef('pdb70:2024.1'), { name: 'pdb70', version: '2024.1' });
  for (const bad of ['', 'Up', '../x', 'a/b', '.hidden', 'x:', 'x:a b']) {
    assert.throws(() => parseDatasetRef(bad, 'vmwu.yaml:3 data[0]'), (e: unknown) => isVmwuError(e) && e.code === 'BAD_DATASET_NAME' && e.message.startsWith('vmwu.yaml:3 data[0]: '), bad);
  }
});

test('data add makes one erofs image per content: the same files give the same digest, another content under the same version is refused', async () => {
  const store = scratchStore();
  const src = tree({ 'a.txt': 'alpha\n', 'sub/b.txt': 'beta\n' });
  const first = await addDataset(store, src, parseDatasetRef('demo'));
  assert.equal(first.existed, false);
  assert.equal(first.dataset.files, 2);
  assert.equal(first.dataset.contentBytes, 11);
  assert.ok(store.blobs.has(first.dataset.digest));
  assert.equal(readFileSync(store.blobs.path(first.dataset.digest)).readUInt32LE(1024), 0xe0f5e1e2, 'an erofs superblock');
  const again = await addDataset(store, tree({ 'a.txt': 'alpha\n', 'sub/b.txt': 'beta\n' }), parseDatasetRef('demo'));
  assert.equal(again.existed, true, 'the same files elsewhere make the same image');
  assert.equal(again.dataset.digest, first.dataset.digest);
  await assert.rejects(addDataset(store, tree({ 'a.txt': 'changed\n' }), parseDatasetRef('demo')), code('DATASET_EXISTS'));
  assert.equal(requireDataset(store.db, parseDatasetRef('demo')).digest, first.dataset.digest, 'the registered one is untouched');
  const single = await addDataset(store, join(src, 'a.txt'), parseDatasetRef('demo:file'));
  assert.equal(single.dataset.files, 1);
  assert.deepEqual(listDatasets(store.db).map((d) => `${d.name}:${d.version}`), ['demo:latest', 'demo:file']);
  store.close();
});

test('data add refuses a missing path and a FIFO with the path, and registers nothing', async () => {
  const store = scratchStore();
  await assert.rejects(addDataset(store, '/nonexistent/db', parseDatasetRef('x')), (e: unknown) => isVmwuError(e) && e.code === 'DATA_UNREADABLE' && e.message.includes('/nonexistent/db'));
  const src = tree({ 'ok.txt': 'ok' });
  execFileSync('mkfifo', [join(src, 'pipe')]);
  await assert.rejects(addDataset(store, src, parseDatasetRef('x')), (e: unknown) => isVmwuError(e) && e.code === 'DATA_UNSUPPORTED' && e.message.includes(join(src, 'pipe')));
  assert.deepEqual(listDatasets(store.db), []);
  assert.throws(() => requireDataset(store.db, parseDatasetRef('x')), code('NO_DATASET'));
  store.close();
});

const MiB = 1024 * 1024;

/** A file of `size` bytes that is a hole but for a few bytes at these offsets. */
function sparseFile(path: string, size: number, writes: [number, string][]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [at, text] of writes) writeSync(fd, text, at);
  } finally {
    closeSync(fd);
  }
}

/** Whether the image holds the same bytes as `source` (a directory): read by the kernel when we may mount, else by fsck.erofs. */
function assertImageHolds(image: string, source: string, scratch: string): void {
  const mnt = join(scratch, 'mnt');
  mkdirSync(mnt);
  let mounted = false;
  if (process.getuid?.() === 0) mounted = spawnSync('mount', ['-t', 'erofs', '-o', 'loop,ro', image, mnt]).status === 0;
  try {
    const root = mounted ? mnt : join(scratch, 'extracted');
    if (!mounted) execFileSync('fsck.erofs', [`--extract=${root}`, '--no-preserve', image]);
    execFileSync('diff', ['-r', '--no-dereference', source, root]);
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
  }
}

test('a sparse file keeps its holes: a 300 MiB file of 12 KiB on disk makes an image and a blob of well under 1 MiB, which read back the same bytes', async () => {
  const store = scratchStore();
  const src = tree({ 'notes.txt': 'a small dense file\n' });
  const big = join(src, 'sparse.bin');
  sparseFile(big, 300 * MiB, [[0, 'head of the file'], [150 * MiB + 5, 'middle'], [300 * MiB - 4, 'tail']]);
  assert.ok(statSync(big).blocks * 512 <= 64 * 1024, 'the source is sparse');
  const r = await addDataset(store, src, parseDatasetRef('sparse'));
  const blob = store.blobs.path(r.dataset.digest);
  const st = statSync(blob);
  assert.equal(r.dataset.contentBytes, 300 * MiB + 19);
  assert.ok(r.dataset.imageBytes < MiB, `image ${r.dataset.imageBytes} bytes`);
  assert.ok(st.blocks * 512 < MiB, `blob takes ${st.blocks * 512} bytes on disk`);
  const scratch = mkdtempSync(join(tmpdir(), 'vmwu-data-check-'));
  try {
    assertImageHolds(blob, src, scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  // The same files make the same image, so the same digest.
  const again = await addDataset(store, src, parseDatasetRef('sparse'));
  assert.equal(again.existed, true);
  store.close();
});

test('a single sparse file is staged without filling its holes', async () => {
  const store = scratchStore();
  const dir = tempDir('vmwu-data-src-');
  sparseFile(join(dir, 'disk.img'), 64 * MiB, [[MiB, 'data']]);
  const r = await addDataset(store, join(dir, 'disk.img'), parseDatasetRef('one'));
  assert.equal(r.dataset.files, 1);
  assert.ok(statSync(store.blobs.path(r.dataset.digest)).blocks * 512 < MiB);
  store.close();
});

test('files without holes make the image they always did (plain layout): existing datasets keep their digests', async () => {
  const store = scratchStore();
  const src = tree({ 'a.txt': 'alpha\n', 'sub/b.bin': 'x'.repeat(3 * 4096 + 7) });
  const r = await addDataset(store, src, parseDatasetRef('dense'));
  const dir = tempDir('vmwu-data-plain-');
  execFileSync('mkfs.erofs', ['--quiet', '-T0', '-U', '6d8e2b2e-0000-4000-8000-000000000000', '--all-root', '-x', '-1', join(dir, 'img'), src]);
  assert.equal(readFileSync(store.blobs.path(r.dataset.digest)).equals(readFileSync(join(dir, 'img'))), true);
  store.close();
});

test('the size estimate is not below the image made: dense, sparse, many small files, links', async () => {
  const store = scratchStore();
  const many: Record<string, string> = {};
  for (let i = 0; i < 300; i++) many[`d${i % 7}/sub${i % 3}/file-with-a-longish-name-${i}.txt`] = `${i}\n`.repeat(i);
  const trees = [tree({ 'a.txt': 'alpha\n' }), tree(many), tree({ 'x.bin': 'y'.repeat(5 * MiB + 1) })];
  const sparse = tree({});
  sparseFile(join(sparse, 's.bin'), 100 * MiB, [[7, 'x'], [50 * MiB, 'y']]);
  symlinkSync('s.bin', join(sparse, 'link'));
  trees.push(sparse);
  for (const [i, t] of trees.entries()) {
    const stats = scanTree(t);
    const estimate = erofsImageBytes(stats, stats.holes);
    const r = await addDataset(store, t, parseDatasetRef(`t${i}`));
    assert.ok(estimate >= r.dataset.imageBytes, `tree ${i}: estimated ${estimate}, made ${r.dataset.imageBytes}`);
    assert.ok(estimate <= 2 * r.dataset.imageBytes + 256 * 1024, `tree ${i}: estimated ${estimate}, made ${r.dataset.imageBytes}: not far above`);
  }
  store.close();
});

test('not enough free space: refused with NO_SPACE naming the filesystem, the need and what is free, before anything is written', async () => {
  const store = scratchStore();
  const src = tree({ 'big.bin': 'z'.repeat(2 * MiB) });
  const asked: string[] = [];
  const err = await addDataset(store, src, parseDatasetRef('big'), {
    freeBytes: (p) => {
      asked.push(p);
      return 512 * 1024;
    },
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(isVmwuError(err) && err.code === 'NO_SPACE', String(err));
  assert.ok(err.message.includes(store.paths.tmp), err.message);
  assert.match(err.message, /needs about 2\.\d+ MiB/);
  assert.match(err.message, /512(\.0)? KiB free/);
  assert.match(err.hint ?? '', /vmwu gc/);
  assert.ok(asked.includes(store.paths.tmp));
  assert.deepEqual(readdirSync(store.paths.tmp), [], 'no work dir made');
  assert.deepEqual(readdirSync(store.blobs.dir), [], 'no blob');
  assert.deepEqual(listDatasets(store.db), []);
  // With the space there, the same call goes through.
  const ok = await addDataset(store, src, parseDatasetRef('big'), { freeBytes: () => 1024 * MiB });
  assert.equal(ok.existed, false);
  store.close();
});

test('a store on a small filesystem of its own (tmpfs, as root): a dense file too big is refused up front, a 300 MiB sparse file fits', { skip: process.getuid?.() !== 0 && 'needs root to mount a tmpfs' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-data-tmpfs-'));
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'vmwu-test', mnt]);
  const before = readdirSync('/tmp');
  try {
    const store = openStore(join(mnt, 'store'));
    try {
      const src = join(dir, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'dense.bin'), Buffer.alloc(8 * MiB, 1));
      await assert.rejects(addDataset(store, join(src, 'dense.bin'), parseDatasetRef('dense')),
        (e: unknown) => isVmwuError(e) && e.code === 'NO_SPACE' && e.message.includes(store.paths.tmp) && /image of .*dense\.bin and a copy of .*dense\.bin need about 16 MiB/.test(e.message));
      assert.deepEqual(readdirSync(store.paths.tmp), []);
      // The file is on another filesystem than the store: staged by a copy that keeps its holes.
      sparseFile(join(src, 'sparse.bin'), 300 * MiB, [[0, 'head'], [299 * MiB, 'tail']]);
      const r = await addDataset(store, join(src, 'sparse.bin'), parseDatasetRef('sparse'));
      assert.ok(statSync(store.blobs.path(r.dataset.digest)).blocks * 512 < MiB);
      assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith('vmwu-data-')).filter((f) => !before.includes(f)), [], 'the image made in /tmp is gone');
      // mkfs.erofs keeps the chunks in /tmp: without room there, the plain layout (every block written), if the store has the room.
      sparseFile(join(src, 'small.bin'), 2 * MiB, [[MiB, 'x']]);
      const plain = await addDataset(store, join(src, 'small.bin'), parseDatasetRef('small'), { freeBytes: (p) => (p === '/tmp' ? 4096 : freeBytes(p)) });
      assert.ok(plain.dataset.imageBytes >= 2 * MiB, `${plain.dataset.imageBytes}`);
      const chunked = await addDataset(store, join(src, 'small.bin'), parseDatasetRef('small:2'));
      assert.ok(chunked.dataset.imageBytes < MiB, `${chunked.dataset.imageBytes}`);
    } finally {
      store.close();
    }
  } finally {
    execFileSync('umount', [mnt]);
    rmSync(dir, { recursive: true, force: true });
  }
});
