import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hasControlChars } from '../../../src/control-chars.js';
import { isVmwuError } from '../../../src/errors.js';
import { bootId } from '../../../src/store/process-identity.js';
import Database from 'better-sqlite3';
import { acquireLease, breakLease, readLeaseHolder } from '../../../src/store/lease.js';
import { openStore } from '../../../src/store/store.js';
import { repoRoot } from '../../support/fixture-path.js';

/**
 * The store lease between "machines" simulated by their domains (the real thing,
 * with two sshfs mounts of one store, is in test/integration/shared-store.test.ts).
 */
const dir = () => mkdtempSync(join(tmpdir(), 'vmwu-lease-'));
const A = { domain: 'boot-a:41', host: 'login1' };
const B = { domain: 'boot-b:17', host: 'login2' };
const inUse = (host: string) => (e: unknown) => isVmwuError(e) && e.code === 'STORE_IN_USE' && new RegExp(`in use by host ${host} \\(since `).test(e.message) && /wait until vmwu there has stopped/.test(e.hint ?? '');

test('one machine at a time: a second one is refused with the holder\'s name, and gets the store once the holder has closed it', () => {
  const root = dir();
  const a = acquireLease(root, A);
  assert.throws(() => acquireLease(root, B), inUse('login1'));
  a.release();
  assert.equal(existsSync(join(root, 'vmwu.db.lease')), false, 'the last process of the holder gives the lease back');
  const b = acquireLease(root, B);
  assert.throws(() => acquireLease(root, A), inUse('login2'));
  b.release();
});

test('processes of one machine share its lease; it is given back when the last of them closes', () => {
  const root = dir();
  const a1 = acquireLease(root, A);
  const a2 = acquireLease(root, A);
  a1.release();
  assert.throws(() => acquireLease(root, B), inUse('login1'));
  a2.release();
  acquireLease(root, B).release();
});

test('a holder that went silent (power loss) loses the lease after the TTL; its heartbeat then finds it taken', () => {
  const root = dir();
  let t = 1_000_000;
  const now = () => t;
  const a = acquireLease(root, { ...A, ttlMs: 30_000, now });
  t += 10_000;
  assert.equal(a.renew(), null, 'renewed');
  t += 29_000;
  assert.throws(() => acquireLease(root, { ...B, ttlMs: 30_000, now }), inUse('login1'));
  t += 2_000;
  const b = acquireLease(root, { ...B, ttlMs: 30_000, now });
  assert.equal(a.renew(), 'login2', 'the old holder learns it lost the store, and to whom');
  assert.throws(() => acquireLease(root, { ...A, ttlMs: 30_000, now }), inUse('login2'));
  b.release();
});

test('a lease file a crash left half-written is taken over; registry entries of dead processes do not keep a lease', () => {
  const root = dir();
  writeFileSync(join(root, 'vmwu.db.lease'), '{"domain":');
  const b = acquireLease(root, B);
  assert.equal((JSON.parse(readFileSync(join(root, 'vmwu.db.lease'), 'utf8')) as { host: string }).host, 'login2');
  // A process of this machine killed with -9 while it had the store open.
  writeFileSync(join(root, 'vmwu.db.lease.d', `${encodeURIComponent(`2147483646:1@${hostname()}/${bootId()}`)}.0badc0de`), '');
  b.release();
  assert.deepEqual(readdirSync(join(root, 'vmwu.db.lease.d')), []);
  assert.equal(existsSync(join(root, 'vmwu.db.lease')), false);
});

test('a lock directory left by a process that died holding it is broken after a while', () => {
  const root = dir();
  mkdirSync(join(root, 'vmwu.db.lease.lock'));
  let t = 0;
  const l = acquireLease(root, { ...A, now: () => (t += 1000) });
  l.release();
});

/** The lease file and the registry as another process finds them. */
const leaseFile = (root: string) => readFileSync(join(root, 'vmwu.db.lease'), 'utf8');
const registry = (root: string) => readdirSync(join(root, 'vmwu.db.lease.d')).sort();

