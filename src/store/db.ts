import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { VmwuError } from '../errors.js';
import { BUSY_TIMEOUT_MS, storeBusy } from './busy.js';
import { migrations as defaultMigrations, type Migration } from './migrations.js';

/** The store's SQLite database: opened for the filesystem it is on, its writes guarded by the lease, its migrations applied, and its settings table. */

export type Db = Database.Database;
type Statement = ReturnType<Db['prepare']>;

export interface OpenDbOptions {
  network?: boolean;
  migrations?: Migration[];
  busyTimeoutMs?: number;
  /** Called before every write (guardWrites); throws to refuse it. */
  writeGuard?: () => void;
}

/**
 * Opens the store database with a busy timeout (two vmwu processes writing at once
 * wait for each other instead of failing). On a local filesystem it runs in WAL
 * mode (readers never block the one writer, so `vmwu logs` and a dashboard read
 * while runs write). WAL needs memory shared by every process using the database,
 * which a network filesystem does not provide, so there it uses a rollback
 * journal and full syncs; the store lease keeps it to one machine at a time.
 * Opening a store whose schema is current only reads, so it never waits for a
 * writer; a lock held past the busy timeout is a STORE_BUSY error.
 */
export function openDb(path: string, opts: OpenDbOptions = {}): Db {
  mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path);
  } catch (e) {
    throw new VmwuError('STORE', `cannot open the store database ${path}: ${(e as Error).message}`,
      'check that VMWU_HOME points at a writable directory', { cause: e });
  }
  try {
    cacheStatements(db, opts.writeGuard && guardWrites(db, opts.writeGuard));
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS}`);
    // A rollback journal cannot be chosen while another process of this machine has
    // the database open in WAL mode; then it stays in WAL, which works among them.
    db.pragma(opts.network ? 'journal_mode = DELETE' : 'journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma(opts.network ? 'synchronous = FULL' : 'synchronous = NORMAL');
    migrate(db, opts.migrations ?? defaultMigrations);
  } catch (e) {
    db.close();
    throw storeBusy(e, `opening ${path}`) ?? e;
  }
  return db;
}

/**
 * Each SQL text is compiled once per connection: the store runs the same few
 * statements over and over (ingesting 10,000 results runs each 10,000 times).
 * Statements are only ever run whole, never iterated, so sharing one is safe.
 */
function cacheStatements(db: Db, guard: (s: Statement) => Statement = (s) => s): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Statement>();
  db.prepare = ((sql: string) => {
    let s = cache.get(sql);
    if (!s) {
      if (cache.size >= 1000) cache.clear();
      s = guard(prepare(sql));
      cache.set(sql, s);
    }
    return s;
  }) as Db['prepare'];
}

/**
 * Puts `guard` before every write through `db` (the store lease's check that this
 * process may still write): each execution of a statement that is not read-only
 * (get, all and iterate too, for INSERT … RETURNING), each exec, and the commit of
 * each transaction that wrote, since the commit is what makes its writes reach the
 * database file, and time may have passed since the last of them. A guard that
 * throws inside a transaction rolls it back. Returns what guards a newly prepared
 * statement; statements are wrapped once, when prepared.
 */
function guardWrites(db: Db, guard: () => void): (s: Statement) => Statement {
  let writes = 0;
  const check = () => {
    writes++;
    guard();
  };
  const exec = db.exec.bind(db);
  db.exec = ((sql: string) => {
    check();
    return exec(sql);
  }) as Db['exec'];
  const transaction = db.transaction.bind(db);
  db.transaction = ((fn: (...args: unknown[]) => unknown) => {
    // A database the guard closed (the lease was lost) says why, not just that it is closed.
    if (!db.open) guard();
    return transaction(function guarded(this: unknown, ...args: unknown[]) {
      const before = writes;
      const result = fn.apply(this, args);
      if (writes !== before) guard();
      return result;
    });
  }) as Db['transaction'];
  return (s) => {
    if (s.readonly) return s;
    const methods = s as unknown as Record<'run' | 'get' | 'all' | 'iterate', (...args: unknown[]) => unknown>;
    for (const m of ['run', 'get', 'all', 'iterate'] as const) {
      const f = methods[m].bind(s);
      methods[m] = (...args) => {
        check();
        return f(...args);
      };
    }
    return s;
  };
}

/** The schema version; 0 for a store without migrations yet. */
export function schemaVersion(db: Db): number {
  return currentVersion(db) ?? 0;
}

/** The schema version, or null when the store has no migrations table yet. Reads only. */
function currentVersion(db: Db): number | null {
  if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get()) return null;
  return (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
}

function tooNew(current: number, latest: number): VmwuError {
  return new VmwuError('STORE_TOO_NEW', `the store schema is version ${current}, newer than this vmwu understands (${latest})`,
    'upgrade vmwu, or point VMWU_HOME at another store');
}

export function migrate(db: Db, migrations: Migration[]): void {
  const latest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  // Read first, without a transaction: a current store needs no write lock, so opening
  // it never waits behind another process's long write (a sweep being stored).
  const seen = currentVersion(db);
  if (seen !== null && seen > latest) throw tooNew(seen, latest);
  if (seen === latest) return;
  // IMMEDIATE takes the write lock first, so two processes opening a fresh store
  // cannot both apply the same migration.
  const apply = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    const current = schemaVersion(db);
    if (current > latest) throw tooNew(current, latest);
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
        .run(m.version, m.name, new Date().toISOString());
    }
  });
  apply.immediate();
}

export function getSetting(db: Db, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value;
}

export function putSetting(db: Db, key: string, value: string): void {
  db.prepare(`INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
    .run(key, value, new Date().toISOString());
}

export function deleteSetting(db: Db, key: string): void {
  db.prepare('DELETE FROM settings WHERE key = ?').run(key);
}

/** The settings table as a key-value cache (e.g. of accelerator verdicts). */
export function settingsCache(db: Db): { get(key: string): string | undefined; put(key: string, value: string): void } {
  return { get: (k) => getSetting(db, k), put: (k, v) => putSetting(db, k, v) };
}
