import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * The result cache: the same sweep again does not boot a VM for a job whose key the
 * store holds a succeeded result for; its outputs are linked and its record says
 * whose they were. A changed input re-runs that job only; --no-cache runs them all.
 */

const dir = tmp('vmwu-cache-');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;
// Each job's output names a value drawn in the guest: a job that ran again would differ.
const plan = join(dir, 'cached.pln');
writeFileSync(plan, [
  'parameter i integer range from 1 to 3',
  'task main',
  '    copy root:input-$i.txt node:input.txt',
  '    shexec "cat input.txt > out.txt; head -c 8 /dev/urandom | od -An -tx1 | tr -d \' \\n\' >> out.txt"',
  '    copy node:out.txt root:out-$i.txt',
  'endtask',
  '',
].join('\n'));
const input = (i: number, text: string) => writeFileSync(join(dir, `input-${i}.txt`), text);

interface Job { job: number; status: string; cachedFrom: string | null; outputs: string[]; runId: string | null }

// A QEMU that counts its starts, then is the real one: an answered job starts none.
const starts = join(dir, 'qemu-starts');
const countingQemu = join(dir, 'qemu-counting');
writeFileSync(countingQemu, `#!/bin/sh\necho start >> '${starts}'\nexec qemu-system-x86_64 "$@"\n`, { mode: 0o755 });
const qemuStarts = () => (existsSync(starts) ? readFileSync(starts, 'utf8').split('\n').filter(Boolean).length : 0);

