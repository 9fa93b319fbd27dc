import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeFileDurableSync } from '../../../src/store/durable.js';
import { openStore } from '../../../src/store/store.js';

/**
 * A store is private to its user: another local user read a store's database
 * and a job's stdout (issue: stores were 0755, vmwu.db and logs 0644).
 */
const root = process.geteuid?.() === 0;

/** Every path under `dir` whose mode lets group or others in. */
function openToOthers(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.mode & 0o077) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return out;
}

test('a new store and what is written into it are private: 0700 directories, 0600 files', () => {
  const home = join(mkdtempSync(join(tmpdir(), 'vmwu-private-')), 'store');
  const store = openStore(home);
  try {
    assert.equal(store.closedToOthers, 0, 'nothing to close in a new store');
    mkdirSync(join(store.paths.runs, 'abc'), { recursive: true });
    writeFileSync(join(store.paths.runs, 'abc', 'stdout.log'), 'secret output');
    writeFileDurableSync(join(store.paths.runs, 'abc', 'result.json'), '{}');
    store.db.prepare('CREATE TABLE IF NOT EXISTS t (x)').run();
    assert.deepEqual(openToOthers(home), []);
  } finally {
    store.close();
  }
});

test('a store an older vmwu left open is closed on its first open, once', () => {
  const home = join(mkdtempSync(join(tmpdir(), 'vmwu-private-')), 'store');
  openStore(home).close();
  chmodSync(home, 0o755);
  mkdirSync(join(home, 'runs', 'old'), { recursive: true, mode: 0o755 });
  chmodSync(join(home, 'runs', 'old'), 0o755);
  writeFileSync(join(home, 'runs', 'old', 'stdout.log'), 'old output', { mode: 0o644 });
  chmodSync(join(home, 'runs', 'old', 'stdout.log'), 0o644);
  chmodSync(join(home, 'vmwu.db'), 0o644);
  const s = openStore(home);
  s.close();
  assert.ok(s.closedToOthers >= 4, `closed ${s.closedToOthers}`);
  assert.deepEqual(openToOthers(home), []);
  const again = openStore(home);
  again.close();
  assert.equal(again.closedToOthers, 0, 'a private store costs one stat');
});

test('another user reads nothing of it', { skip: !root && 'needs root to act as a second user' }, () => {
  const home = join(mkdtempSync(join(tmpdir(), 'vmwu-private-')), 'store');
  chmodSync(join(home, '..'), 0o755);
  const store = openStore(home);
  try {
    mkdirSync(join(store.paths.runs, 'abc'), { recursive: true });
    writeFileSync(join(store.paths.runs, 'abc', 'stdout.log'), 'secret output');
  } finally {
    store.close();
  }
  for (const f of [join(home, 'vmwu.db'), join(home, 'runs', 'abc', 'stdout.log')]) {
    assert.throws(() => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', f], { stdio: 'pipe' }), f);
  }
});
