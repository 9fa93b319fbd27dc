import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { nodeBlobCache } from '../../../src/run/blob-source.js';
import { digestString, hexOf } from '../../../src/store/blobs.js';

function fixture(): { blobs: string; cache: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-cache-'));
  const blobs = join(dir, 'store', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  return { blobs, cache: join(dir, 'node', 'cache') };
}

test('a node copies a blob once, verified, and the jobs on it share the copy', async () => {
  const { blobs, cache } = fixture();
  const body = 'a layer\n'.repeat(10_000);
  const d = digestString(body);
  writeFileSync(join(blobs, hexOf(d)), body);
  const c = nodeBlobCache(blobs, cache);
  const paths = await Promise.all([c.path(d), c.path(d), nodeBlobCache(blobs, cache).path(d)]);
  assert.equal(new Set(paths).size, 1);
  assert.equal(paths[0], join(cache, 'blobs', hexOf(d)));
  assert.equal(readFileSync(paths[0]!, 'utf8'), body);
  assert.equal(statSync(paths[0]!).mode & 0o777, 0o400, 'read-only, and only for this user');
  assert.deepEqual(readdirSync(join(cache, 'blobs')), [hexOf(d)], 'no lock or temporary file left');
});

test('a corrupt blob in the store is refused and never enters the cache; a missing one is named', async () => {
  const { blobs, cache } = fixture();
  const d = digestString('the real content');
  writeFileSync(join(blobs, hexOf(d)), 'tampered content');
  await assert.rejects(nodeBlobCache(blobs, cache).path(d), (e: unknown) => isVmwuError(e) && e.code === 'BLOB_CORRUPT' && e.message.includes(hexOf(d)));
  assert.equal(existsSync(join(cache, 'blobs', hexOf(d))), false);
  assert.deepEqual(readdirSync(join(cache, 'blobs')), []);
  await assert.rejects(nodeBlobCache(blobs, cache).path(digestString('absent')), (e: unknown) => isVmwuError(e) && e.code === 'BLOB_MISSING');
});

test('for a QEMU user that cannot reach the store, verified store blobs are hard-linked into a cache it can pass through', async () => {
  const { blobs, cache } = fixture();
  const body = 'kernel bytes';
  const d = digestString(body);
  writeFileSync(join(blobs, hexOf(d)), body);
  const verified: string[] = [];
  const user = { name: 'nobody', uid: 65534, gid: 65534, groups: [] };
  const c = nodeBlobCache(blobs, cache, { user, verified: { path: async (x) => { verified.push(x); return join(blobs, hexOf(x)); } } });
  const p = await c.path(d);
  assert.deepEqual(verified, [d], 'the store\'s own check vouched for it');
  assert.equal(statSync(p).ino, statSync(join(blobs, hexOf(d))).ino, 'a link: no bytes copied');
  for (const dir of [join(cache, 'blobs'), cache, dirname(cache)]) assert.equal(statSync(dir).mode & 0o777, 0o711, `${dir} can be passed through, not listed`);
});
