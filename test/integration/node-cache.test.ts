import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NodeCache } from '../../src/run/node-cache.js';
import { nodeDirs } from '../../src/run/node-dirs.js';
import { processesMentioning, testHome, tmp, vmwu } from '../support/harness.js';

/**
 * The node cache (src/run/node-cache.ts) on real guests: under a cap, shared by
 * processes that evict at once, and on a full filesystem. Each part has its own
 * scratch, so its cache is its own.
 */

interface RunJson {
  status: string;
  exitCode: number | null;
  start?: { mode: string; template?: string; fallback?: string; cache?: string };
  error?: { message: string };
}

/** `--base tiny`, or a unit's name. */
async function run(env: NodeJS.ProcessEnv, memory: number, target: string[] = ['--base', 'tiny']): Promise<RunJson> {
  const r = await vmwu(['run', '--json', '--memory', `${memory}M`, ...target, '--', 'true'], env);
  assert.ok(r.stdout.startsWith('{'), `vmwu run printed no result: ${r.stderr}`);
  return JSON.parse(r.stdout) as RunJson;
}

function succeeded(r: RunJson): void {
  assert.equal(r.status, 'succeeded', JSON.stringify(r));
}

const MiB = 1024 ** 2;
const CAP = 300 * MiB;

describe('the node cache under a cap, shared, on a full disk', { concurrency: false, timeout: 900_000 }, () => {
  const scratch = tmp('vmwu-ncache-');
  chmodSync(scratch, 0o711);
  const env = { VMWU_SCRATCH: scratch, VMWU_CACHE_MAX: '300M' };
  const cacheDir = nodeDirs(undefined, testHome(), env).cache;
  const size = async () => (await NodeCache.at(cacheDir).state({ max: { bytes: CAP } })).totalBytes;

  // Four units of their own layers on the tiny base: with the base itself, five images whose templates share nothing.
  const units = ['a', 'b', 'c', 'd'].map((x) => `ncache-${x}-${process.pid}`);
  before(async () => {
    for (const name of units) {
      const dir = tmp('vmwu-ncache-unit-');
      mkdirSync(join(dir, 'app'));
      writeFileSync(join(dir, 'app', 'name'), `${name}\n`);
      writeFileSync(join(dir, 'vmwu.yaml'), `name: ${name}\nversion: 1.0.0\nbase: tiny\nfiles:\n  - {from: ./app, to: /app}\nrun: cat /app/name\n`);
      const b = await vmwu(['build', dir], env);
      assert.equal(b.code, 0, b.stderr);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  after(async () => {
    for (const u of units) await vmwu(['rm', u], env);
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a cap of 300 MB with jobs on the tiny base and four units of it: the cache stays under it, every job succeeds and restores', async () => {
    const targets = [['--base', 'tiny'], ...units.map((u) => [u])];
    for (const [i, memory] of [128, 160, 192, 224, 256].entries()) {
      const r = await run(env, memory, targets[i]);
      succeeded(r);
      // Each template is given its guest's RAM before it is made: the older ones make room.
      assert.equal(r.start?.mode, 'restore', JSON.stringify(r.start));
      const bytes = await size();
      assert.ok(bytes <= CAP, `${bytes} bytes in the cache after the ${memory}M job, over its cap`);
    }
    const templates = readdirSync(join(cacheDir, 'templates')).filter((n) => /^[0-9a-f]{32}$/.test(n));
    assert.ok(templates.length < 5, `the least recently used templates were evicted (${templates.length} left)`);
  });

  test('two processes evict at once while their jobs run from the cache: every job succeeds, no template in use disappears', async () => {
    const tiny = ['--base', 'tiny'];
    const pairs = [[[128, tiny], [192, [units[0]!]]], [[160, [units[1]!]], [224, [units[2]!]]], [[128, tiny], [128, tiny]], [[256, [units[3]!]], [160, [units[1]!]]]] as const;
    for (const pair of pairs) {
      const rs = await Promise.all(pair.map(([m, target]) => run(env, m, [...target])));
      for (const r of rs) {
        succeeded(r);
        // Booted only for want of room, never because a file went from under it.
        if (r.start?.mode === 'boot') assert.match(r.start.fallback ?? '', /no room|is still being made/, JSON.stringify(r.start));
      }
      const bytes = await size();
      assert.ok(bytes <= CAP, `${bytes} bytes in the cache, over its cap`);
    }
    assert.deepEqual(existsSync(join(cacheDir, 'leases')) ? readdirSync(join(cacheDir, 'leases')) : [], [], 'no lease left behind');
  });
});

const root = process.getuid?.() === 0;

describe('a full tmpfs holding the node cache', { skip: root ? false : 'needs root to mount a small tmpfs', concurrency: false, timeout: 600_000 }, () => {
  const work = tmp('vmwu-ncache-full-');
  const mnt = join(work, 'mnt');
  const instances = join(work, 'instances');
  // The cache on the tmpfs ($TMPDIR), the instances on the disk ($SLURM_TMPDIR is for instances only).
  const env = { VMWU_SCRATCH: '', TMPDIR: mnt, SLURM_TMPDIR: instances };
  const ballast = join(mnt, 'ballast');
  before(() => {
    chmodSync(work, 0o755);
    mkdirSync(instances, { mode: 0o755 });
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=1777', 'tmpfs', mnt]);
    const s = statfsSync(mnt);
    execFileSync('fallocate', ['-l', String(s.bavail * s.bsize - 512 * 1024), ballast]);
  });
  after(() => {
    assert.deepEqual(processesMentioning(instances), [], 'no QEMU left');
    execFileSync('umount', ['-l', mnt]);
    rmSync(work, { recursive: true, force: true });
  });

  test('jobs still succeed, and the run records why they did without the cache', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run(env, 128);
      succeeded(r);
      assert.equal(r.start?.mode, 'boot', JSON.stringify(r.start));
      assert.ok(r.start?.fallback, 'why it did not restore');
      // Root's QEMU user cannot reach the store: its blobs came another way than the cache, and the record says so.
      if (r.start?.cache) assert.match(r.start.cache, /node cache/);
    }
    assert.deepEqual(readdirSync(instances).filter((n) => n !== 'vmwu-0'), [], 'nothing left beside the instances');
    const left = join(instances, 'vmwu-0', 'instances');
    assert.deepEqual(existsSync(left) ? readdirSync(left) : [], [], 'no instance and no linked blobs left');
  });
});
