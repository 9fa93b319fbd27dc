import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../src/errors.js';
import { bootId } from '../../src/run/process-identity.js';
import { acquireLease } from '../../src/store/lease.js';

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
