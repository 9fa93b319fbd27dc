import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeBlobCache } from '../../../src/run/blob-source.js';
import { recordTemplateStore } from '../../../src/run/fast-start/template-stores.js';
import { obtainTemplate, pruneTemplates, templateCache, templateKey, TemplateUnavailable, type TemplateShape } from '../../../src/run/fast-start/template.js';
import type { HypervisorDriver } from '../../../src/vm/driver.js';
import { resolveImage } from '../../../src/run/host-setup.js';
import { cacheUse, NodeCache } from '../../../src/run/node-cache.js';
import { digestString, hexOf, type Digest } from '../../../src/store/blobs.js';
import { bootId } from '../../../src/store/process-identity.js';
import { hostname } from 'node:os';

const KiB = 1024;
const MiB = 1024 ** 2;

describe('the node cache: a cap, eviction by use, holds across processes', () => {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-nodecache-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  /** A store (with a database file: it exists) and a node cache. */
  const fixture = () => {
    const dir = join(root, `f${n++}`);
    const store = join(dir, 'store');
    const blobs = join(store, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(store, 'vmwu.db'), '');
    return { dir, store, blobs, cache: join(dir, 'node', 'cache') };
  };
  const blob = (blobs: string, bytes: number): Digest => {
    const body = randomBytes(bytes / 2).toString('hex');
    const d = digestString(body);
    writeFileSync(join(blobs, hexOf(d)), body);
    return d;
  };
  const withCap = async <T>(cap: string, fn: () => Promise<T>): Promise<T> => {
    const was = process.env.VMWU_CACHE_MAX;
    process.env.VMWU_CACHE_MAX = cap;
    try {
      return await fn();
    } finally {
      if (was === undefined) delete process.env.VMWU_CACHE_MAX;
      else process.env.VMWU_CACHE_MAX = was;
    }
  };
  const cacheFile = (cache: string, name: string, bytes: number, usedSec: number) => {
    const path = join(cache, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, randomBytes(bytes));
    utimesSync(path, usedSec, usedSec);
  };

  test('the least recently used entry goes first; one a live process holds stays; a dead process\'s lease holds nothing', async () => {
    const { cache } = fixture();
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `blobs/${x.repeat(64)}`) as [string, string, string];
    cacheFile(cache, a, MiB, 1000);
    cacheFile(cache, b, MiB, 500);
    cacheFile(cache, c, MiB, 2000);
    const nc = NodeCache.at(cache);
    await nc.locked(() => nc.holdLocked(b));
    mkdirSync(join(cache, 'leases'), { recursive: true });
    const dead = join(cache, 'leases', 'dead');
    writeFileSync(dead, `4194303:1@${hostname()}/${bootId()}\n${a} 0\n`);
    // Half-written leases: one a process that died between writing and renaming left long ago, one being written now.
    writeFileSync(join(cache, 'leases', 'died.tmp'), '4194303:1');
    utimesSync(join(cache, 'leases', 'died.tmp'), 1000, 1000);
    writeFileSync(join(cache, 'leases', 'writing.tmp'), '4194303:1');
    assert.equal(await nc.makeRoom(undefined, 0, { max: { bytes: 2 * MiB + 64 * KiB } }), undefined);
    assert.equal(existsSync(join(cache, a)), false, 'a was used before c, and its holder is dead');
    assert.equal(existsSync(join(cache, b)), true, 'b is older, but held');
    assert.equal(existsSync(join(cache, c)), true);
    assert.equal(existsSync(dead), false, 'the dead process\'s lease is gone');
    assert.deepEqual(readdirSync(join(cache, 'leases')).filter((f) => f.endsWith('.tmp')), ['writing.tmp'], 'an old half-written lease goes, a fresh one stays');
    assert.deepEqual(readdirSync(join(cache, 'trash')), [], 'victims are deleted once the lock is let go');
    // Nothing more can go: the cap is not met, and the reason says what holds the rest.
    const why = await nc.makeRoom('blobs/' + 'd'.repeat(64), 2 * MiB, { max: { bytes: 2 * MiB + 64 * KiB } });
    assert.match(why ?? '', /no room for 2\.0 MiB under its cap .* in use by running jobs/);
    assert.equal(existsSync(join(cache, c)), true, 'not evicted for nothing');
    nc.releaseOne(b);
    assert.equal(await nc.makeRoom(undefined, 0, { max: { bytes: MiB + 64 * KiB } }), undefined);
    assert.equal(existsSync(join(cache, b)), false, 'released, it goes like any other');
  });

  test('a template whose stores are all gone goes at any eviction, unless a job holds it; gc --cache empties what is not held', async () => {
    const { cache, store } = fixture();
    const gone = join(root, 'a-store-that-was-removed');
    const t = (key: string, stores: string[]) => {
      const dir = join(cache, 'templates', key.repeat(32));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'template.json'), '{}');
      writeFileSync(join(dir, 'memory'), randomBytes(64 * KiB));
      for (const s of stores) recordTemplateStore(dir, s);
      return `templates/${key.repeat(32)}`;
    };
    const orphan = t('1', [gone]);
    const heldOrphan = t('2', [gone]);
    const shared = t('3', [gone, store]);
    const nc = NodeCache.at(cache);
    await nc.locked(() => nc.holdLocked(heldOrphan));
    assert.equal(await nc.makeRoom(undefined, 0, { max: { bytes: 100 * MiB } }), undefined);
    assert.equal(existsSync(join(cache, orphan)), false, 'no store needs it: gone though far under the cap');
    assert.equal(existsSync(join(cache, heldOrphan)), true, 'a job restores from it');
    assert.equal(existsSync(join(cache, shared)), true, 'a store still has it');
    // Leftovers of a copier that died, and of an evictor.
    mkdirSync(join(cache, 'blobs'), { recursive: true });
    writeFileSync(join(cache, 'blobs', `.lock-${'e'.repeat(64)}`), `4194303:1@${hostname()}/${bootId()}`);
    writeFileSync(join(cache, 'blobs', `${'e'.repeat(64)}.tmp-0123abcd`), 'half a copy');
    const state = await nc.state({});
    assert.equal(state.entries.length, 2);
    assert.ok(state.reclaimableBytes >= 64 * KiB && state.reclaimableBytes < state.totalBytes, 'the held one is not reclaimable');
    const r = await nc.empty();
    assert.deepEqual(r.removed.map((e) => e.name), [shared]);
    assert.deepEqual(r.inUse.map((e) => e.name), [heldOrphan]);
    assert.deepEqual(readdirSync(join(cache, 'blobs')), [], 'the dead copier\'s lock and copy are gone');
    assert.equal(existsSync(join(cache, heldOrphan, 'memory')), true);
    nc.releaseOne(heldOrphan);
  });

  test('the whole cache goes when every store it served is gone and nothing holds anything in it', async () => {
    const { cache, store } = fixture();
    const old = join(root, 'removed-store');
    mkdirSync(old);
    writeFileSync(join(old, 'vmwu.db'), '');
    const f = `blobs/${'f'.repeat(64)}`;
    const u1 = cacheUse(cache, old);
    await u1.hold(f);
    cacheFile(cache, f, 4 * KiB, 1);
    const u2 = cacheUse(cache, store);
    await u2.hold(`blobs/${'0'.repeat(64)}`);
    u2.release();
    assert.equal(existsSync(join(cache, f)), true, 'the store is there, and a job holds the blob');
    u1.release();
    rmSync(old, { recursive: true });
    // Opened for a third store: the first is gone, the second too now, and nothing is held.
    rmSync(store, { recursive: true });
    const third = fixture().store;
    const u3 = cacheUse(cache, third);
    await u3.hold(`blobs/${'1'.repeat(64)}`);
    assert.equal(existsSync(join(cache, f)), false, 'emptied whole');
    assert.deepEqual(readdirSync(join(cache, 'stores')).length, 1, 'only the third store is recorded now');
    u3.release();
  });

  test('a blob the cache has no room for is read from the store, and so is every blob after it in the chain', async () => {
    const { cache, blobs, store } = fixture();
    const base = blob(blobs, 64 * KiB);
    const lower = blob(blobs, 512 * KiB);
    const top = blob(blobs, 8 * KiB);
    await withCap(`${200}k`, async () => {
      const use = cacheUse(cache, store);
      const image = await resolveImage(nodeBlobCache(blobs, cache, { use }), { boot: 'bios', kernel: null, initrd: null, root: base, cmdline: '', virtualSize: MiB }, [top, lower]);
      assert.equal(image.root, join(blobs, hexOf(top)), 'the top layer names its parent by file name: it comes from the store too, though it would fit');
      assert.equal(existsSync(join(cache, 'blobs', hexOf(base))), true, 'the base fit');
      assert.equal(existsSync(join(cache, 'blobs', hexOf(lower))), false);
      assert.equal(use.notes.length, 1);
      assert.match(use.notes[0]!, /^blobs read from the store, not the node cache: the node cache .* has no room for 512 KiB under its cap of 200 KiB \(\$VMWU_CACHE_MAX\)/);
      use.release();
    });
  });

  test('a template with no room under the cap is not made: the job boots, and the reason says so; gc leaves a held template alone', async () => {
    const { cache, store, dir } = fixture();
    const blobsDir = join(cache, 'blobs');
    const shape: TemplateShape = {
      accel: 'tcg', memoryMiB: 128, cpus: 1, boot: { kind: 'kernel', kernel: join(blobsDir, 'k'), initrd: join(blobsDir, 'i'), cmdline: '' },
      root: join(blobsDir, 'r'), virtualSize: MiB, app: false, data: [], network: false, cpuModel: 'max', qemu: 'test',
    };
    const driver = { launch: () => Promise.reject(new Error('no VM in a unit test')) } as unknown as HypervisorDriver;
    const use = cacheUse(cache, store);
    const templates = templateCache({ instances: join(dir, 'instances'), cache, from: 'test' }, store, undefined, driver, use);
    await withCap('64M', async () => {
      await assert.rejects(obtainTemplate(templates, shape), (e: unknown) => e instanceof TemplateUnavailable
        && /^template [0-9a-f]{32} was not made: the node cache .* has no room for 144 MiB under its cap of 64 MiB/.test((e as Error).message));
    });
    assert.equal(existsSync(join(cache, 'templates', `${templateKey(shape)}.failed`)), false, 'no room is no failure of the template: the next job with room makes it');
    // Blobs linked beside one job are never a template's.
    await assert.rejects(obtainTemplate(templates, { ...shape, root: join(dir, 'instances', '.blobs-0', 'r') }), /neither in the node cache nor in the store/);
    // gc with what live processes hold: a held template stays, whatever it is.
    const key = 'c'.repeat(32);
    mkdirSync(join(cache, 'templates', key), { recursive: true });
    await use.hold(`templates/${key}`);
    const pruned = await pruneTemplates(join(cache, 'templates'), { store, hasBlob: () => false, qemu: 'test', held: NodeCache.at(cache).readHolds().names });
    assert.deepEqual(pruned.map((t) => t.key).filter((k) => k.startsWith(key)), []);
    assert.equal(existsSync(join(cache, 'templates', key)), true);
    use.release();
    assert.deepEqual((await pruneTemplates(join(cache, 'templates'), { store, hasBlob: () => false, qemu: 'test', held: NodeCache.at(cache).readHolds().names })).map((t) => t.key), [key]);
  });

  test('two processes evict at once while their jobs read from the cache: every read succeeds, no held file disappears, the cap holds', async () => {
    const { cache, blobs, store } = fixture();
    const hexes = Array.from({ length: 8 }, () => hexOf(blob(blobs, 256 * KiB)));
    const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
    const script = join(root, 'evictor.mjs');
    writeFileSync(script, `
      import { nodeBlobCache } from ${JSON.stringify(here('../../../src/run/blob-source.js'))};
      import { cacheUse } from ${JSON.stringify(here('../../../src/run/node-cache.js'))};
      import { digestFile } from ${JSON.stringify(here('../../../src/store/blobs.js'))};
      const [cache, blobs, store, hexes] = [process.argv[2], process.argv[3], process.argv[4], JSON.parse(process.argv[5])];
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      let cached = 0, fromStore = 0, reads = 0;
      const seen = new Set();
      const worker = async () => {
        for (let i = 0; i < 25; i++) {
          const hex = hexes[Math.floor(Math.random() * hexes.length)];
          const use = cacheUse(cache, store);
          const path = await nodeBlobCache(blobs, cache, { use }).path('sha256:' + hex);
          if (path.startsWith(cache)) { cached++; seen.add(hex); } else fromStore++;
          for (let k = 0; k < 3; k++) {
            await sleep(Math.random() * 4);
            if ((await digestFile(path)) !== 'sha256:' + hex) throw new Error('wrong content at ' + path);
            reads++;
          }
          use.release();
        }
      };
      await Promise.all([worker(), worker()]);
      process.stdout.write(JSON.stringify({ cached, fromStore, reads, seen: [...seen] }));
    `);
    const cap = 5 * 256 * KiB + 64 * KiB;
    const run = () => promisify(execFile)(process.execPath, [script, cache, blobs, store, JSON.stringify(hexes)], { env: { ...process.env, VMWU_CACHE_MAX: String(cap) } });
    const outs = (await Promise.all([run(), run()])).map((r) => JSON.parse(r.stdout) as { cached: number; fromStore: number; reads: number; seen: string[] });
    for (const o of outs) assert.equal(o.reads, 2 * 25 * 3, 'every read of every job succeeded, with the right content');
    assert.ok(new Set(outs.flatMap((o) => o.seen)).size > 5, 'more blobs ran from the cache than fit in it at once: entries were evicted meanwhile');
    const nc = NodeCache.at(cache);
    const state = await nc.state({ max: { bytes: cap } });
    assert.ok(state.totalBytes <= cap, `${state.totalBytes} bytes cached, over the cap of ${cap}`);
    const list = (d: string) => (existsSync(d) ? readdirSync(d) : []);
    assert.deepEqual(list(join(cache, 'leases')), [], 'both processes left no lease');
    assert.deepEqual(list(join(cache, 'trash')), []);
    assert.deepEqual(readdirSync(join(cache, 'blobs')).filter((f) => !/^[0-9a-f]{64}$/.test(f)), [], 'no lock or temporary copy left');
  });
});
