/**
 * Issue 11, defects 9 and 10: a plan's job count is capped before anything is
 * expanded, jobs are stored in batches (other work runs between them, an abort
 * stores nothing), and no two jobs may stage out to overlapping destinations,
 * neither in the plan nor, for older experiments, at run time.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { startServer } from '../../../src/server/index.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { findOverlap, RecordedOutputs } from '../../../src/sweep/destinations.js';
import { createExperiment, getExperiment, getJob, loadPlan, runExperiment, type Executor } from '../../../src/sweep/index.js';
import { claimExperiment, requestCancel } from '../../../src/sweep/records/lifecycle.js';
import { jobCounts } from '../../../src/sweep/records/reads.js';
import { stageOut } from '../../../src/sweep/staging.js';
import { repoRoot } from '../../support/fixture-path.js';

const scratch = mkdtempSync(join(tmpdir(), 'vmwu-limits-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function setup(plan: string): { store: Store; planPath: string; dir: string } {
  const dir = join(scratch, `s${n++}`);
  mkdirSync(join(dir, 'exp'), { recursive: true });
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'),
    root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  const planPath = join(dir, 'exp', 'plan.pln');
  writeFileSync(planPath, plan);
  return { store, planPath, dir };
}

const is = (code: string, re: RegExp = /./) => (e: unknown) => isVmwuError(e) && e.code === code && re.test(e.message);
const HUGE = 'parameter a integer range from 1 to 100000\nparameter b integer range from 1 to 1000000\ntask main\n  exec echo $a $b\nendtask\n';

test('a plan of 10^11 jobs is refused before anything is expanded or stored, naming the count, its factors and the flag', async (t) => {
  const { store, planPath } = setup(HUGE);
  const t0 = performance.now();
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'huge' }),
    (e: unknown) => is('TOO_MANY_JOBS', /plan\.pln: the plan expands to 100000000000 jobs \(a: 100000 at 1:11 × b: 1000000 at 2:11\), more than the limit of 100000$/)(e)
      && /--max-jobs N/.test((e as { hint?: string }).hint ?? ''));
  t.diagnostic(`cap check of the 10^11-job plan: ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal(getExperiment(store.db, 'huge'), undefined);
  assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM experiment_jobs').get() as { n: number }).n, 0);
  // Counts past 2^53 (and past any float) are refused the same way.
  writeFileSync(planPath, 'parameter a float range from 0 to 1e300 step 1\nparameter b float range from 0 to 1e300 step 1e-300\ntask main\nendtask\n');
  assert.throws(() => loadPlan(planPath), is('TOO_MANY_JOBS', /expands to Infinity jobs|expands to \d\.\d\de\+\d+ jobs/));
  store.close();
});

test('--max-jobs: a plan above the limit is refused, at or below it accepted; the limit must be a whole number', async () => {
  const { store, planPath } = setup('parameter x integer range from 1 to 12\ntask main\n  exec echo $x\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'small', maxJobs: 11 }), is('TOO_MANY_JOBS', /12 jobs \(x: 12 at 1:11\), more than the limit of 11/));
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'small', maxJobs: 12 });
  assert.equal(e.jobCount, 12);
  assert.equal(jobCounts(store.db, 'small').pending, 12);
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'zero', maxJobs: 0 }), is('BAD_VALUE', /max-jobs/));
  store.close();
});

test('the CLI: vmwu sweep refuses the 10^11-job plan with the typed error; --max-jobs raises the limit', () => {
  const { store, planPath, dir } = setup('parameter x integer range from 1 to 12\ntask main\n  exec echo $x\nendtask\n');
  store.close();
  const vmwu = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), ...args], { encoding: 'utf8', env: { ...process.env, VMWU_HOME: join(dir, 'store') } });
  const huge = join(dir, 'exp', 'huge.pln');
  writeFileSync(huge, HUGE);
  const r = vmwu('sweep', huge, '--base', 'fake', '--dry-run');
  assert.equal(r.status, 125, r.stderr);
  assert.match(r.stderr, /100000000000 jobs/);
  assert.match(r.stderr, /--max-jobs/);
  assert.equal(vmwu('sweep', planPath, '--dry-run', '--max-jobs', '11').status, 125);
  const ok = vmwu('sweep', planPath, '--dry-run', '--max-jobs', '12');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^12 jobs/m);
});

test('jobs are stored in batches: other work runs between them and sees the experiment being created; runners refuse it meanwhile', async () => {
  const { store, planPath } = setup('parameter a integer range from 1 to 100\nparameter b integer range from 1 to 120\ntask main\n  exec echo $a $b\nendtask\n');
  const seen: number[] = [];
  let refused: unknown;
  let on = true;
  const other = () => {
    if (!on) return;
    const e = getExperiment(store.db, 'batched');
    if (e) {
      seen.push(jobCounts(store.db, 'batched').total);
      if (refused === undefined && seen[seen.length - 1]! < 12_000) {
        try {
          claimExperiment(store.db, 'batched', 'someone-else', { restartCancelled: false, isAlive: () => true });
          refused = null;
        } catch (err) {
          refused = err;
        }
      }
    }
    setImmediate(other);
  };
  other();
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'batched' });
  on = false;
  assert.equal(e.jobCount, 12_000);
  assert.equal(e.owner, null, 'released once complete');
  assert.ok(seen.some((c) => c > 0 && c < 12_000), `saw partial counts between batches: ${seen.slice(0, 20).join(',')}`);
  assert.ok(is('EXPERIMENT_BUSY', /still being created/)(refused), String(refused));
  store.close();
});

test('an abort between batches stores nothing', async () => {
  const { store, planPath } = setup('parameter a integer range from 1 to 100\nparameter b integer range from 1 to 100\ntask main\n  exec echo $a $b\nendtask\n');
  const ac = new AbortController();
  const watch = () => {
    if (getExperiment(store.db, 'stop') && jobCounts(store.db, 'stop').total > 0) ac.abort();
    else if (!ac.signal.aborted) setImmediate(watch);
  };
  watch();
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'stop', signal: ac.signal }), is('INTERRUPTED', /nothing was stored/));
  assert.ok(ac.signal.aborted);
  assert.equal(getExperiment(store.db, 'stop'), undefined);
  assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM experiment_jobs').get() as { n: number }).n, 0);
  store.close();
});

test('an experiment whose creator died half-way is refused by runners and cancel, and replaced by the next creation under its name', async () => {
  const { store, planPath } = setup('parameter x integer range from 1 to 10\ntask main\n  exec echo $x\nendtask\n');
  await createExperiment(store, { planPath, base: 'fake', name: 'half' });
  // What a creator killed after its fifth job leaves: `created`, owned by a dead process, jobs missing.
  store.db.prepare(`UPDATE experiments SET owner = '999999999:1' WHERE name = 'half'`).run();
  store.db.prepare(`DELETE FROM experiment_jobs WHERE experiment = 'half' AND idx > 5`).run();
  assert.throws(() => claimExperiment(store.db, 'half', 'me', { restartCancelled: true }), is('EXPERIMENT_INCOMPLETE', /never completely created/));
  assert.throws(() => requestCancel(store.db, 'half', 'me'), is('EXPERIMENT_INCOMPLETE'));
  const again = await createExperiment(store, { planPath, base: 'fake', name: 'half' });
  assert.equal(again.owner, null);
  assert.equal(jobCounts(store.db, 'half').pending, 10);
  // The default name does not skip to plan-2 because of a leftover either.
  assert.equal((await createExperiment(store, { planPath, base: 'fake' })).name, 'plan');
  store.db.prepare(`UPDATE experiments SET owner = '999999999:1' WHERE name = 'plan'`).run();
  const named = await createExperiment(store, { planPath, base: 'fake' });
  assert.equal(named.name, 'plan');
  assert.equal(named.owner, null);
  store.close();
});

test('overlap: sorted by path component, so a sibling such as out-1 between out and out/x hides nothing', () => {
  const at = (path: string, job: number, command = 1) => ({ path, job, command });
  assert.deepEqual(findOverlap([at('out', 1), at('out-1', 2), at('out/x', 2)]), [at('out', 1), at('out/x', 2)]);
  assert.deepEqual(findOverlap([at('out/x', 2), at('out', 1, 3)]), [at('out', 1, 3), at('out/x', 2)]);
  assert.deepEqual(findOverlap([at('r', 1), at('r', 2)]), [at('r', 1), at('r', 2)]);
  // One job may nest its own destinations; siblings and look-alike prefixes do not overlap.
  assert.equal(findOverlap([at('out', 1), at('out/x', 1, 2), at('out2', 2), at('ou', 3), at('o/ut', 4)]), null);
  // A job's own nesting does not hide a third job inside the first one's directory.
  assert.deepEqual(findOverlap([at('out', 1), at('out/a', 1, 2), at('out/a/b', 2)]), [at('out', 1), at('out/a/b', 2)]);
});

test('the plan check refuses destinations of two jobs where one lies inside the other, naming both copies and their lines', async () => {
  const { store, planPath } = setup('parameter d text select anyof "out" "out/x"\ntask main\n  copy node:a root:${d}\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'nest' }),
    is('PLAN_COPY', /plan\.pln: job 1 copies to root:out \(`copy node:a root:\$\{d\}` at .*plan\.pln:3:3\) and job 2 to root:out\/x, inside it \(`copy node:a root:\$\{d\}` at .*plan\.pln:3:3\); staging out job 1 would replace that directory and delete job 2's output/));
  // The case from the issue: two copies, a directory and a path inside it, in every job.
  writeFileSync(planPath, 'parameter x integer range from 1 to 2\ntask main\n  copy node:a root:out\n  copy node:b root:out/x\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'nest' }), is('PLAN_COPY', /jobs 1 and 2 both copy to root:out \(`copy node:a root:out` at .*plan\.pln:3:3\)/));
  // ${jobindex} in a destination is expanded per job before the comparison.
  writeFileSync(planPath, 'parameter x integer range from 1 to 3\ntask main\n  copy node:a root:o/${jobindex}\n  copy node:b root:o/1/extra-${jobindex}\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'nest' }),
    is('PLAN_COPY', /job 1 copies to root:o\/1 \(`copy node:a root:o\/\$\{jobindex\}` at .*:3:3\) and job 2 to root:o\/1\/extra-2, inside it \(`copy node:b root:o\/1\/extra-\$\{jobindex\}` at .*:4:3\)/));
  assert.equal(getExperiment(store.db, 'nest'), undefined);
  // Each job its own directory, nesting inside it, and a shared directory destination with distinct names: accepted.
  writeFileSync(planPath, 'parameter x integer range from 1 to 3\ntask main\n  copy node:a root:job-${jobindex}\n  copy node:b root:job-${jobindex}/b\n  copy node:out.$x root:all/\nendtask\n');
  assert.equal((await createExperiment(store, { planPath, base: 'fake', name: 'fine' })).jobCount, 3);
  store.close();
});

test('stage-out never replaces another job\'s recorded output, even where the plan check did not run', async () => {
  const dir = join(scratch, `so${n++}`);
  const work = join(dir, 'work');
  const results = join(dir, 'results');
  mkdirSync(join(work, 'd'), { recursive: true });
  writeFileSync(join(work, 'd', 'f'), 'job 1');
  mkdirSync(join(results, 'out'), { recursive: true });
  writeFileSync(join(results, 'out', 'x'), 'job 2');
  const recorded = new RecordedOutputs();
  recorded.add(2, ['out/x']);
  await assert.rejects(stageOut([{ from: 'd', to: 'out', onerror: 'fail' }], work, results, { maxBytes: 1e9, othersOutput: (p) => recorded.conflict(1, p) }),
    is('STAGE_OUT', /copy node:d root:out: job 2's recorded output out\/x overlaps it; nothing was replaced/));
  assert.equal(readFileSync(join(results, 'out', 'x'), 'utf8'), 'job 2');
  // Its own earlier output a job may replace (a retry, an adopted attempt).
  assert.deepEqual(await stageOut([{ from: 'd', to: 'out', onerror: 'fail' }], work, results, { maxBytes: 1e9, othersOutput: (p) => recorded.conflict(2, p) }), ['out']);
  assert.equal(readFileSync(join(results, 'out', 'f'), 'utf8'), 'job 1');
  assert.equal(recorded.conflict(1, 'out/x/deeper')?.job, 2, 'inside another\'s output');
  assert.equal(recorded.conflict(1, 'ou'), undefined);
  assert.equal(recorded.conflict(1, 'out-2'), undefined);
});

/** Writes work/out.txt for each job, as a collected run leaves it. */
const fakeExecutor: Executor = {
  name: 'fake',
  async runAttempt(_store, ctx) {
    mkdirSync(join(ctx.outDir, 'work'), { recursive: true });
    writeFileSync(join(ctx.outDir, 'work', 'out.txt'), `job ${ctx.job.index}\n`);
    writeFileSync(join(ctx.outDir, 'run.json'), JSON.stringify({ id: `r${ctx.job.index}`, status: 'succeeded', exitCode: 0 }));
    ctx.onRunId(`r${ctx.job.index}`);
    return { runId: `r${ctx.job.index}`, status: 'succeeded', exitCode: 0, phases: null, totalMs: 1 };
  },
};

