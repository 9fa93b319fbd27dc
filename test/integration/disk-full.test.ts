import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { processesMentioning, testHome, tmp, vmwu, type CliResult } from '../support/harness.js';

/**
 * The store on a small filesystem (a tmpfs mounted with a size), filled with a
 * ballast file until only a few MiB are free. A base build, a unit build, a run
 * whose outputs are collected into the store, and a bundle import must each fail
 * with NO_SPACE (its hint naming the store), register nothing, leave no temporary
 * file, and pass `vmwu doctor --check`; once the ballast is gone, the same command
 * succeeds. Instances' disks are in scratch on another filesystem, as on a node
 * with a local disk, so only what lands in the store runs out of space.
 */
const root = process.getuid?.() === 0;
const work = tmp('vmwu-disk-full-');
const mnt = join(work, 'mnt');
const store = join(mnt, 'store');
const env = { VMWU_HOME: store, VMWU_SCRATCH: join(work, 'scratch') };
const ballast = join(mnt, 'ballast');
/** More than this is never free while the disk is "full"; every case writes more than it into the store. */
const LEFT = 8 * 1024 * 1024;

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

function fill(): void {
  rmSync(ballast, { force: true });
  const s = statfsSync(mnt);
  execFileSync('fallocate', ['-l', String(s.bavail * s.bsize - LEFT), ballast]);
}

/** A command that ran out of space: exit 125, NO_SPACE saying where, its hint naming the store. */
function assertNoSpace(t: TestContext, r: CliResult, home = store): void {
  t.diagnostic(r.stderr.split('\n').find((l) => /no space|ran out of disk space/.test(l)) ?? r.stderr);
  assert.equal(r.code, 125, `expected a vmwu error:\n${r.stderr}\n${r.stdout}`);
  assert.match(r.stderr, /vmwu: .*(no space left on the filesystem of \/|ran out of disk space)/);
  assert.ok(r.stderr.includes(`hint: free space there and try again (\`vmwu gc\` removes unused layers and blobs from the store ${home}); nothing half-made was registered`), r.stderr);
}

/** What it must leave: no temporary blob, no work dir, and (once the space is back) a store that checks with no leftover. */
async function assertStoreClean(home = store): Promise<void> {
  const blobs = join(home, 'blobs', 'sha256');
  assert.deepEqual(existsSync(blobs) ? readdirSync(blobs).filter((n) => n.startsWith('.')) : [], [], 'no temporary blob left');
  assert.deepEqual(readdirSync(join(home, 'tmp')), [], 'no work dir left');
  rmSync(ballast, { force: true });
  const c = await vmwu(['doctor', '--check', '--json'], { ...env, VMWU_HOME: home });
  const j = JSON.parse(c.stdout) as { ok: boolean; leftovers: unknown[] };
  assert.equal(c.code, 0, c.stdout);
  assert.deepEqual([j.ok, j.leftovers], [true, []]);
}

