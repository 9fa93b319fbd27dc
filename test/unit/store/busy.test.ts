/**
 * Issue 11, defect 9: while one process held the store's write lock (storing a
 * huge sweep), a second `vmwu` failed on open with a raw `SqliteError: database
 * is locked` from `migrate()`. Opening a current store now only reads, and a lock
 * held too long is a typed STORE_BUSY error. Real SQLite files, the lock held by
 * another process.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { isVmwuError } from '../../../src/errors.js';
import { openDb } from '../../../src/store/db.js';
import { migrations } from '../../../src/store/migrations.js';
import { openStore } from '../../../src/store/store.js';
import { repoRoot } from '../../support/fixture-path.js';

const scratch = mkdtempSync(join(tmpdir(), 'vmwu-busy-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Another process that takes the write lock (BEGIN IMMEDIATE and a write) and holds it until killed. */
async function holdWriteLock(dbPath: string): Promise<ChildProcess> {
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const child = spawn(process.execPath, ['-e', `
    const Database = require(${JSON.stringify(sqlite)});
    const db = new Database(${JSON.stringify(dbPath)});
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('holder', 'x', 'now')").run();
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
    child.on('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return child;
}

const stop = (c: ChildProcess) => new Promise<void>((resolve) => {
  c.on('exit', () => resolve());
  c.kill('SIGKILL');
});

test('a second connection opens a current store while another process holds the write lock', async () => {
  const path = join(scratch, 'a.db');
  openDb(path).close();
  const holder = await holdWriteLock(path);
  try {
    // A short busy timeout: a migration that wanted the write lock would fail within it.
    const db = openDb(path, { busyTimeoutMs: 200 });
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n, migrations.length);
    assert.equal(db.prepare(`SELECT value FROM settings WHERE key = 'holder'`).get(), undefined, 'the holder\'s write is not committed');
    db.close();
  } finally {
    await stop(holder);
  }
});

test('a store that needs a migration while another process holds the lock: STORE_BUSY with a hint, not a raw SqliteError', async () => {
  const path = join(scratch, 'b.db');
  openDb(path).close();
  const holder = await holdWriteLock(path);
  const newer = [...migrations, { version: 999, name: 'test', sql: 'CREATE TABLE later (x)' }];
  try {
    assert.throws(() => openDb(path, { migrations: newer, busyTimeoutMs: 200 }), (e: unknown) => {
      assert.ok(!(e instanceof Database.SqliteError), 'not the raw SqliteError');
      return isVmwuError(e) && e.code === 'STORE_BUSY' && /the store database is locked \(opening .*b\.db\)/.test(e.message) && /try again/.test(e.hint ?? '');
    });
  } finally {
    await stop(holder);
  }
  // Once the lock is gone, the migration applies.
  const db = openDb(path, { migrations: newer });
  assert.ok(db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'later'`).get());
  db.close();
});

test('the CLI reads the store while another process holds its write lock', async () => {
  const home = join(scratch, 'home');
  openStore(home).close();
  const holder = await holdWriteLock(join(home, 'vmwu.db'));
  try {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'experiments'], { encoding: 'utf8', env: { ...process.env, VMWU_HOME: home }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /SqliteError|database is locked/);
  } finally {
    await stop(holder);
  }
});
