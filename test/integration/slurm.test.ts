import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runSlurmExperiment } from '../../src/executors/slurm/submitter.js';
import { localClusterUnavailable, startLocalCluster, type LocalCluster } from '../support/local-cluster.js';
import { imageSweepPlan, userImageBase } from '../support/oci-images.js';
import { openStore } from '../../src/store/store.js';
import { createExperiment, experimentResults, experimentStatus } from '../../src/sweep/index.js';
import { fixtures, processesMentioning, startCli, testHome, tmp, until, vmwu } from '../support/harness.js';

/**
 * The Slurm executor against a real one-node Slurm cluster (Debian slurm-wlm +
 * munge) that this file starts in a temp dir and stops by pid. It needs root
 * (slurmd runs jobs as their users) and the Slurm daemons; otherwise it is skipped
 * with a loud message.
 */
const plans = join(fixtures, 'executors');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;

const skip = localClusterUnavailable();
if (skip) process.stderr.write(`\n!!! SKIPPING the Slurm executor tests: ${skip} !!!\n\n`);

interface Status { state: string; counts: Record<string, number>; total: number; dir: string }
interface JobResult { job: number; status: string; attempts: number; outputs: string[]; history: { runId: string | null; status: string }[] }

describe('Slurm executor on a real one-node cluster', { skip, timeout: 600_000 }, () => {
  const dir = tmp('vmwu-slurm-');
  let cluster: LocalCluster | undefined;
  // A task that leaves the queue without a result is settled 2 s later (the default allows for NFS caches).
  const env = () => ({ ...cluster!.env, VMWU_SLURM_GRACE_MS: '2000' });
  const slurm = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env() } });

  const status = async (name: string): Promise<Status> => {
    const r = await vmwu(['status', name, '--json'], env());
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Status;
  };
  /** For polling: undefined until the experiment exists. */
  const peek = async (name: string): Promise<{ status: Status; results: JobResult[] } | undefined> => {
    const a = await vmwu(['status', name, '--json'], env());
    const b = await vmwu(['results', name, '--json'], env());
    return a.code === 0 && b.code === 0 ? { status: JSON.parse(a.stdout) as Status, results: JSON.parse(b.stdout) as JobResult[] } : undefined;
  };
  const results = async (name: string): Promise<JobResult[]> => {
    const r = await vmwu(['results', name, '--json'], env());
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as JobResult[];
  };

  before(async () => {
    cluster = await startLocalCluster(dir);
  });

  after(async () => {
    // Whatever a failed test left queued, then the daemons, in reverse order, by pid.
    await cluster?.stop();
  });

  test('a sweep runs as one Slurm array: 4 jobs, results collected, batch script kept', async () => {
    const name = unique('slurm4');
    const r = await vmwu(['sweep', join(plans, 'slurm-four.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
      '--max-parallel', '2', '--memory', '128M', '--timeout', '2m'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /submitted Slurm array \d+ \(round 1, 4 jobs\)/);
    const st = await status(name);
    assert.equal(st.state, 'succeeded');
    assert.equal(st.counts.succeeded, 4);
    const rs = await results(name);
    for (const j of rs) {
      assert.equal(j.status, 'succeeded');
      assert.equal(j.attempts, 1);
      assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `job ${j.job} of ${name}\n`);
    }
    const sdir = join(st.dir, 'slurm');
    const files = readdirSync(sdir).sort();
    assert.deepEqual(files.filter((f) => f.endsWith('.sbatch')), ['round-1.sbatch']);
    const script = readFileSync(join(sdir, 'round-1.sbatch'), 'utf8');
    assert.match(script, /^#SBATCH --array=1-4%2$/m);
    assert.match(script, /^#SBATCH --mem=384M$/m);
    assert.match(script, /^#SBATCH --time=00:07:00$/m);
    assert.equal(files.filter((f) => f.endsWith('.out')).length, 4);
  });

  test('a sweep on a container image base runs as a Slurm array, as the image\'s user with its env', async () => {
    const name = unique('slurmimg');
    const base = `slurm-img-${name}`;
    userImageBase(testHome(), dir, base);
    const r = await vmwu(['sweep', imageSweepPlan(dir), '--base', base, '--name', name, '--executor', 'slurm', '--memory', '128M', '--timeout', '2m', '--retries', '0'], env());
    assert.equal(r.code, 0, r.stderr);
    const rs = await results(name);
    assert.deepEqual(rs.map((j) => j.status), ['succeeded', 'succeeded']);
    assert.deepEqual(rs.map((j) => readFileSync(j.outputs[0]!, 'utf8')).sort(), ['1 1000 hello\n', '2 1000 hello\n']);
  });

  test('a job that needs about 3× its allocation finishes across ≥ 3 allocations: USR1 before each limit, checkpoint, requeue, restore', async () => {
    const name = unique('walltime');
    const plan = join(tmp('vmwu-walltime-'), 'long.pln');
    // 150 s of work; each one-minute allocation gives it at most ~50 s (Slurm warns up to 30 s early).
    writeFileSync(plan, [
      'parameter i integer range from 1 to 1',
      'task main',
      '    shexec "k=1; while [ $$k -le 150 ]; do echo $$k >> count; k=$$((k + 1)); sleep 1; done; echo counted"',
      '    copy node:count root:count',
      'endtask', '',
    ].join('\n'));
    const r = await vmwu(['sweep', plan, '--base', 'tiny', '--name', name, '--executor', 'slurm', '--slurm-time', '1m',
      '--memory', '128M', '--timeout', '10m', '--retries', '0'], env());
    assert.equal(r.code, 0, r.stderr);
    const [j] = await results(name);
    assert.equal(j!.status, 'succeeded', JSON.stringify(j));
    const statuses = j!.history.map((a) => a.status);
    assert.ok(statuses.length >= 3, `ran in ${statuses.length} allocations: ${statuses.join(', ')}`);
    assert.deepEqual(statuses, [...statuses.slice(0, -1).map(() => 'interrupted'), 'succeeded']);
    assert.equal(readFileSync(j!.outputs[0]!, 'utf8'), Array.from({ length: 150 }, (_, i) => `${i + 1}\n`).join(''), 'counted 1..150 exactly once');
    const st = await status(name);
    const script = readFileSync(join(st.dir, 'slurm', 'round-1.sbatch'), 'utf8');
    assert.match(script, /^#SBATCH --time=00:01:00$/m);
    assert.match(script, /^#SBATCH --signal=B:USR1@20$/m);
    const cks = JSON.parse((await vmwu(['checkpoints', '--json'], env())).stdout) as { experiment: string; stopped: boolean; dir: string }[];
    const mine = cks.filter((c) => c.experiment === name && c.stopped);
    assert.ok(mine.length >= statuses.length - 1, 'a stopped checkpoint per allocation that ran out');
    // A job checkpointed at each allocation's end keeps its RAM in a file of its own, saved beside its device state.
    const kept = mine.filter((x) => existsSync(x.dir));
    assert.ok(kept.length >= 1);
    for (const c of kept) assert.equal(statSync(join(c.dir, 'memory')).size, 128 * 1024 ** 2);
  });

  test('the submitter dies: resume re-attaches to the running array instead of submitting again', async () => {
    const name = unique('slurm-reattach');
    const run = startCli(['sweep', join(plans, 'slurm-slow.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
      '--max-parallel', '1', '--memory', '128M', '--timeout', '2m'], env());
    await until(async () => ((await peek(name))?.status.counts.running ?? 0) >= 1);
    run.child.kill('SIGKILL');
    await run.done;
    assert.equal((await status(name)).state, 'stopped');
    const r = await vmwu(['resume', name], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /re-attached to \d+/);
    assert.doesNotMatch(r.stderr, /submitted Slurm array/);
    const st = await status(name);
    assert.equal(st.state, 'succeeded');
    assert.deepEqual(readdirSync(join(st.dir, 'slurm')).filter((f) => f.endsWith('.sbatch')), ['round-1.sbatch']);
    for (const j of await results(name)) assert.equal(j.attempts, 1, `job ${j.job} ran once`);
  });

  test('--after on the same cluster is Slurm\'s own dependency: the second\'s array waits in the queue and runs once the first succeeded; a failed first cancels it', async () => {
    const first = unique('slurm-first');
    const second = unique('slurm-second');
    // Long enough that the second is queued while it runs.
    const slow = join(tmp('vmwu-slurm-after-'), 'slow.pln');
    writeFileSync(slow, 'parameter i integer range from 1 to 2\ntask main\n    shexec "sleep 15; echo $i > out.txt"\nendtask\n');
    const run = startCli(['sweep', slow, '--base', 'tiny', '--name', first, '--executor', 'slurm', '--memory', '128M', '--timeout', '2m'], env());
    await until(async () => ((await peek(first))?.status.counts.running ?? 0) >= 1);
    const b = await vmwu(['sweep', join(plans, 'slurm-four.pln'), '--base', 'tiny', '--name', second, '--executor', 'slurm', '--memory', '128M', '--timeout', '2m',
      '--after', first, '--detach'], { ...env(), VMWU_AFTER_POLL_MS: '200' });
    assert.equal(b.code, 0, b.stderr);
    const firstArray = slurm('squeue', ['-h', '-n', `vmwu-${first}`, '-o', '%F']).stdout.trim().split('\n')[0];
    const script = await until(() => { try { return readFileSync(join(testHome(), 'experiments', second, 'slurm', 'round-1.sbatch'), 'utf8'); } catch { return undefined; } });
    assert.match(script, new RegExp(`^#SBATCH --dependency=afterok:${firstArray}$`, 'm'));
    // Queued, held by Slurm until the first array ends (its reason is set at slurmctld's next pass).
    await until(() => /PENDING Dependency/.test(slurm('squeue', ['-h', '-n', `vmwu-${second}`, '-o', '%T %r']).stdout));
    assert.equal((await status(second)).state, 'waiting');
    assert.equal((await run.done).code, 0);
    await until(async () => (await status(second)).state === 'succeeded');
    assert.deepEqual((await results(second)).map((j) => j.status), ['succeeded', 'succeeded', 'succeeded', 'succeeded']);

    // A first that fails: the second's array is scancelled and it says why.
    const bad = unique('slurm-bad');
    const after = unique('slurm-after-bad');
    const fails = join(tmp('vmwu-slurm-fails-'), 'fails.pln');
    writeFileSync(fails, 'parameter i integer range from 1 to 2\ntask main\n    shexec "sleep 3; exit 3"\nendtask\n');
    const badRun = startCli(['sweep', fails, '--base', 'tiny', '--name', bad, '--executor', 'slurm', '--memory', '128M', '--timeout', '2m', '--retries', '0'], env());
    await until(async () => ((await peek(bad))?.status.counts.running ?? 0) >= 1);
    const c = await vmwu(['sweep', join(plans, 'slurm-four.pln'), '--base', 'tiny', '--name', after, '--executor', 'slurm', '--memory', '128M', '--timeout', '2m',
      '--after', bad, '--detach'], { ...env(), VMWU_AFTER_POLL_MS: '200' });
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await badRun.done).code, 1);
    const st = await until(async () => { const s = await status(after); return s.state === 'cancelled' && s; });
    assert.match((st as Status & { endedWhy: string }).endedWhy, new RegExp(`the experiment it waited for, ${bad}, failed`));
    await until(() => slurm('squeue', ['-h', '-n', `vmwu-${after}`, '-o', '%i']).stdout.trim() === '');
  });

  test('cancel scancels the array: the running VM stops, every job is cancelled', async () => {
    const name = unique('slurm-cancel');
    const run = startCli(['sweep', join(plans, 'slurm-long.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
      '--memory', '128M', '--timeout', '10m'], env());
    await until(async () => (await peek(name))?.results.some((j) => j.history.some((a) => a.runId && a.status === 'running')));
    const c = await vmwu(['cancel', name], env());
    assert.equal(c.code, 0, c.stderr);
    const done = await run.done;
    assert.equal(done.code, 1, done.stderr);
    const st = await status(name);
    assert.equal(st.state, 'cancelled');
    assert.equal(st.counts.cancelled, 3);
    const rs = await results(name);
    for (const j of rs) for (const a of j.history) {
      assert.equal(a.status, 'cancelled');
      if (a.runId) await until(() => processesMentioning(a.runId!).length === 0);
    }
    const q = slurm('squeue', ['-h', '-n', `vmwu-${name}`, '-o', '%i %T']);
    assert.equal(q.stdout.trim(), '', `still queued: ${q.stdout}`);
    assert.ok(existsSync(join(testHome(), 'experiments', name, 'slurm', 'round-1.sbatch')));
  });

  test('a node without vmwu fails its task with the script\'s reason; the retry goes out in a later round', async () => {
    const saved = process.env.SLURM_CONF;
    process.env.SLURM_CONF = cluster!.conf;
    process.env.VMWU_SLURM_GRACE_MS = '2000';
    const store = openStore(testHome());
    try {
      const e = await createExperiment(store, {
        planPath: join(plans, 'slurm-four.pln'), name: unique('slurm-novmwu'), base: 'tiny', retries: 1, memory: '128M', timeout: '2m',
        executor: 'slurm', maxParallel: '2',
      });
      const s = await runSlurmExperiment(store, e.name, { vmwuJs: '/nonexistent/vmwu.js', pollMs: 300, queueEveryMs: 500 });
      assert.equal(s.state, 'failed');
      assert.equal(experimentStatus(store, e.name).counts.failed, 4);
      for (const j of experimentResults(store, e.name)) {
        assert.equal(j.attempts, 2, `job ${j.job}: the first attempt and its retry`);
        for (const a of j.history) {
          assert.equal(a.status, 'error');
          assert.match(a.error ?? '', /cannot run work units: vmwu is not installed at \/nonexistent\/vmwu\.js/);
        }
      }
      // A retry goes out as soon as its backoff ends, without waiting for the rest of its round.
      const rounds = readdirSync(join(e.dir, 'slurm')).filter((f) => f.endsWith('.sbatch')).sort();
      assert.equal(rounds[0], 'round-1.sbatch');
      assert.ok(rounds.length >= 2 && rounds.length <= 5, rounds.join(' '));
      const taskFiles = rounds.flatMap((r) => readdirSync(join(e.dir, 'slurm', r.replace(/\.sbatch$/, ''))));
      assert.equal(taskFiles.length, 8, `a task file per job attempt: ${taskFiles.join(' ')}`);
    } finally {
      store.close();
      if (saved === undefined) delete process.env.SLURM_CONF;
      else process.env.SLURM_CONF = saved;
    }
  });
});