test('a holder that lost the lease (stopped past the TTL) gives back only its own entry: the new holder keeps its lease and registry', () => {
  const root = dir();
  let t = 1_000_000;
  const now = () => t;
  const a = acquireLease(root, { ...A, ttlMs: 30_000, now, identity: `1111:5@login1/boot-a` });
  t += 31_000;
  const b = acquireLease(root, { ...B, ttlMs: 30_000, now, identity: `2222:7@login2/boot-b` });
  const b2 = acquireLease(root, { ...B, ttlMs: 30_000, now, identity: `2223:9@login2/boot-b` });
  // Dead by this host's judgement, but in the new holder's registry: not the old holder's to prune.
  writeFileSync(join(root, 'vmwu.db.lease.d', `${encodeURIComponent(`2147483646:1@${hostname()}/${bootId()}`)}.0badc0de`), '');
  const [lease, entries] = [leaseFile(root), registry(root)];
  assert.equal(entries.length, 3);
  a.release();
  assert.equal(leaseFile(root), lease, 'the new holder\'s lease is untouched');
  assert.deepEqual(registry(root), entries, 'and so are its registry entries');
  assert.throws(() => acquireLease(root, { ...A, ttlMs: 30_000, now }), inUse('login2'));
  b.release();
  assert.throws(() => acquireLease(root, { ...A, ttlMs: 30_000, now }), inUse('login2'), 'its other process still holds it');
  b2.release();
});

test('a heartbeat dated far ahead (a wrong clock, a forged lease) does not lock the store; one a few seconds ahead is a live holder\'s', () => {
  const root = dir();
  const t = 1_000_000_000_000;
  const now = () => t;
  const lease = (heartbeat: number) => writeFileSync(join(root, 'vmwu.db.lease'),
    JSON.stringify({ domain: 'boot-x:9', host: 'login9', since: new Date(t).toISOString(), heartbeat }));
  lease(t + 5_000);
  assert.throws(() => acquireLease(root, { ...B, ttlMs: 30_000, now }), inUse('login9'), 'clocks a few seconds apart');
  lease(t + 10 * 365 * 24 * 3600_000);
  const b = acquireLease(root, { ...B, ttlMs: 30_000, now });
  assert.equal((JSON.parse(leaseFile(root)) as { host: string }).host, 'login2');
  b.release();
});

test('the host and start time in a lease file are another host\'s text: shown with control characters escaped', () => {
  const root = dir();
  writeFileSync(join(root, 'vmwu.db.lease'),
    JSON.stringify({ domain: 'boot-x:9', host: 'login9\u001b[2J\nfake', since: '2024\r\n', heartbeat: Date.now() }));
  assert.throws(() => acquireLease(root, B), (e: unknown) => isVmwuError(e) && e.code === 'STORE_IN_USE'
    && e.message.includes('host "login9\\u001b[2J\\nfake" (since "2024\\r\\n",') && !hasControlChars(e.message + (e.hint ?? '')));
});

test('breaking a dead machine\'s lease frees the store; a lease of this machine with a live process is not broken', () => {
  const root = dir();
  let t = 1_000_000;
  const now = () => t;
  acquireLease(root, { ...A, ttlMs: 30_000, now, identity: '1111:5@login1/boot-a' });
  t += 5_000;
  const h = readLeaseHolder(root, { ttlMs: 30_000, now })!;
  assert.deepEqual([h.host, h.lastSeenMs, h.recent, h.thisMachine, h.liveProcesses], ['login1', 5_000, true, false, []]);
  assert.throws(() => acquireLease(root, { ...B, ttlMs: 30_000, now }), inUse('login1'));
  assert.equal(breakLease(root, h, { now })?.host, 'login1');
  assert.equal(existsSync(join(root, 'vmwu.db.lease')), false);
  assert.equal(existsSync(join(root, 'vmwu.db.lease.d')), false);
  assert.equal(readLeaseHolder(root), null);
  assert.equal(breakLease(root), null, 'nothing left to break');
  acquireLease(root, { ...B, ttlMs: 30_000, now }).release();

  // This machine, with this very process registered: alive, so not broken.
  const mine = acquireLease(root);
  const me = readLeaseHolder(root)!;
  assert.deepEqual([me.thisMachine, me.liveProcesses.length], [true, 1]);
  assert.throws(() => breakLease(root, me), (e: unknown) => isVmwuError(e) && e.code === 'STORE_LEASE_LIVE' && /which is not dead: process \d+ on host \S+ is running/.test(e.message));
  assert.ok(existsSync(join(root, 'vmwu.db.lease')));
  mine.release();
});

