import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { countingPlan, countTo, processesMentioning, startCli, testHome, until, vmwu } from '../support/harness.js';

/**
 * Checkpoints of running jobs on real guests. The job counts: it appends 1..N
 * to a file and prints each number, with sleeps, so a number done twice or
 * skipped after a restore shows in the file and in the log.
 */
const N = 16;
const counter = ['--base', 'tiny', '--timeout', '5m', '--', 'sh', '-c',
  `i=1; while [ $i -le ${N} ]; do echo $i >> count; echo "n $i"; i=$((i + 1)); sleep 0.5; done; echo done`];
const expectedLog = Array.from({ length: N }, (_, i) => `n ${i + 1}\n`).join('') + 'done\n';
const expectedCount = countTo(N);

/** Starts the counting job; resolves once it has printed `n <k>`. */
async function startCounter(k: number, extra: string[] = []) {
  const run = startCli(['run', ...extra, ...counter]);
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  run.child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const id = await until(() => /run ([0-9a-f]{12})/.exec(stderr)?.[1]);
  await until(() => stdout.includes(`n ${k}\n`));
  return { ...run, id, stdout: () => stdout };
}

/** A statement on the test store's database, as another process. */
async function sqlite(sql: string): Promise<void> {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(testHome(), 'vmwu.db'));
  try {
    db.pragma('busy_timeout = 5000');
    db.exec(sql);
  } finally {
    db.close();
  }
}

function runDir(id: string): string {
  return join(testHome(), 'runs', id);
}

/** The RAM file a run's QEMU maps, from its command line: `mem-path=`. */
function memoryFileOf(id: string): string {
  const [pid] = processesMentioning(id);
  assert.ok(pid, `no QEMU for run ${id}`);
  const path = /mem-path=([^,\0]+)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1];
  assert.ok(path, 'its RAM is a file');
  return path;
}

