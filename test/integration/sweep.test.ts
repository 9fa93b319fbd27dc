import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hostname } from 'node:os';
import { instanceDir, nodeDirs } from '../../src/run/node-dirs.js';
import { fixtures, processesMentioning, startCli, testHome, until, vmwu } from '../support/harness.js';

const plans = join(fixtures, 'sweeps');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;

interface Attempt {
  attempt: number; runId: string | null; status: string; exitCode: number | null; error: string | null; outDir: string; host: string | null;
  usage: { cpuMs: number; maxRssKiB: number; source: string } | null;
}
interface JobResult {
  job: number; params: Record<string, string>; status: string; exitCode: number | null; attempts: number; runId: string | null;
  phases: Record<string, number> | null; outDir: string | null; outputs: string[]; history: Attempt[];
}
interface Status { state: string; counts: Record<string, number>; total: number; owner: { pid: number; alive: boolean } | null; resultsDir: string; dir: string }

async function results(name: string): Promise<JobResult[]> {
  const r = await vmwu(['results', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as JobResult[];
}

async function status(name: string): Promise<Status> {
  const r = await vmwu(['status', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

/** Exited (a zombie waiting for whoever adopted it counts as exited). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z';
  } catch {
    return true;
  }
}

/** No QEMU, overlay, disk, socket or pidfile left for any attempt's run. */
async function assertNothingLeft(rs: JobResult[]): Promise<void> {
  for (const j of rs) {
    for (const a of j.history) {
      if (!a.runId) continue;
      await until(async () => processesMentioning(a.runId!).length === 0);
      const runDir = join(testHome(), 'runs', a.runId);
      const left = existsSync(runDir) ? readdirSync(runDir).filter((f) => /\.(qcow2|img|sock|pid)$/.test(f)) : [];
      assert.deepEqual(left, [], `run ${a.runId} of job ${j.job} left ${left.join(' ')}`);
      const scratch = instanceDir(nodeDirs(undefined, testHome()), a.runId);
      assert.equal(existsSync(scratch), false, `run ${a.runId} of job ${j.job} left its scratch ${scratch}`);
    }
  }
}

/** Every job ended exactly once: no job has two succeeded attempts, and none is left pending or running. */
function assertExactlyOnce(rs: JobResult[]): void {
  for (const j of rs) {
    const ok = j.history.filter((a) => a.status === 'succeeded').length;
    assert.ok(ok <= 1, `job ${j.job} has ${ok} succeeded attempts`);
    assert.ok(['succeeded', 'failed', 'cancelled'].includes(j.status), `job ${j.job} is ${j.status}`);
  }
}

describe('vmwu sweep runs Nimrod plans in real VMs', { concurrency: 1, timeout: 900_000 }, () => {
  test('end to end: 6 jobs, stage-in and stage-out, one job retried after failing its first attempt', async () => {
    const name = unique('e2e');
    const r = await vmwu(['sweep', join(plans, 'e2e.pln'), '--base', 'tiny', '--name', name, '--slots', '2', '--retries', '2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const st = JSON.parse(r.stdout) as Status;
    assert.equal(st.state, 'succeeded');
    assert.deepEqual([st.counts.succeeded, st.total], [6, 6]);

    const rs = await results(name);
    assert.deepEqual(rs.map((j) => j.job), [1, 2, 3, 4, 5, 6]);
    for (const j of rs) {
      assert.equal(j.status, 'succeeded', `job ${j.job}`);
      assert.equal(j.exitCode, 0);
      assert.deepEqual(j.params, { n: String(j.job), label: 'vmwu e2e' });
      assert.equal(j.attempts, j.job === 3 ? 2 : 1, `job ${j.job} attempts`);
      assert.equal(typeof j.phases?.boot, 'number');
      assert.deepEqual(j.outputs, [join(st.resultsDir, `out-${j.job}.txt`)]);
      assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `n=${j.job} label=vmwu e2e\nshared input\n`);
      assert.equal(readFileSync(join(j.outDir!, 'stdout'), 'utf8'), `job ${j.job} attempt ${j.attempts}\n`);
      // Each attempt records where it ran and what its QEMU used (read from /proc once the guest was off).
      for (const a of j.history) {
        assert.equal(a.host, hostname());
        assert.ok(a.usage && a.usage.source === 'proc' && a.usage.cpuMs > 0 && a.usage.maxRssKiB > 32 * 1024, JSON.stringify(a.usage));
      }
    }
    const three = rs[2]!;
    assert.deepEqual(three.history.map((a) => [a.status, a.exitCode]), [['failed', 1], ['succeeded', 0]]);
    assert.match(three.history[0]!.error!, /exit status 1: vmwu: command 6 failed with status 1/);
    assert.notEqual(three.history[0]!.runId, three.history[1]!.runId, 'each attempt has its own run');
    assert.ok(existsSync(join(three.history[0]!.outDir, 'stderr')), 'the failed attempt\'s outputs are kept');
    assertExactlyOnce(rs);
    await assertNothingLeft(rs);

    // logs EXP/JOB: the latest attempt's run; the run-id form still works.
    const logs = await vmwu(['logs', `${name}/3`]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'job 3 attempt 2\n');
    const byId = await vmwu(['logs', three.history[0]!.runId!]);
    assert.equal(byId.stdout, 'job 3 attempt 1\n');
    const list = await vmwu(['experiments', '--json']);
    assert.ok((JSON.parse(list.stdout) as { name: string; state: string }[]).some((x) => x.name === name && x.state === 'succeeded'));
  });

  test('kill -9 of the runner mid-sweep, then resume: every job ends exactly once, nothing is left behind', async () => {
    const name = unique('crash');
    const { child, done } = startCli(['sweep', join(plans, 'crash.pln'), '--base', 'tiny', '--name', name, '--slots', '2']);
    await until(async () => existsSync(join(testHome(), 'experiments', name)) && (await status(name)).counts.succeeded >= 3);
    child.kill('SIGKILL');
    const killed = await done;
    assert.equal(killed.signal, 'SIGKILL');
    const mid = await status(name);
    assert.equal(mid.state, 'stopped', 'a dead runner shows as stopped');
    assert.ok(mid.counts.succeeded < 12, 'killed before the end');
    const before = await results(name);
    const doneBefore = new Map(before.filter((j) => j.status === 'succeeded').map((j) => [j.job, j.history.length]));

    const r = await vmwu(['resume', name, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Status).state, 'succeeded');
    const rs = await results(name);
    assertExactlyOnce(rs);
    for (const j of rs) {
      assert.equal(j.status, 'succeeded');
      if (doneBefore.has(j.job)) assert.equal(j.history.length, doneBefore.get(j.job), `job ${j.job} was done before the kill and not re-run`);
      assert.equal(readFileSync(join(mid.resultsDir, `out-${j.job}.txt`), 'utf8'), `${j.job}\n`);
    }
    assert.deepEqual(readdirSync(mid.resultsDir).filter((f) => !f.startsWith('.')).sort(), Array.from({ length: 12 }, (_, i) => `out-${i + 1}.txt`).sort());
    await assertNothingLeft(rs);
  });

  test('two sweeps started at once, --slots 1 each, both finish and the store stays consistent', async () => {
    const names = [unique('twin'), unique('twin')];
    const runs = names.map((n) => startCli(['sweep', join(plans, 'small.pln'), '--base', 'tiny', '--name', n, '--slots', '1', '--json']).done);
    const outs = await Promise.all(runs);
    for (const [i, o] of outs.entries()) {
      assert.equal(o.code, 0, `${names[i]}: ${o.stderr}`);
      assert.equal((JSON.parse(o.stdout) as Status).state, 'succeeded');
    }
    for (const n of names) {
      const rs = await results(n);
      assert.deepEqual(rs.map((j) => [j.job, j.status, j.attempts]), [[1, 'succeeded', 1], [2, 'succeeded', 1], [3, 'succeeded', 1]]);
      assertExactlyOnce(rs);
      await assertNothingLeft(rs);
    }
  });

  test('--dry-run of a 10,000-job plan prints the jobs and their count; boots nothing, needs no unit', async () => {
    const r = await vmwu(['sweep', join(plans, 'big.pln'), '--dry-run', '--seed', '7']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.at(-1), '10000 jobs (seed 7)');
    assert.equal(lines.length, 10_002);
    assert.match(lines[1]!, /^1\s+1\s+0$/);
    const j = await vmwu(['sweep', join(plans, 'big.pln'), '--dry-run', '--json']);
    const jobs = JSON.parse(j.stdout) as { index: number; params: Record<string, string> }[];
    assert.equal(jobs.length, 10_000);
    assert.deepEqual(jobs[9_999]!.params, { a: '100', b: '9.9' });
  });

  test('--detach runs in the background; cancel stops its VMs and cancels what is left', async () => {
    const name = unique('cancel');
    const r = await vmwu(['sweep', join(plans, 'slow.pln'), '--base', 'tiny', '--name', name, '--slots', '2', '--detach', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { pid, log } = JSON.parse(r.stdout) as { pid: number; log: string };
    assert.ok(pid > 0);
    // Both slots busy with guests that are running their ten-minute sleep.
    for (const job of [1, 2]) await until(async () => (await vmwu(['logs', `${name}/${job}`])).stdout.includes(`started ${job}`));
    const st = await status(name);
    assert.equal(st.state, 'running');
    assert.equal(st.owner?.pid, pid);

    const c = await vmwu(['cancel', name, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as Status).state, 'cancelled');
    const rs = await results(name);
    assert.deepEqual(rs.map((j) => j.status), ['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    assert.ok(rs.every((j) => j.history.every((a) => a.status === 'cancelled')), 'stopped attempts are cancelled, not failed');
    await assertNothingLeft(rs);
    await until(async () => gone(pid));
    assert.match(readFileSync(log, 'utf8'), /job 1 attempt 1 started/);
    const again = await vmwu(['cancel', name]);
    assert.equal(again.code, 0);
  });
});
