import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { arrayRanges, batchScript, chunkJobs, slurmResources, slurmTime, type BatchScriptInput } from '../../../../src/executors/slurm/batch-script.js';
import { fixturesDir } from '../../../support/fixture-path.js';

/** Compares with test/fixtures/executors/NAME; UPDATE_GOLDEN=1 rewrites it. */
function golden(name: string, text: string): void {
  const file = join(fixturesDir, 'executors', name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
  assert.equal(text, readFileSync(file, 'utf8'), `differs from ${file} (UPDATE_GOLDEN=1 to accept)`);
}

const input = (over: Partial<BatchScriptInput> = {}): BatchScriptInput => ({
  experiment: "mandel's", round: 2, chunk: chunkJobs([1, 2, 3, 4, 7, 9, 10], 1001)[0]!,
  resources: slurmResources({ memoryMiB: 512, cpus: 2, timeoutMs: 10 * 60_000 }),
  options: { partition: 'short', account: 'proj1', extra: ['--qos=low', '--exclude=n7'], maxParallel: 3 },
  tasksDir: '/shared/vmwu/experiments/m/slurm/round-2', node: '/opt/node/bin/node', vmwuJs: '/opt/vmwu/bin/vmwu.js', logDir: '/shared/vmwu/experiments/m/slurm',
  ...over,
});

test('resources map to Slurm: memory + overhead, cpus, walltime + boot margin in minutes', () => {
  assert.deepEqual(slurmResources({ memoryMiB: 256, cpus: 1, timeoutMs: 30_000 }), { memMiB: 512, cpus: 1, timeMin: 6 });
  assert.equal(slurmTime(7), '00:07:00');
  assert.equal(slurmTime(125), '02:05:00');
  assert.equal(slurmTime(1440 * 2 + 61), '2-01:01:00');
});

test('array ranges are compact and sorted', () => {
  assert.equal(arrayRanges([4, 1, 2, 3, 7, 9, 10, 11]), '1-4,7,9-11');
  assert.equal(arrayRanges([5]), '5');
});

test('jobs beyond MaxArraySize go out in chunks, shifted by an offset', () => {
  const chunks = chunkJobs(Array.from({ length: 25 }, (_, i) => i + 1), 11);
  assert.deepEqual(chunks.map((c) => [c.offset, c.taskIds[0], c.taskIds.at(-1), c.jobs.length]), [[0, 1, 10, 10], [10, 1, 10, 10], [20, 1, 5, 5]]);
  for (const c of chunks) for (const [i, t] of c.taskIds.entries()) assert.equal(t + c.offset, c.jobs[i]);
  assert.ok(chunks.every((c) => Math.max(...c.taskIds) < 11));
  // Sparse indices: a chunk starts at its first job.
  assert.deepEqual(chunkJobs([3, 500, 2000], 1001).map((c) => [c.offset, c.taskIds]), [[2, [1, 498]], [1999, [1]]]);
});

test('batch script (golden)', () => {
  golden('slurm-batch.sbatch', batchScript(input()));
  const minimal = batchScript(input({ options: {}, experiment: 'plain', chunk: chunkJobs([1001, 1002], 1001)[0]! }));
  assert.match(minimal, /^#SBATCH --array=1-2$/m);
  assert.match(minimal, /^OFFSET=1000$/m);
  assert.doesNotMatch(minimal, /--partition|--account/);
});

/** Runs the generated script with sh, with only the given programs on PATH. */
function runScript(script: string, programs: string[], env: Record<string, string>): { code: number | null; stderr: string; argsFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-sbatch-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const argsFile = join(dir, 'args');
  for (const p of programs) {
    writeFileSync(join(bin, p), `#!/bin/sh\nprintf '%s\\n' "$@" > ${argsFile}\n`);
    chmodSync(join(bin, p), 0o755);
  }
  const path = join(dir, 'job.sh');
  writeFileSync(path, script);
  const r = spawnSync('/bin/sh', [path], { env: { PATH: `${bin}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, argsFile };
}

test('a node without QEMU, vmwu or the task file fails its task with a clear message; a good node execs vmwu sweep-task', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-node-'));
  writeFileSync(join(dir, '12.json'), '{}');
  writeFileSync(join(dir, 'vmwu.js'), '');
  const fakeNode = join(dir, 'node');
  writeFileSync(fakeNode, `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'args')}\n`);
  chmodSync(fakeNode, 0o755);
  const env = { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_JOB_ID: '77' };
  const s = (o: Partial<BatchScriptInput> = {}) => batchScript(input({ tasksDir: dir, node: fakeNode, vmwuJs: join(dir, 'vmwu.js'), chunk: { offset: 10, taskIds: [1, 2], jobs: [11, 12] }, ...o }));
  // Without qemu-system-x86_64 on PATH (unless the host has it in /usr/bin: then this check is skipped).
  if (!existsSync('/usr/bin/qemu-system-x86_64') && !existsSync('/bin/qemu-system-x86_64')) {
    const noQemu = runScript(s(), [], env);
    assert.equal(noQemu.code, 3);
    assert.match(noQemu.stderr, /cannot run work units: qemu-system-x86_64 is not on PATH/);
  }
  const noVmwu = runScript(s({ vmwuJs: join(dir, 'missing.js') }), ['qemu-system-x86_64'], env);
  assert.equal(noVmwu.code, 3);
  assert.match(noVmwu.stderr, /vmwu is not installed at .*missing\.js/);
  const noStore = runScript(s({ tasksDir: join(dir, 'nowhere') }), ['qemu-system-x86_64'], env);
  assert.equal(noStore.code, 3);
  assert.match(noStore.stderr, /does not see the task file .*nowhere\/12\.json/);
  const ok = runScript(s(), ['qemu-system-x86_64'], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(readFileSync(join(dir, 'args'), 'utf8').trim().split('\n'),
    [join(dir, 'vmwu.js'), 'sweep-task', '--task', join(dir, '12.json'), '--batch-id', '77_2']);
});

test('a job of several VMs asks N nodes, one task on each, and starts its tasks with srun', () => {
  const res = slurmResources({ memoryMiB: 256, cpus: 2, timeoutMs: 60_000 }, undefined, 3);
  assert.equal(res.nodes, 3);
  const s = batchScript(input({ resources: res }));
  assert.match(s, /^#SBATCH --nodes=3\n#SBATCH --ntasks=3\n#SBATCH --ntasks-per-node=1$/m);
  assert.doesNotMatch(s, /^#SBATCH --ntasks=1$/m);
  assert.match(s, /^exec srun --nodes=3 --ntasks=3 --ntasks-per-node=1 "\$NODE" "\$VMWU_JS" sweep-task --task "\$TASK" --batch-id "\$\{SLURM_ARRAY_JOB_ID\}_\$\{SLURM_ARRAY_TASK_ID\}"$/m);
  assert.equal(slurmResources({ memoryMiB: 256, cpus: 2, timeoutMs: 60_000 }).nodes, undefined);
});