test('a run of an experiment planned before the check: the later job fails its stage-out and the earlier job\'s output survives', async () => {
  const { store, planPath } = setup('parameter x integer range from 1 to 2\ntask main\n  copy node:out.txt root:o-${jobindex}\nendtask\n');
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'legacy', retries: 0, slots: 1 });
  // As an older vmwu stored it: job 1 writes o/x, job 2 writes o, which would replace the directory o.
  const copyTo = (to: string) => JSON.stringify([{ kind: 'copy', from: { loc: 'node', path: 'out.txt' }, to: { loc: 'root', path: to } }]);
  store.db.prepare(`UPDATE experiment_jobs SET commands = ? WHERE experiment = 'legacy' AND idx = 1`).run(copyTo('o/x'));
  store.db.prepare(`UPDATE experiment_jobs SET commands = ? WHERE experiment = 'legacy' AND idx = 2`).run(copyTo('o'));
  await runExperiment(store, 'legacy', { executor: fakeExecutor, slots: 1, pollMs: 5, host: () => ({ cores: 1, availableMemMiB: 100_000 }) });
  assert.equal(getJob(store.db, 'legacy', 1)?.state, 'succeeded');
  assert.equal(readFileSync(join(e.dir, 'results', 'o', 'x'), 'utf8'), 'job 1\n');
  const j2 = getJob(store.db, 'legacy', 2);
  assert.equal(j2?.state, 'failed');
  assert.match(j2?.error ?? '', /STAGE_OUT: copy node:out\.txt root:o: job 1's recorded output o\/x overlaps it/);
  assert.ok(!existsSync(join(e.dir, 'results', 'o.txt')));
  store.close();
});