test('a lease is not broken when it changed since the user confirmed: renewed (alive) or taken by another host', () => {
  const root = dir();
  let t = 1_000_000;
  const now = () => t;
  const a = acquireLease(root, { ...A, ttlMs: 30_000, now, identity: '1111:5@login1/boot-a' });
  const seen = readLeaseHolder(root, { now })!;
  t += 1_000;
  a.renew();
  assert.throws(() => breakLease(root, seen, { now }), (e: unknown) => isVmwuError(e) && e.code === 'STORE_LEASE_LIVE' && /host login1 renewed its lease/.test(e.message));
  const renewed = readLeaseHolder(root, { now })!;
  t += 31_000;
  acquireLease(root, { ...B, ttlMs: 30_000, now, identity: '2222:7@login2/boot-b' });
  assert.throws(() => breakLease(root, renewed, { now }), (e: unknown) => isVmwuError(e) && e.code === 'STORE_LEASE_CHANGED' && /held by host login2 \(domain boot-b:17, since /.test(e.message));
  assert.equal(readLeaseHolder(root, { now })?.host, 'login2');
});

/** A store of machine A on fake clocks: the wall clock and the monotonic one advance together unless told otherwise. */
function clockedStore(root: string) {
  const clock = { wall: 1_000_000, mono: 0 };
  const store = openStore(root, { lease: { ...A, ttlMs: 30_000, now: () => clock.wall, monotonic: () => clock.mono } });
  const pass = (ms: number) => {
    clock.wall += ms;
    clock.mono += ms;
  };
  store.db.exec('CREATE TABLE t (x INTEGER)');
  return { store, clock, pass, insert: store.db.prepare('INSERT INTO t VALUES (?)') };
}

const rows = (root: string) => {
  const db = new Database(join(root, 'vmwu.db'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
  } finally {
    db.close();
  }
};
const lost = (host: string) => (e: unknown) => isVmwuError(e) && e.code === 'STORE_LOST' && e.message.includes(`was taken over by host ${host} while this process's lease had lapsed`) && /run it again once vmwu on login2 has stopped/.test(e.hint ?? '');

test('writes within the lease\'s window cost no file I/O; past it, a write renews the lease first', () => {
  const root = dir();
  const { store, pass, insert, clock } = clockedStore(root);
  const file = join(root, 'vmwu.db.lease');
  const seen = () => [statSync(file, { bigint: true }).mtimeNs, readFileSync(file, 'utf8')];
  const before = seen();
  insert.run(1);
  pass(14_000);
  insert.run(2);
  store.db.transaction(() => insert.run(3))();
  store.db.exec('INSERT INTO t VALUES (4)');
  assert.deepEqual(seen(), before, 'the lease file was not touched');
  pass(2_000);
  insert.run(5);
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { heartbeat: number }).heartbeat, clock.wall, 'renewed before the write');
  assert.equal(rows(root), 5);
  store.close();
});

