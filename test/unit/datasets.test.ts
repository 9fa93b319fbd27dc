import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addDataset } from '../../src/data/add.js';
import { listDatasets, requireDataset } from '../../src/data/records.js';
import { parseDatasetRef } from '../../src/data/ref.js';
import { isVmwuError } from '../../src/errors.js';
import { openStore } from '../../src/store/store.js';

/** `vmwu data add` against a real store and the real mkfs.erofs. */
const scratchStore = () => openStore(mkdtempSync(join(tmpdir(), 'vmwu-data-store-')));
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-data-src-'));
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