async function sweep(name: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Job[]> {
  // The suite runs with the cache off (scripts/test.sh): on here.
  const r = await vmwu(['sweep', plan, '--base', 'tiny', '--name', name, '--retries', '0', '--memory', '128M', ...extra], { VMWU_RESULT_CACHE: 'on', ...env });
  assert.equal(r.code, 0, r.stderr);
  lastStderr = r.stderr;
  const res = await vmwu(['results', name, '--json']);
  return JSON.parse(res.stdout) as Job[];
}

const out = (j: Job) => readFileSync(j.outputs[0]!, 'utf8');
let lastStderr = '';

describe('the result cache', { concurrency: 1, timeout: 600_000 }, () => {
  test('a sweep run again takes every result from the cache; a changed input re-runs that job; --no-cache runs all', async () => {
    for (const i of [1, 2, 3]) input(i, `input ${i} ${randomBytes(4).toString('hex')}\n`);
    const first = await sweep(unique('cache-a'));
    assert.deepEqual(first.map((j) => [j.status, j.cachedFrom]), [['succeeded', null], ['succeeded', null], ['succeeded', null]]);

    const secondName = unique('cache-b');
    const second = await sweep(secondName, [], { VMWU_QEMU: countingQemu });
    assert.equal(qemuStarts(), 0, 'no VM was started for a job the cache answered');
    for (const [k, j] of second.entries()) {
      assert.equal(j.status, 'succeeded');
      assert.match(j.cachedFrom ?? '', new RegExp(`^cache-a-[0-9a-f]{6}/${k + 1} attempt 1$`));
      assert.equal(j.runId, first[k]!.runId, 'names the run it came from');
      assert.equal(out(j), out(first[k]!), 'the same outputs, not a new draw');
    }
    const table = await vmwu(['results', secondName]);
    assert.match(table.stdout, /cached \(cache-a-[0-9a-f]{6}\/1 attempt 1\)/);
    // Linked, not copied: the attempt's file is the first one's inode.
    const st = (j: Job) => statSync(join(j.outputs[0]!));
    assert.ok(st(second[0]!).size > 0);

    // A cached output changed behind the store's back (all its hard links with it): found by digest, that job runs.
    const firstAttempt = (job: number) => join(testHome(), 'experiments', second[job - 1]!.cachedFrom!.split('/')[0]!, 'jobs', String(job), 'attempt-1');
    writeFileSync(join(firstAttempt(1), 'work', 'out.txt'), 'tampered\n');
    const afterTamper = await sweep(unique('cache-t'));
    assert.deepEqual(afterTamper.map((j) => j.cachedFrom === null), [true, false, false]);
    assert.match(lastStderr, /job 1: the cached result of cache-a-[0-9a-f]{6}\/1 attempt 1 cannot be used: work\/out\.txt was changed; it runs/);
    assert.notEqual(out(afterTamper[0]!), 'tampered\n');
    assert.ok(out(afterTamper[0]!).startsWith('input 1 '));
    // Its new result takes the key.
    const afterRerun = await sweep(unique('cache-u'));
    assert.match(afterRerun[0]!.cachedFrom ?? '', /^cache-t-[0-9a-f]{6}\/1 attempt 1$/);

    // Changed to what no earlier run of this test on this store had either.
    const changed = `input 2 changed ${randomBytes(4).toString('hex')}\n`;
    input(2, changed);
    const third = await sweep(unique('cache-c'));
    assert.deepEqual(third.map((j) => j.cachedFrom === null), [false, true, false]);
    assert.ok(out(third[1]!).startsWith(changed));

    const fresh = await sweep(unique('cache-d'), ['--no-cache']);
    assert.deepEqual(fresh.map((j) => j.cachedFrom), [null, null, null]);
    for (const k of [0, 2]) assert.notEqual(out(fresh[k]!), out(first[k]!), 'ran again: a new draw');
  });

  test('vmwu run: the same job again is answered from the cache with its output shown again; a changed input, --no-cache and a network job run', async () => {
    const token = randomBytes(4).toString('hex');
    const file = join(dir, 'run-input.txt');
    writeFileSync(file, `run input ${token}\n`);
    const job = ['--base', 'tiny', '--input', file, '--', 'sh', '-c', `cat run-input.txt; head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n' | tee drawn.txt; echo; echo ${token} >&2`];
    interface RunJson { id: string; status: string; outDir: string; cachedFrom?: string }
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const r = await vmwu(['run', ...args], { VMWU_RESULT_CACHE: 'on', ...env });
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    const first = await run(job);
    assert.doesNotMatch(first.stderr, /result cache/);
    const before = qemuStarts();
    const again = await run(job, { VMWU_QEMU: countingQemu });
    assert.equal(qemuStarts(), before, 'no VM started');
    assert.equal(again.stdout, first.stdout, 'the first run\'s output, shown again');
    assert.match(again.stderr, new RegExp(`^${token}$`, 'm'), 'its stderr too');
    assert.match(again.stderr, /the result cache has it: the same job succeeded as run [0-9a-f]{12}/);
    const asJson = JSON.parse((await run(['--json', ...job])).stdout) as RunJson;
    assert.match(asJson.cachedFrom ?? '', /^run [0-9a-f]{12}$/);
    assert.equal(readFileSync(join(asJson.outDir, 'work', 'drawn.txt'), 'utf8'), first.stdout.split('\n')[1], 'its outputs linked in');
    assert.equal((JSON.parse(readFileSync(join(asJson.outDir, 'run.json'), 'utf8')) as RunJson).id, asJson.id, 'its own run.json');
    const listed = JSON.parse((await vmwu(['runs', '--json'])).stdout) as { id: string; cachedFrom: string | null }[];
    assert.equal(listed.find((x) => x.id === asJson.id)?.cachedFrom, asJson.cachedFrom);

    writeFileSync(file, `run input ${token} changed\n`);
    const changed = await run(job);
    assert.doesNotMatch(changed.stderr, /result cache/);
    assert.ok(changed.stdout.startsWith(`run input ${token} changed\n`));
    const fresh = await run(['--no-cache', ...job]);
    assert.doesNotMatch(fresh.stderr, /result cache/);
    assert.notEqual(fresh.stdout, changed.stdout, 'ran again: a new draw');

    // What a job with a network fetched, the key cannot see: cached only with --cache.
    const net = ['--network', '--base', 'tiny', '--', 'echo', `net ${token}`];
    for (const r of [await run(net), await run(net), await run(['--cache', ...net])]) assert.doesNotMatch(r.stderr, /result cache/);
    assert.match((await run(['--cache', ...net])).stderr, /the result cache has it/);
  });
});