test('a store whose lease lapsed and was taken over refuses every write with STORE_LOST, writes nothing, and leaves the new holder alone', () => {
  const root = dir();
  const { store, pass, insert, clock } = clockedStore(root);
  insert.run(1);
  // Stopped past the TTL: no heartbeat ran meanwhile.
  pass(31_000);
  const b = acquireLease(root, { ...B, ttlMs: 30_000, now: () => clock.wall, identity: '2222:7@login2/boot-b' });
  const lease = leaseFile(root);
  assert.throws(() => insert.run(2), lost('login2'));
  assert.throws(() => store.db.exec('INSERT INTO t VALUES (3)'), lost('login2'));
  assert.throws(() => store.db.transaction(() => insert.run(4))(), lost('login2'));
  assert.equal(rows(root), 1, 'nothing written after the loss');
  assert.equal(store.db.open, false, 'its database is closed');
  store.close();
  assert.equal(leaseFile(root), lease);
  assert.deepEqual(registry(root).map((n) => decodeURIComponent(n).replace(/\.[0-9a-f]+$/, '')), ['2222:7@login2/boot-b']);
  b.release();
});

test('a transaction whose lease is lost before it commits is rolled back', () => {
  const root = dir();
  const { store, pass, insert, clock } = clockedStore(root);
  assert.throws(() => store.db.transaction(() => {
    insert.run(1);
    pass(31_000);
    acquireLease(root, { ...B, ttlMs: 30_000, now: () => clock.wall });
  })(), lost('login2'));
  assert.equal(rows(root), 0);
  assert.throws(() => insert.run(2), lost('login2'));
  store.close();
});

test('reads do not ask the lease: they cost nothing, and work until a write finds the lease lost', () => {
  const root = dir();
  const { store, pass, insert, clock } = clockedStore(root);
  insert.run(1);
  pass(31_000);
  acquireLease(root, { ...B, ttlMs: 30_000, now: () => clock.wall });
  assert.equal((store.db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 1, 'a read does not ask the lease');
  assert.equal(store.db.open, true);
  store.close();
});

test('the window ends by whichever clock says so first: the monotonic one (a wall clock set back) or the wall clock (a machine suspended)', () => {
  const root = dir();
  const { store, insert, clock } = clockedStore(root);
  const heartbeat = () => (JSON.parse(leaseFile(root)) as { heartbeat: number }).heartbeat;
  clock.mono += 16_000;
  clock.wall += 1_000;
  insert.run(1);
  assert.equal(heartbeat(), clock.wall, 'renewed: the monotonic clock says the window has ended');
  clock.mono += 1_000;
  clock.wall += 16_000;
  insert.run(2);
  assert.equal(heartbeat(), clock.wall, 'renewed: the wall clock says so');
  store.close();
});

test('`vmwu doctor --break-lease`: without a terminal it asks for --yes; with it, it breaks a dead machine\'s lease without opening the store', () => {
  const root = dir();
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'doctor', '--break-lease', ...args],
    { env: { ...process.env, VMWU_HOME: root }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  writeFileSync(join(root, 'vmwu.db.lease'), JSON.stringify({ domain: 'boot-x:9', host: 'login9\u001b[1m', since: '2024-05-01T10:00:00.000Z', heartbeat: Date.now() - 3_600_000 }));
  let r = cli();
  assert.equal(r.status, 125);
  assert.match(r.stderr, /breaking the lease of host "login9\\u001b\[1m" \(domain boot-x:9, since 2024-05-01T10:00:00.000Z, last seen 3600 s ago\) on the store \S+ needs a confirmation, and there is no terminal to ask on/);
  assert.match(r.stderr, /hint: .*add --yes/);
  assert.ok(existsSync(join(root, 'vmwu.db.lease')));
  r = cli('--yes', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { broken: boolean; holder: { host: string; domain: string; since: string; lastSeenMs: number } };
  assert.deepEqual([out.broken, out.holder.host, out.holder.domain, out.holder.since], [true, 'login9\u001b[1m', 'boot-x:9', '2024-05-01T10:00:00.000Z']);
  assert.ok(out.holder.lastSeenMs >= 3_600_000);
  assert.deepEqual(readdirSync(root), [], 'no store was opened: nothing but the lease was there, and it is gone');
  r = cli('--yes');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /has no lease: nothing to break/);
});
