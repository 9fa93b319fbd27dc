import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { instanceDir, nodeDirs } from '../../src/run/node-dirs.js';
import { fixtures, listTree, processesMentioning, startCli, testHome, tmp, vmwu, waitFor } from '../support/harness.js';

interface RunJson {
  id: string; status: string; exitCode: number | null; accel: string; outDir: string; totalMs: number;
  phases: Record<string, number>; error?: { code: string; message: string };
  usage?: { cpuMs: number; maxRssKiB: number; source: string };
}

function parse(stdout: string): RunJson {
  return JSON.parse(stdout) as RunJson;
}

/** Nothing of the instance may be left: no QEMU, no overlay, no throw-away disk. */
function assertCleanedUp(id: string): void {
  assert.deepEqual(processesMentioning(id), [], 'no QEMU process left for the run');
  const runDir = join(testHome(), 'runs', id);
  const left = existsSync(runDir) ? readdirSync(runDir).filter((f) => /\.(qcow2|img|sock|pid)$/.test(f)) : [];
  assert.deepEqual(left, [], 'no overlay, disk, socket or pidfile left in the run dir');
  // Disks and sockets lived in node-local scratch, never in the store; that is gone too.
  assert.equal(existsSync(instanceDir(nodeDirs(undefined, testHome()), id)), false, 'no scratch left');
}

/** Starts `vmwu run` of a guest that sleeps forever; resolves once the job is running inside the guest. */
async function startSleeper() {
  const { child, done } = startCli(['run', '--base', 'tiny', '--', 'sh', '-c', 'echo started; sleep 100000']);
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  // The guest has printed, so QEMU is up and the job is in the middle of its run.
  await waitFor('the job to start', () => stdout.includes('started'), 120_000);
  return { child, done, id: /run ([0-9a-f]{12})/.exec(stderr)![1]! };
}

