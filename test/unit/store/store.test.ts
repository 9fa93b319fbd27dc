import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, openDb, schemaVersion, getSetting, putSetting } from '../../../src/store/db.js';
import { migrations } from '../../../src/store/migrations.js';
import { BlobStore, digestFile } from '../../../src/store/blobs.js';
import { findBasesByPlatform, registerBase, requireBase, removeBase } from '../../../src/store/bases.js';
import { storeRoot } from '../../../src/store/home.js';
import { VmwuError } from '../../../src/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'vmwu-store-'));

test('a fresh store is migrated to the latest version, in WAL mode', () => {
  const db = openDb(join(tmp(), 'vmwu.db'));
  assert.equal(schemaVersion(db), Math.max(...migrations.map((m) => m.version)));
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('migrations apply in order, once, and an older store upgrades', () => {
  const path = join(tmp(), 'vmwu.db');
  const v1 = [{ version: 1, name: 'one', sql: 'CREATE TABLE a (x INTEGER);' }];
  const db = new Database(path);
  migrate(db, v1);
  db.prepare('INSERT INTO a VALUES (42)').run();
  migrate(db, v1);
  assert.equal(schemaVersion(db), 1);
  const v2 = [...v1, { version: 2, name: 'two', sql: 'ALTER TABLE a ADD COLUMN y TEXT DEFAULT \'d\';' }];
  migrate(db, v2);
  assert.equal(schemaVersion(db), 2);
  assert.deepEqual(db.prepare('SELECT x, y FROM a').get(), { x: 42, y: 'd' });
  assert.throws(() => migrate(db, v1), (e: VmwuError) => e.code === 'STORE_TOO_NEW');
  db.close();
});

test('a failing migration rolls back whole', () => {
  const db = new Database(join(tmp(), 'vmwu.db'));
  assert.throws(() => migrate(db, [{ version: 1, name: 'bad', sql: 'CREATE TABLE ok (x); CREATE TABLE broken (' }]));
  assert.equal(schemaVersion(db), 0);
  assert.deepEqual(db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'ok'`).get(), { n: 0 });
  db.close();
});

test('blobs are content-addressed, read-only, and verified', async () => {
  const dir = tmp();
  const blobs = new BlobStore(join(dir, 'blobs'));
  const src = join(dir, 'f');
  writeFileSync(src, 'hello');
  const { digest, size } = await blobs.putFile(src);
  assert.equal(digest, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.equal(size, 5);
  assert.equal(statSync(blobs.path(digest)).mode & 0o222, 0);
  assert.equal(await digestFile(blobs.path(digest)), digest);
  await blobs.verify(digest);
  assert.equal(readFileSync(blobs.path(digest), 'utf8'), 'hello');
  const again = await blobs.putFile(src, { move: true });
  assert.equal(again.digest, digest);
});

test('bases register, look up by arch + OS, and are required by name with a hint', () => {
  const db = openDb(join(tmp(), 'vmwu.db'));
  const b = { digest: 'sha256:' + 'a'.repeat(64), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel' as const,
    kernel: null, initrd: null, root: `sha256:${'b'.repeat(64)}` as const, cmdline: '', size: 1, virtualSize: 2 };
  registerBase(db, { ...b, name: 'one', digest: `sha256:${'1'.repeat(64)}` });
  registerBase(db, { ...b, name: 'two', digest: `sha256:${'2'.repeat(64)}`, arch: 'aarch64' });
  assert.deepEqual(findBasesByPlatform(db, 'x86_64', 'linux').map((x) => x.name), ['one']);
  assert.equal(requireBase(db, 'two').arch, 'aarch64');
  assert.throws(() => requireBase(db, 'three'), (e: VmwuError) => /known bases: one, two/.test(e.hint ?? ''));
  assert.ok(removeBase(db, 'one'));
  putSetting(db, 'k', 'v1');
  putSetting(db, 'k', 'v2');
  assert.equal(getSetting(db, 'k'), 'v2');
  db.close();
});

test('the store root follows VMWU_HOME, then XDG_DATA_HOME', () => {
  assert.equal(storeRoot({ VMWU_HOME: '/x/y' }), '/x/y');
  assert.equal(storeRoot({ XDG_DATA_HOME: '/d' }), '/d/vmwu');
});