test('the dashboard: a 10^11-job plan is refused at once; while a big one is stored, /api/session answers; maxJobs is a field of the POST', async () => {
  const { store, dir } = setup('task main\nendtask\n');
  const web = join(dir, 'web');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<meta name="csrf-token" content="__CSRF__">');
  const server = await startServer(store, { token: 'tok-1234567890abcdef', webDir: web, spawnWorker: () => 4242 });
  const auth = { authorization: 'Bearer tok-1234567890abcdef' };
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(server.url);
    const r = request({ host: u.hostname, port: u.port, path, method, headers: { ...auth, ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (c: string) => { b += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    r.on('error', reject);
    r.end(body ? JSON.stringify(body) : undefined);
  });
  try {
    const { csrf } = JSON.parse((await call('GET', '/api/session')).body) as { csrf: string };
    const post = (body: unknown) => call('POST', '/api/experiments', body, { 'x-csrf-token': csrf });
    const huge = await post({ planText: HUGE, base: 'fake', name: 'huge' });
    assert.equal(huge.status, 400);
    assert.equal((JSON.parse(huge.body) as { error: string }).error, 'TOO_MANY_JOBS');
    const big = 'parameter a integer range from 1 to 200\nparameter b integer range from 1 to 250\ntask main\n  exec echo $a $b\nendtask\n';
    assert.equal((await post({ planText: big, base: 'fake', name: 'big', maxJobs: 49_999 })).status, 400);
    let posted = false;
    const creating = post({ planText: big, base: 'fake', name: 'big' }).then((r) => {
      posted = true;
      return r;
    });
    // Once the experiment is being stored, the session call must be answered before the POST is.
    while (!getExperiment(store.db, 'big') && !posted) await new Promise((r) => setImmediate(r));
    const session = await call('GET', '/api/session');
    assert.equal(session.status, 200);
    assert.equal(posted, false, 'answered while the jobs were still being stored');
    const created = await creating;
    assert.equal(created.status, 201, created.body);
    assert.equal((JSON.parse(created.body) as { jobs: number }).jobs, 50_000);
  } finally {
    await server.close();
    store.close();
  }
});

test('the CLI: SIGTERM while a big experiment is being stored stops it between batches (exit 143) and leaves nothing', async () => {
  const { store, planPath, dir } = setup('parameter a integer range from 1 to 300\nparameter b integer range from 1 to 300\ntask main\n  exec echo $a $b\nendtask\n');
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'sweep', planPath, '--base', 'fake', '--name', 'term', '--create-only'],
    { env: { ...process.env, VMWU_HOME: join(dir, 'store') }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => { exitCode = c; });
  // Signalled once its first batch is in the store, while the rest are still to come.
  while (exitCode === undefined && !getExperiment(store.db, 'term')) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGTERM');
  assert.equal(await exited, 143, stderr);
  assert.match(stderr, /creation interrupted; nothing was stored/);
  assert.equal(getExperiment(store.db, 'term'), undefined);
  assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM experiment_jobs').get() as { n: number }).n, 0);
  store.close();
});