describe('a full disk: clear errors, nothing half-made, usable once space is freed', { skip: root ? false : 'needs root to mount a small tmpfs for the store', concurrency: false, timeout: 600_000 }, () => {
  before(() => {
    // Scratch is on the disk, not the tmpfs; QEMU (an unprivileged user when vmwu is root) must reach it.
    chmodSync(work, 0o755);
    mkdirSync(env.VMWU_SCRATCH, { mode: 0o755 });
    mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'tmpfs', mnt]);
    // The packages a base build unpacks, as the shared test store has them: no network.
    mkdirSync(join(store, 'cache'), { recursive: true });
    cpSync(join(testHome(), 'cache', 'debs'), join(store, 'cache', 'debs'), { recursive: true });
  });
  after(() => {
    assert.deepEqual(processesMentioning(env.VMWU_SCRATCH), [], 'no QEMU left');
    execFileSync('umount', ['-l', mnt]);
  });

  test('base build: the kernel does not fit; after freeing space it builds', async (t) => {
    fill();
    assertNoSpace(t, await vmwu(['base', 'build', 'tiny'], env));
    await assertStoreClean();
    assert.equal((await vmwu(['base', 'list', '--json'], env)).stdout.trim(), '[]', 'no base registered');
    ok(await vmwu(['base', 'build', 'tiny'], env), 'base build with space');
  });

  const unit = join(work, 'unit');
  test('unit build: a 24 MB layer does not fit; nothing registered; after freeing space the unit builds and runs', async (t) => {
    mkdirSync(join(unit, 'app'), { recursive: true });
    writeFileSync(join(unit, 'app', 'note'), 'big\n');
    writeFileSync(join(unit, 'vmwu.yaml'), [
      'name: bigunit', 'version: 1.0.0', 'base: tiny', 'files: [{from: ./app, to: /app}]',
      'setup: "head -c 24000000 /dev/urandom > /app/big; wc -c < /app/big > /app/size"', 'run: "cat /app/size"', '',
    ].join('\n'));
    fill();
    const r = await vmwu(['build', unit, '-q'], env);
    assertNoSpace(t, r);
    assert.match(r.stderr, /build step \(app\): no space left/);
    await assertStoreClean();
    assert.equal((await vmwu(['units', '--json'], env)).stdout.trim(), '[]', 'no unit registered');
    ok(await vmwu(['build', unit, '-q'], env), 'build with space');
    const run = JSON.parse(ok(await vmwu(['run', 'bigunit', '--json'], env), 'run bigunit').stdout) as { status: string; exitCode: number };
    assert.deepEqual([run.status, run.exitCode], ['succeeded', 0]);
  });

  test('collect: a run whose 24 MB of outputs do not fit fails NO_SPACE with no partial outputs; after freeing space it succeeds', async (t) => {
    const cmd = ['run', '--base', 'tiny', '--json', '--', 'sh', '-c', 'head -c 24000000 /dev/urandom > big; echo written'];
    fill();
    const r = await vmwu(cmd, env);
    assert.equal(r.code, 125, r.stderr);
    const j = JSON.parse(r.stdout) as { id: string; status: string; outDir: string; error: { code: string; message: string; hint: string } };
    assert.equal(j.status, 'error');
    t.diagnostic(j.error.message);
    assert.equal(j.error.code, 'NO_SPACE');
    assert.match(j.error.message, new RegExp(`no space left on the filesystem of ${j.outDir}`));
    assert.ok(j.error.hint.includes(`from the store ${store}`), j.error.hint);
    assert.ok(!existsSync(join(j.outDir, 'work')), 'no partial work/');
    assert.deepEqual(readdirSync(j.outDir).filter((n) => n.startsWith('.')), [], 'no collect staging left');
    const rec = JSON.parse(ok(await vmwu(['runs', '--json'], env), 'runs').stdout) as { id: string; status: string }[];
    assert.equal(rec.find((x) => x.id === j.id)?.status, 'error', 'the run is recorded as an error, not as finished with outputs');
    await assertStoreClean();
    const again = JSON.parse(ok(await vmwu(cmd, env), 'run with space').stdout) as { status: string; outDir: string };
    assert.equal(again.status, 'succeeded');
    assert.equal(statSync(join(again.outDir, 'work', 'big')).size, 24_000_000);
  });

  test('import: a bundle that does not fit is refused; the store is unchanged; after freeing space it imports', async (t) => {
    const bundle = join(work, 'bigunit.vmwu');
    ok(await vmwu(['export', 'bigunit', '--with-base', '-o', bundle], env), 'export');
    const other = join(mnt, 'store2');
    fill();
    const r = await vmwu(['import', bundle], { ...env, VMWU_HOME: other });
    assertNoSpace(t, r, other);
    await assertStoreClean(other);
    assert.equal((await vmwu(['units', '--json'], { ...env, VMWU_HOME: other })).stdout.trim(), '[]');
    ok(await vmwu(['import', bundle], { ...env, VMWU_HOME: other }), 'import with space');
    ok(await vmwu(['doctor', '--check', '--deep'], { ...env, VMWU_HOME: other }), 'deep check');
  });
});
