import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { cacheCap, cacheMargin, planEviction, type CacheEntry } from '../../../src/run/cache-cap.js';
import { parseSizeOrShare } from '../../../src/quantities.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

test('a cap is a size or a share of the filesystem', () => {
  assert.deepEqual(parseSizeOrShare('20G', 'cache.max'), { bytes: 20 * GiB });
  assert.deepEqual(parseSizeOrShare('300M', 'cache.max'), { bytes: 300 * MiB });
  assert.deepEqual(parseSizeOrShare(' 10% ', 'cache.max'), { share: 0.1 });
  for (const bad of ['0%', '101%', 'lots', '-1G', '']) {
    assert.throws(() => parseSizeOrShare(bad, 'cache.max'), (e: unknown) => isVmwuError(e) && e.code === 'BAD_VALUE' && e.message.startsWith('cache.max'), bad);
  }
});

test('the default cap is 10 % of the filesystem, and no cap is more than the room there is, less a margin', () => {
  const fs = 100 * GiB;
  assert.equal(cacheMargin(fs), 2 * GiB, 'at most 2 GiB');
  assert.equal(cacheMargin(64 * MiB), 16 * MiB, 'at least 16 MiB');
  assert.equal(cacheMargin(10 * GiB), Math.round(0.5 * GiB));
  assert.deepEqual(cacheCap({ fsBytes: fs, freeBytes: 80 * GiB, cacheBytes: 0 }), { bytes: 10 * GiB, why: '10 % of its filesystem' });
  assert.deepEqual(cacheCap({ max: { bytes: 20 * GiB }, from: 'config.yaml cache.max', fsBytes: fs, freeBytes: 80 * GiB, cacheBytes: 0 }),
    { bytes: 20 * GiB, why: 'config.yaml cache.max' });
  assert.equal(cacheCap({ max: { share: 0.25 }, from: '$VMWU_CACHE_MAX', fsBytes: fs, freeBytes: 80 * GiB, cacheBytes: 0 }).bytes, 25 * GiB);
  // 3 GiB free and 4 GiB cached: the cache may hold 7 GiB less the margin, not the 10 it would get.
  const tight = cacheCap({ fsBytes: fs, freeBytes: 3 * GiB, cacheBytes: 4 * GiB });
  assert.equal(tight.bytes, 5 * GiB);
  assert.match(tight.why, /free, less a margin of 2\.0 GiB/);
  assert.equal(cacheCap({ max: { bytes: 20 * GiB }, fsBytes: fs, freeBytes: GiB, cacheBytes: 0 }).bytes, 0, 'a full disk: no cache at all');
  // A small tmpfs: 10 % of 1 GiB.
  assert.equal(cacheCap({ fsBytes: GiB, freeBytes: GiB, cacheBytes: 0 }).bytes, Math.floor(0.1 * GiB));
});

const e = (name: string, mib: number, usedMs: number, unneeded?: string): CacheEntry => ({ name, bytes: mib * MiB, usedMs, ...(unneeded ? { unneeded } : {}) });

test('eviction takes the least recently used first, never what is held, and what no store needs always', () => {
  const entries = [
    e('blobs/a', 100, 5), e('templates/t1', 150, 1), e('blobs/b', 50, 3), e('templates/gone', 40, 9, 'every store it was made for is gone'), e('blobs/c', 30, 2),
  ];
  // 370 MiB in all; room for 50 more under 300: 80 must go after the 40 no store needs.
  const plan = planEviction(entries, new Set(['templates/t1']), { capBytes: 300 * MiB, needBytes: 50 * MiB });
  assert.deepEqual(plan.victims.map((v) => v.name), ['templates/gone', 'blobs/c', 'blobs/b'], 't1 is older but held');
  assert.equal(plan.fits, true);
  assert.equal(plan.totalBytes, 250 * MiB);
  // Room already: only the unneeded go.
  assert.deepEqual(planEviction(entries, new Set(), { capBytes: GiB, needBytes: MiB }).victims.map((v) => v.name), ['templates/gone']);
});

test('when even evicting all that is not held leaves no room, nothing useful is evicted for nothing', () => {
  const entries = [e('blobs/a', 100, 1), e('templates/t', 200, 2), e('blobs/gone', 10, 0, 'its stores are gone')];
  const plan = planEviction(entries, new Set(['templates/t']), { capBytes: 300 * MiB, needBytes: 150 * MiB });
  assert.equal(plan.fits, false);
  assert.deepEqual(plan.victims.map((v) => v.name), ['blobs/gone']);
  assert.equal(plan.totalBytes, 300 * MiB);
  // Reservations of entries being made count too.
  assert.equal(planEviction([e('blobs/a', 10, 1)], new Set(), { capBytes: 100 * MiB, needBytes: 30 * MiB, reservedBytes: 75 * MiB }).fits, false);
  assert.deepEqual(planEviction([e('blobs/a', 10, 1)], new Set(), { capBytes: 100 * MiB, needBytes: 10 * MiB, reservedBytes: 75 * MiB }).victims, []);
});

test('a trim gets as close to the cap as what is held lets it; entries that free nothing are never victims', () => {
  const entries = [e('blobs/a', 100, 1), e('blobs/b', 100, 2), e('blobs/link', 0, 0), e('templates/t', 200, 3)];
  const plan = planEviction(entries, new Set(['templates/t']), { capBytes: 150 * MiB, needBytes: 0 });
  assert.deepEqual(plan.victims.map((v) => v.name), ['blobs/a', 'blobs/b']);
  assert.equal(plan.fits, false);
  assert.deepEqual(planEviction(entries, new Set(), { capBytes: 400 * MiB, needBytes: 0 }).victims, []);
});
