import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nodeDirs } from '../../src/run/node-dirs.js';
import { outcome, processesMentioning, root, startCli, testHome, tmp, until, vmwu } from '../support/harness.js';

/**
 * Warm pools on real guests: `vmwu warm --keep N` keeps clones started, loaded,
 * primed and paused, and `vmwu run` hands its job to it; a local sweep keeps one
 * per busy slot. Each clone serves one job; nothing is left when they stop. This
 * file has its own scratch, so its instances, templates and service are its own.
 */
const scratch = tmp('vmwu-warm-');
chmodSync(scratch, 0o711);
const env = { VMWU_SCRATCH: scratch };
const instances = nodeDirs(undefined, testHome(), env).instances;
const warmDirs = () => (existsSync(instances) ? readdirSync(instances).filter((n) => n.startsWith('.warm-')) : []);
const sockets = () => readdirSync(dirname(instances)).filter((n) => /^warm-[0-9a-f]{16}\.sock$/.test(n));

interface RunJson {
  id: string; status: string; exitCode: number | null; outDir: string;
  start?: { mode: string; warm?: boolean; fallback?: string };
}

async function runJson(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<RunJson> {
  const r = await vmwu(['run', '--json', '--no-cache', ...args], { ...env, ...extra });
  assert.ok(r.stdout.startsWith('{'), `vmwu run printed no result: ${r.stderr}`);
  return JSON.parse(r.stdout) as RunJson;
}

/** Starts `vmwu warm … --keep N --json`; resolves once it says its pool is ready. */
async function startService(args: string[]): Promise<{ child: ChildProcess; done: ReturnType<typeof outcome> }> {
  const s = startCli(['warm', ...args, '--json'], env);
  let out = '';
  s.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await until(() => out.includes('"ready": true') || s.child.exitCode !== null);
  assert.match(out, /"ready": true/, `the warm pool did not start: ${out}`);
  return s;
}

describe('a warm pool service for vmwu run', { concurrency: false, timeout: 600_000 }, () => {
  let service: Awaited<ReturnType<typeof startService>>;
  before(async () => {
    service = await startService(['--base', 'tiny', '--keep', '2']);
    // Both clones ready before the first job: a job that finds none just restores as usual.
    await until(() => warmDirs().length === 2);
  });
  after(() => {
    if (service.child.exitCode === null) service.child.kill('SIGKILL');
  });

  test('each job runs in a clone of its own: restored warm, its own random bytes, and the pool refills', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await runJson(['--base', 'tiny', '--', 'sh', '-c', 'echo $((6 * 7)); head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"']);
      assert.equal(r.status, 'succeeded', JSON.stringify(r));
      assert.equal(r.start?.warm, true, `job ${i} ran in a warm clone: ${JSON.stringify(r.start)}`);
      const [answer, random] = readFileSync(join(r.outDir, 'stdout'), 'utf8').split('\n');
      assert.equal(answer, '42');
      assert.match(random ?? '', /^[0-9a-f]{32}$/);
      assert.ok(!seen.has(random!), 'no two clones share their random state');
      seen.add(random!);
      await until(() => warmDirs().length === 2);
    }
  });

  test('host paths are the caller\'s: relative inputs and out dir from its own directory', async () => {
    const cwd = tmp('vmwu-warm-cwd-');
    writeFileSync(join(cwd, 'in.txt'), 'from the caller\n');
    const child = spawn(process.execPath, [join(root, 'bin', 'vmwu.js'), 'run', '--json', '--no-cache', '--input', 'in.txt', '--out', 'result', '--base', 'tiny', '--', 'cat', 'in.txt'],
      { cwd, env: { ...process.env, VMWU_HOME: testHome(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await outcome(child);
    assert.equal(r.code, 0, r.stderr);
    const run = JSON.parse(r.stdout) as RunJson;
    assert.equal(run.start?.warm, true);
    assert.equal(readFileSync(join(cwd, 'result', 'stdout'), 'utf8'), 'from the caller\n');
  });

  test('a job of another shape runs as usual beside the pool', async () => {
    const r = await runJson(['--memory', '160M', '--base', 'tiny', '--', 'true']);
    assert.equal(r.status, 'succeeded', JSON.stringify(r));
    assert.notEqual(r.start?.warm, true);
  });

  test('an interrupted caller stops its job in the service; the service goes on', async () => {
    const c = startCli(['run', '--no-cache', '--base', 'tiny', '--', 'sleep', '600'], env);
    let err = '';
    c.child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    await until(() => /vmwu: run [0-9a-f]+ /.test(err));
    // The job's clone and the two the pool keeps (refilled when the job took its own).
    await until(() => processesMentioning(instances).length === 3);
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /interrupted/);
    // The job's QEMU goes; the pool's two stay.
    await until(() => processesMentioning(instances).length === 2);
    const next = await runJson(['--base', 'tiny', '--', 'true']);
    assert.equal(next.start?.warm, true, 'the pool still serves');
  });

  test('stopped, the service leaves no QEMU, no clone dir and no socket', async () => {
    service.child.kill('SIGTERM');
    const r = await service.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(processesMentioning(instances), []);
    assert.deepEqual(warmDirs(), []);
    assert.deepEqual(sockets(), []);
    // With no service, vmwu run runs the job itself.
    const alone = await runJson(['--base', 'tiny', '--', 'true']);
    assert.equal(alone.status, 'succeeded');
    assert.notEqual(alone.start?.warm, true);
  });

  test('a service killed outright takes its clones with it; gc removes their dirs', async () => {
    const s = await startService(['--base', 'tiny', '--keep', '1']);
    await until(() => warmDirs().length === 1);
    s.child.kill('SIGKILL');
    await s.done;
    await until(() => processesMentioning(instances).length === 0);
    // Its socket answers nobody: vmwu run runs the job itself.
    const r = await runJson(['--base', 'tiny', '--', 'true']);
    assert.equal(r.status, 'succeeded');
    const gc = await vmwu(['gc'], env);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(warmDirs(), []);
  });
});

describe('a local sweep keeps a clone warm for its next job on a core its jobs leave idle', { timeout: 600_000, skip: availableParallelism() < 2 ? 'needs 2 cores' : false }, () => {
  test('jobs after the first take warm clones; every job is its own; nothing is left', async () => {
    const dir = tmp('vmwu-warm-sweep-');
    writeFileSync(join(dir, 'p.pln'), 'parameter i integer range from 1 to 6 step 1\ntask main\n    exec sh -c "echo $i; head -c 8 /dev/urandom | od -An -tx1"\nendtask\n');
    const name = `warm-${process.pid}`;
    const r = await vmwu(['sweep', join(dir, 'p.pln'), '--base', 'tiny', '--slots', '1', '--retries', '0', '--no-cache', '--name', name], env);
    assert.equal(r.code, 0, r.stderr);
    const res = await vmwu(['results', name, '--json'], env);
    const jobs = JSON.parse(res.stdout) as { job: number; status: string; outDir: string; history: { start: { warm?: boolean } }[] }[];
    assert.equal(jobs.filter((j) => j.status === 'succeeded').length, 6);
    const warm = jobs.filter((j) => j.history.at(-1)?.start.warm).length;
    assert.ok(warm >= 2, `${warm} of 6 jobs ran in warm clones`);
    const outs = jobs.map((j) => readFileSync(join(j.outDir, 'stdout'), 'utf8'));
    assert.deepEqual(outs.map((o) => o.split('\n')[0]), jobs.map((j) => String(j.job)), 'each job ran its own parameters');
    assert.equal(new Set(outs.map((o) => o.split('\n')[1])).size, 6, 'no two jobs share random bytes');
    assert.deepEqual(warmDirs(), [], 'the sweep stopped its clones');
    assert.deepEqual(processesMentioning(instances), []);
  });
});