describe('vmwu run boots a real guest', { concurrency: 3, timeout: 240_000 }, () => {
  test('params, inputs and an app go in; outputs, stdout, stderr and exit 0 come out', async () => {
    const dir = tmp();
    const data = join(dir, 'data.txt');
    writeFileSync(data, 'one\ntwo\nthree\n');
    const out = join(dir, 'result');
    const r = await vmwu(['run', '--base', 'tiny', '--app', join(fixtures, 'app'), '--param', 'n=5', '--input', data,
      '--out', out, '--json', '--', '/app/run.sh', '${n}']);
    assert.equal(r.code, 0, r.stderr);
    const j = parse(r.stdout);
    assert.equal(j.status, 'succeeded');
    assert.equal(j.exitCode, 0);
    assert.equal(j.outDir, out);
    assert.match(j.id, /^[0-9a-f]{12}$/);
    assert.ok(['kvm', 'tcg'].includes(j.accel));
    for (const p of ['prepare', 'boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown', 'collect']) {
      assert.equal(typeof j.phases[p], 'number', `phase ${p}`);
    }
    // Booted or restored from a template (test/integration/fast-start.test.ts): either is measured from guest events.
    assert.ok(j.phases.boot! + j.phases.restore! > 0 && j.phases.exec! > 0, 'start and exec were measured from guest events');
    // QEMU's CPU time and peak memory, read from /proc after the guest powered off (QEMU held by -no-shutdown).
    assert.ok(j.usage && j.usage.source === 'proc' && j.usage.cpuMs > 100 && j.usage.maxRssKiB > 32 * 1024, JSON.stringify(j.usage));
    assert.equal(readFileSync(join(out, 'work', 'result.txt'), 'utf8'), 'sum 1..5 = 15\n');
    assert.equal(readFileSync(join(out, 'work', 'lines.txt'), 'utf8').trim(), '3');
    assert.equal(readFileSync(join(out, 'work', 'sub', 'deep.txt'), 'utf8'), 'nested\n');
    assert.equal(readFileSync(join(out, 'stdout'), 'utf8'), 'args: 5\nn from env: 5\n');
    assert.equal(readFileSync(join(out, 'stderr'), 'utf8'), 'warning: just a test\n');
    assert.equal(readFileSync(join(out, 'exit_code'), 'utf8'), '0\n');
    assert.equal(parse(readFileSync(join(out, 'run.json'), 'utf8')).id, j.id);
    assertCleanedUp(j.id);

    const logs = await vmwu(['logs', j.id.slice(0, 6)]);
    assert.equal(logs.stdout, 'args: 5\nn from env: 5\n');
    assert.equal(logs.stderr, 'warning: just a test\n');
  });

  test('a failing job: its exit code is vmwu\'s, its stderr is kept; --keep filters files', async () => {
    const out = join(tmp(), 'out');
    const r = await vmwu(['run', '--base', 'tiny', '--out', out, '--keep', '*.keep', '--json', '--',
      'sh', '-c', 'echo a > x.keep; echo b > x.drop; echo oops >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    const j = parse(r.stdout);
    assert.equal(j.status, 'failed');
    assert.equal(j.exitCode, 3);
    assert.equal(readFileSync(join(out, 'stderr'), 'utf8'), 'oops\n');
    assert.deepEqual(listTree(join(out, 'work')), ['x.keep']);
    assertCleanedUp(j.id);
  });

  test('the smallest job: no app, no inputs', async () => {
    const r = await vmwu(['run', '--base', 'tiny', '--json', '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    const j = parse(r.stdout);
    assert.equal(j.status, 'succeeded');
    assert.ok(j.outDir.startsWith(join(testHome(), 'runs', j.id)));
  });

  test('walltime: a guest that sleeps forever is stopped, exit 124, nothing left behind', async () => {
    const r = await vmwu(['run', '--base', 'tiny', '--timeout', '5s', '--json', '--', 'sleep', '100000']);
    assert.equal(r.code, 124, r.stderr);
    const j = parse(r.stdout);
    assert.equal(j.status, 'timeout');
    assert.equal(j.exitCode, null);
    assertCleanedUp(j.id);
  });

  test('SIGTERM mid-run: vmwu stops the VM, removes the overlays and records the interruption', async () => {
    const { child, done, id } = await startSleeper();
    assert.equal(processesMentioning(id).length, 1, 'QEMU is running');
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.code, 143);
    assertCleanedUp(id);
    const runs = JSON.parse((await vmwu(['runs', '--json', '-n', '200'])).stdout) as { id: string; status: string; error: string }[];
    const rec = runs.find((x) => x.id === id)!;
    assert.equal(rec.status, 'error');
    assert.match(rec.error, /interrupted/);
  });

  test('kill -9 of vmwu: QEMU dies with it, and the next start reaps the run', async () => {
    const { child, done, id } = await startSleeper();
    child.kill('SIGKILL');
    await done;
    await waitFor('QEMU to die with its parent', () => processesMentioning(id).length === 0, 10_000);
    const doc = JSON.parse((await vmwu(['doctor', '--json'])).stdout) as { reapedRuns: string[] };
    const runs = JSON.parse((await vmwu(['runs', '--json', '-n', '200'])).stdout) as { id: string; status: string; error: string }[];
    const rec = runs.find((x) => x.id === id)!;
    assert.equal(rec.status, 'error', 'reaped (by this doctor or by a concurrent test\'s start)');
    assert.match(rec.error, /died; reaped/);
    assert.ok(doc.reapedRuns.includes(id) || rec.status === 'error');
    assertCleanedUp(id);
  });

  test('logs -f shows output while the job runs', async () => {
    const { child, done } = startCli(['run', '--base', 'tiny', '--', 'sh', '-c', 'echo first; sleep 4; echo second']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const id = await waitFor('the run id', () => /run ([0-9a-f]{12})/.exec(stderr)?.[1], 120_000);
    const follow = startCli(['logs', id, '-f']);
    let seen = '';
    follow.child.stdout!.on('data', (d: Buffer) => { seen += d.toString(); });
    await waitFor('"first" to appear live', () => seen.includes('first'), 120_000);
    assert.ok(!seen.includes('second'), 'the job has not printed "second" yet');
    assert.equal(child.exitCode, null, 'the run is still going');
    const f = await follow.done;
    assert.equal(f.stdout, 'first\nsecond\n');
    assert.equal((await done).code, 0);
  });
});

describe('bad input gets a clear error', { concurrency: true }, () => {
  test('unknown base names the known ones', async () => {
    const r = await vmwu(['run', '--base', 'nosuch', '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /no base named "nosuch"/);
    assert.match(r.stderr, /hint: known bases: .*tiny/);
  });
  test('bad --timeout, bad --param, non-empty --out, missing input', async () => {
    const t = await vmwu(['run', '--base', 'tiny', '--timeout', '5 parsecs', '--', 'true']);
    assert.equal(t.code, 125);
    assert.match(t.stderr, /--timeout: "5 parsecs" is not a duration/);
    const p = await vmwu(['run', '--base', 'tiny', '--param', '9lives=1', '--', 'true']);
    assert.match(p.stderr, /"9lives" is not a valid parameter name/);
    const dir = tmp();
    writeFileSync(join(dir, 'keep.txt'), 'precious');
    const o = await vmwu(['run', '--base', 'tiny', '--out', dir, '--', 'true']);
    assert.equal(o.code, 125);
    assert.match(o.stderr, /is not empty/);
    assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'precious');
    const i = await vmwu(['run', '--base', 'tiny', '--input', join(dir, 'nope.txt'), '--json', '--', 'true']);
    assert.equal(i.code, 125);
    assert.match(parse(i.stdout).error!.message, /nope.txt: no such file/);
  });
});