describe('checkpoints of running jobs', { concurrency: false, timeout: 600_000 }, () => {
  let stoppedCheckpoint = '';

  test('checkpoint --stop halfway, then restore: the count holds 1..N exactly once, the log goes on', async () => {
    const job = await startCounter(N / 2);
    const ck = await vmwu(['checkpoint', job.id, '--stop', '--json']);
    assert.equal(ck.code, 0, ck.stderr);
    const rec = JSON.parse(ck.stdout) as { id: string; runId: string; stopped: boolean };
    assert.equal(rec.runId, job.id);
    assert.equal(rec.stopped, true);
    const first = await job.done;
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`stopped at checkpoint ${rec.id}`));
    assert.deepEqual(processesMentioning(job.id), [], 'the stopped job\'s QEMU is gone');
    const runs = JSON.parse((await vmwu(['runs', '--json'])).stdout) as { id: string; status: string }[];
    assert.equal(runs.find((r) => r.id === job.id)?.status, 'stopped');

    const r = await vmwu(['restore', rec.id, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { id: string; status: string; exitCode: number; outDir: string; start: { mode: string; checkpoint: string } };
    assert.equal(res.id, job.id, 'the same run goes on');
    assert.equal(res.status, 'succeeded');
    assert.deepEqual(res.start, { mode: 'restore', checkpoint: rec.id, cpu: 'max' }, 'restored from the checkpoint, with the CPU model it was saved with');
    assert.equal(readFileSync(join(res.outDir, 'work', 'count'), 'utf8'), expectedCount);
    assert.equal(readFileSync(join(res.outDir, 'stdout'), 'utf8'), expectedLog, 'stdout goes on in the run\'s log, nothing twice');
    stoppedCheckpoint = rec.id;
  });

  test('--checkpointable: the RAM is a file of its own, saved and restored as a file, twice; the count holds 1..N exactly once, nothing is left', async () => {
    const job = await startCounter(4, ['--checkpointable']);
    const memory = memoryFileOf(job.id);
    assert.match(memory, new RegExp(`^/dev/shm/vmwu-${process.getuid!()}/memory/\\.memory-\\d+_\\d+-[0-9a-f]{12}/memory$`), 'the running guest\'s RAM is its file on tmpfs');
    const first = await vmwu(['checkpoint', job.id, '--stop', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const rec = JSON.parse(first.stdout) as { id: string; memory?: string };
    assert.equal(rec.memory, 'memory');
    await job.done;
    assert.equal(existsSync(dirname(memory)), false, 'the stopped job\'s RAM file went with it');
    const dirOf = async (ck: string) => (JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { id: string; dir: string }[]).find((c) => c.id === ck)!.dir;
    const dir = await dirOf(rec.id);
    assert.ok(statSync(join(dir, 'state')).size < 1024 ** 2, `the state holds the devices alone (${statSync(join(dir, 'state')).size} bytes)`);
    assert.equal(statSync(join(dir, 'memory')).size, 256 * 1024 ** 2);

    // Restored, the job's RAM is again a file of its own: its next checkpoint is a copy too.
    const restore = startCli(['restore', rec.id, '--json']);
    let out = '';
    restore.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await until(() => existsSync(join(runDir(job.id), 'stdout.log')) && readFileSync(join(runDir(job.id), 'stdout.log'), 'utf8').includes('n 8\n'));
    const memory2 = memoryFileOf(job.id);
    assert.notEqual(memory2, memory, 'the restore\'s own, named for its process');
    const second = await vmwu(['checkpoint', job.id, '--stop', '--json']);
    assert.equal(second.code, 0, second.stderr);
    const rec2 = JSON.parse(second.stdout) as { id: string; memory?: string };
    assert.equal(rec2.memory, 'memory');
    assert.equal((await restore.done).code, 0);
    assert.match(out, /"status": "stopped"/);

    const r = await vmwu(['restore', rec2.id, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { status: string; outDir: string; start: { checkpoint: string } };
    assert.equal(res.status, 'succeeded');
    assert.equal(res.start.checkpoint, rec2.id);
    assert.equal(readFileSync(join(res.outDir, 'work', 'count'), 'utf8'), expectedCount);
    assert.equal(readFileSync(join(res.outDir, 'stdout'), 'utf8'), expectedLog, 'nothing twice in the log');
    assert.deepEqual(processesMentioning(job.id), []);
    assert.equal(existsSync(dirname(memory2)), false);
  });

  test('after kill -9 of the vmwu that ran it, the job goes on from its checkpoint, not from zero', async () => {
    const job = await startCounter(4);
    const ck = await vmwu(['checkpoint', job.id, '--json']);
    assert.equal(ck.code, 0, ck.stderr);
    const rec = JSON.parse(ck.stdout) as { id: string; stopped: boolean };
    assert.equal(rec.stopped, false);
    // The job went on after the checkpoint: these numbers are in the log, and must not be there twice.
    await until(() => job.stdout().includes('n 9\n'));
    job.child.kill('SIGKILL');
    await job.done;
    const r = await vmwu(['restore', rec.id, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { status: string; outDir: string };
    assert.equal(res.status, 'succeeded');
    assert.equal(readFileSync(join(res.outDir, 'work', 'count'), 'utf8'), expectedCount);
    assert.equal(readFileSync(join(runDir(job.id), 'stdout.log'), 'utf8'), expectedLog);
    assert.deepEqual(processesMentioning(job.id), [], 'the dead vmwu\'s QEMU was reaped');
  });

  test('a checkpoint of another QEMU build, or of a finished run, is refused with the reason', async () => {
    const rows = JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { id: string; dir: string }[];
    const row = rows.find((c) => c.id === stoppedCheckpoint)!;
    const again = await vmwu(['restore', row.id]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already finished/);
    const file = join(row.dir, 'checkpoint.json');
    const rec = JSON.parse(readFileSync(file, 'utf8')) as { qemu: string };
    writeFileSync(file, JSON.stringify({ ...rec, qemu: '/usr/bin/qemu-system-x86_64:1:1' }));
    const other = await vmwu(['restore', row.id]);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /saved by another QEMU build/);
    assert.match(other.stderr, /hint: /);
  });

  test('a checkpoint is untrusted: a forged record, a disk that names a host file, a pool host\'s stream are refused; the real one restores', async () => {
    const job = await startCounter(4);
    const ck = await vmwu(['checkpoint', job.id, '--stop', '--json']);
    assert.equal(ck.code, 0, ck.stderr);
    await job.done;
    const { id } = JSON.parse(ck.stdout) as { id: string };
    const row = (JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { id: string; dir: string; origin: string }[]).find((c) => c.id === id)!;
    assert.equal(row.origin, 'local');
    const file = join(row.dir, 'checkpoint.json');
    const original = readFileSync(file, 'utf8');
    const rec = JSON.parse(original) as { vm: Record<string, unknown> };
    const refused = async (why: RegExp) => {
      const r = await vmwu(['restore', id]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, why);
      const runs = JSON.parse((await vmwu(['runs', '--json'])).stdout) as { id: string; status: string }[];
      assert.equal(runs.find((x) => x.id === job.id)?.status, 'stopped', 'nothing was started: the job can still go on');
      assert.deepEqual(processesMentioning(job.id), []);
    };
    // The record asks for a network, all the memory and CPUs there are, KVM.
    for (const vm of [{ network: true }, { memoryMiB: 1024 * 1024 }, { cpus: 1024 }, { accel: 'kvm' }]) {
      writeFileSync(file, JSON.stringify({ ...rec, vm: { ...rec.vm, ...vm } }));
      await refused(/does not belong to this job/);
    }
    writeFileSync(file, original);
    // The root overlay names a file of this host as its backing: the guest would read it.
    const secret = join(testHome(), '..', `secret-${id}.txt`);
    writeFileSync(secret, 'a secret of the host');
    const root = join(row.dir, 'root.qcow2');
    const saved = readFileSync(root);
    execFileSync('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', secret, '-F', 'raw', root]);
    await refused(/root\.qcow2: it has a backing file/);
    writeFileSync(root, saved);
    // The same checkpoint, marked as fetched from an SSH pool host: its stream is for the pool only.
    await sqlite(`UPDATE checkpoints SET origin = 'host:h9' WHERE id = '${id}'`);
    await refused(/came from SSH pool host h9/);
    await sqlite(`UPDATE checkpoints SET origin = 'local' WHERE id = '${id}'`);
    const r = await vmwu(['restore', id, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { status: string; outDir: string };
    assert.equal(res.status, 'succeeded');
    assert.equal(readFileSync(join(res.outDir, 'work', 'count'), 'utf8'), expectedCount);
  });

  test('a suspended sweep goes on from its checkpoints when resumed; every job ends exactly once', async () => {
    const plan = countingPlan(4, 10, 'count-${jobindex}');
    const name = `suspend-${Date.now()}`;
    const sweep = startCli(['sweep', plan, '--base', 'tiny', '--slots', '2', '--retries', '0', '--name', name]);
    interface Result { job: number; status: string; history: { status: string; runId: string | null; start: { checkpoint?: string } | null }[] }
    const results = async () => {
      const r = await vmwu(['results', name, '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as Result[]) : [];
    };
    // Two jobs are half way through their count.
    await until(async () => {
      const running = (await results()).flatMap((j) => j.history.filter((a) => a.status === 'running' && a.runId).map((a) => a.runId!));
      return running.length === 2 && running.every((id) => {
        const log = join(runDir(id), 'stdout.log');
        return existsSync(log) && readFileSync(log, 'utf8').includes('n 4\n');
      });
    });
    const sus = await vmwu(['suspend', name, '--json']);
    assert.equal(sus.code, 0, sus.stderr);
    assert.equal((JSON.parse(sus.stdout) as unknown[]).length, 2, 'both running jobs were checkpointed');
    const first = await sweep.done;
    assert.match(first.stderr, /stopped|interrupted|suspend/i, first.stderr);
    const exps = JSON.parse((await vmwu(['experiments', '--json'])).stdout) as { name: string; state: string }[];
    assert.equal(exps.find((x) => x.name === name)?.state, 'stopped');

    const res = await vmwu(['resume', name]);
    assert.equal(res.code, 0, res.stderr);
    const rs = await results();
    assert.equal(rs.length, 4);
    let resumed = 0;
    for (const j of rs) {
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      assert.equal(j.history.filter((a) => a.status === 'succeeded').length, 1, `job ${j.job} succeeded once`);
      const last = j.history[j.history.length - 1]!;
      if (last.start?.checkpoint) resumed++;
      const count = readFileSync(join(testHome(), 'experiments', name, 'results', `count-${j.job}`), 'utf8');
      assert.equal(count, countTo(10), `job ${j.job} counted 1..10 exactly once`);
    }
    assert.equal(resumed, 2, 'the two suspended jobs went on from their checkpoints');
  });

  test('a sweep killed with -9 goes on from its jobs\' periodic checkpoints when resumed', async () => {
    const plan = countingPlan(1, 16, 'count');
    const name = `periodic-${Date.now()}`;
    const sweep = startCli(['sweep', plan, '--base', 'tiny', '--retries', '0', '--name', name, '--checkpoint-every', '2s']);
    const checkpoints = async () => JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { experiment: string | null; job: number | null; runId: string; dir: string }[];
    const mine = await until(async () => {
      const c = (await checkpoints()).filter((x) => x.experiment === name && x.job === 1);
      return c.length >= 2 && c;
    });
    // Checkpointed every so often, the job's RAM is a file of its own.
    assert.ok(existsSync(join(mine[0]!.dir, 'memory')));
    const memory = memoryFileOf(mine[0]!.runId);
    sweep.child.kill('SIGKILL');
    await sweep.done;
    const res = await vmwu(['resume', name]);
    assert.equal(res.code, 0, res.stderr);
    interface Result { status: string; history: { status: string; start: { checkpoint?: string } | null }[] }
    const [job] = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as Result[];
    assert.equal(job!.status, 'succeeded');
    assert.deepEqual(job!.history.map((a) => a.status), ['interrupted', 'succeeded']);
    assert.ok(job!.history[1]!.start?.checkpoint, 'the second attempt went on from a checkpoint, not from zero');
    assert.equal(readFileSync(join(testHome(), 'experiments', name, 'results', 'count'), 'utf8'), countTo(16));
    assert.deepEqual(processesMentioning(mine[0]!.runId), [], 'no QEMU left');
    assert.equal(existsSync(dirname(memory)), false, 'the killed attempt\'s RAM file was reaped');
  });

  test('gc removes the checkpoints of finished runs and jobs, and keeps the blobs and checkpoint a stopped job goes on from', async () => {
    const job = await startCounter(2);
    const ck = JSON.parse((await vmwu(['checkpoint', job.id, '--stop', '--json'])).stdout) as { id: string };
    await job.done;
    const before = JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { id: string; dir: string }[];
    const gc = await vmwu(['gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    const removed = (JSON.parse(gc.stdout) as { checkpoints: { id: string }[] }).checkpoints.map((c) => c.id);
    assert.ok(removed.includes(stoppedCheckpoint), 'the finished run\'s checkpoint went');
    assert.ok(!removed.includes(ck.id), 'the stopped run\'s checkpoint stays');
    assert.equal(existsSync(before.find((c) => c.id === stoppedCheckpoint)!.dir), false);
    const r = await vmwu(['restore', ck.id, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { status: string; outDir: string };
    assert.equal(res.status, 'succeeded');
    assert.equal(readFileSync(join(res.outDir, 'work', 'count'), 'utf8'), expectedCount);
  });
});
