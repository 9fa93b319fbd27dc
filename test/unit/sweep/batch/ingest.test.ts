import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerBase } from '../../../../src/store/bases.js';
import type { Digest } from '../../../../src/store/blobs.js';
import { openStore, type Store } from '../../../../src/store/store.js';
import { attemptDir, createExperiment } from '../../../../src/sweep/experiment.js';
import { ingestReports } from '../../../../src/sweep/batch/ingest.js';
import { getJob, listAttempts } from '../../../../src/sweep/records/reads.js';
import { type Experiment } from '../../../../src/sweep/records/types.js';
import { readTaskFile, reportName, TASK_VERSION, REPORTS_DIR, writeFileAtomic, type Report, type TaskFile } from '../../../../src/sweep/batch/task-files.js';
import { runNodeTask } from '../../../../src/sweep/batch/node-task.js';
import { isVmwuError } from '../../../../src/errors.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const ME = '1:1@submitter/boot';

async function setup(): Promise<{ store: Store; e: Experiment }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-ingest-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  writeFileSync(join(dir, 'plan.pln'), 'parameter x integer range from 1 to 4\ntask main\n  exec work $x\n  copy node:out.txt root:out-${jobindex}.txt\nendtask\n');
  const e = await createExperiment(store, { planPath: join(dir, 'plan.pln'), base: 'fake', name: 'ing', retries: 1 });
  return { store, e };
}

/** What a node's task leaves: the attempt's outputs, then its report in the inbox. */
function report(e: Experiment, job: number, attempt: number, kind: 'start' | 'done', result?: Extract<Report, { kind: 'done' }>['result']): void {
  const head = { experiment: e.name, job, attempt, host: `n${job}`, owner: `77:5@n${job}/boot`, batchId: `40_${job}`, runId: `abcdef${job}${attempt}`, at: new Date().toISOString() };
  if (kind === 'done') {
    const out = attemptDir(e, job, attempt);
    mkdirSync(join(out, 'work'), { recursive: true });
    writeFileSync(join(out, 'work', 'out.txt'), `job ${job} attempt ${attempt}\n`);
    writeFileSync(join(out, 'stderr'), result?.status === 'failed' ? 'vmwu: command 1 failed with status 3: exec work\n' : '');
  }
  mkdirSync(join(e.dir, REPORTS_DIR), { recursive: true });
  const r: Report = kind === 'start' ? { kind, ...head } : { kind, ...head, result: result! };
  writeFileAtomic(join(e.dir, REPORTS_DIR, reportName(job, attempt, kind)), JSON.stringify(r));
}

const ok = (id: string) => ({ id, status: 'succeeded' as const, exitCode: 0, phases: { boot: 2000 }, totalMs: 2600, usage: { cpuMs: 2500, maxRssKiB: 280_000, source: 'proc' as const } });

test('reports become attempts: started, finished, staged out, with node, task id and usage; the inbox empties', async () => {
  const { store, e } = await setup();
  report(e, 1, 1, 'start');
  report(e, 1, 1, 'done', ok('abcdef11'));
  report(e, 2, 1, 'done', { id: 'abcdef21', status: 'failed', exitCode: 3, totalMs: 900 });
  report(e, 3, 1, 'start');
  const r = await ingestReports(store, e, { owner: ME });
  assert.deepEqual(r.finished, [{ job: 1, attempt: 1, status: 'succeeded' }, { job: 2, attempt: 1, status: 'failed' }]);
  assert.deepEqual(r.events.filter((x) => x.type === 'job-start').map((x) => x.type === 'job-start' && x.job), [1, 2, 3]);
  const [a1] = listAttempts(store.db, 'ing', 1);
  assert.deepEqual([a1!.status, a1!.host, a1!.batchId, a1!.runId, a1!.usage], ['succeeded', 'n1', '40_1', 'abcdef11', { cpuMs: 2500, maxRssKiB: 280_000, source: 'proc' }]);
  assert.equal(getJob(store.db, 'ing', 1)!.state, 'succeeded');
  assert.equal(readFileSync(join(e.dir, 'results', 'out-1.txt'), 'utf8'), 'job 1 attempt 1\n');
  const j2 = getJob(store.db, 'ing', 2)!;
  assert.deepEqual([j2.state, j2.failures, j2.error], ['pending', 1, 'exit status 3: vmwu: command 1 failed with status 3: exec work']);
  assert.equal(getJob(store.db, 'ing', 3)!.state, 'running');
  assert.deepEqual(readdirSync(join(e.dir, REPORTS_DIR)), []);
  assert.ok(existsSync(`${attemptDir(e, 1, 1)}.done.json`), 'each report is kept beside its attempt');
  store.close();
});

test('ingesting the same reports twice changes nothing; a late result of a settled attempt is left out', async () => {
  const { store, e } = await setup();
  report(e, 1, 1, 'start');
  report(e, 1, 1, 'done', ok('abcdef11'));
  report(e, 4, 1, 'done', { id: 'abcdef41', status: 'error', exitCode: null, error: { code: 'INTERRUPTED', message: 'interrupted; the VM was stopped' } });
  await ingestReports(store, e, { owner: ME });
  const before = JSON.stringify([listAttempts(store.db, 'ing'), [1, 2, 3, 4].map((j) => getJob(store.db, 'ing', j))]);
  assert.equal(getJob(store.db, 'ing', 4)!.state, 'pending', 'an interrupted attempt is not a failure');
  assert.equal(getJob(store.db, 'ing', 4)!.failures, 0);
  // A crash between the commit and the move: the same reports are in the inbox again.
  for (const [j, k] of [[1, 'start'], [1, 'done'], [4, 'done']] as const) copyFileSync(`${attemptDir(e, j, 1)}.${k}.json`, join(e.dir, REPORTS_DIR, reportName(j, 1, k)));
  const again = await ingestReports(store, e, { owner: ME });
  assert.deepEqual(again.finished, []);
  assert.equal(again.skipped, 3);
  assert.equal(JSON.stringify([listAttempts(store.db, 'ing'), [1, 2, 3, 4].map((j) => getJob(store.db, 'ing', j))]), before);
  store.close();
});

test('a report that is not one (garbled, another schema) is set aside with a warning, naming the file and field', async () => {
  const { store, e } = await setup();
  mkdirSync(join(e.dir, REPORTS_DIR), { recursive: true });
  writeFileSync(join(e.dir, REPORTS_DIR, reportName(2, 1, 'done')), JSON.stringify({ kind: 'done', experiment: 'ing', job: 2, attempt: 1, host: 'n2' }));
  writeFileSync(join(e.dir, REPORTS_DIR, 'notes.txt'), 'not a report name: ignored');
  const r = await ingestReports(store, e, { owner: ME });
  const w = r.events.find((x) => x.type === 'warning');
  assert.ok(w && w.type === 'warning' && /2\.1\.done\.json: report: field owner: /.test(w.message), JSON.stringify(r.events));
  assert.deepEqual(readdirSync(join(e.dir, REPORTS_DIR, 'bad')), ['2.1.done.json']);
  assert.deepEqual(listAttempts(store.db, 'ing'), []);
  store.close();
});

test('a report that names another attempt than its file, or a job the experiment does not have, is set aside', async () => {
  const { store, e } = await setup();
  report(e, 2, 1, 'start');
  report(e, 99, 1, 'start');
  const inbox = join(e.dir, REPORTS_DIR);
  const text = readFileSync(join(inbox, reportName(2, 1, 'start')), 'utf8');
  writeFileSync(join(inbox, reportName(3, 1, 'start')), text);
  const r = await ingestReports(store, e, { owner: ME });
  assert.deepEqual(readdirSync(join(inbox, 'bad')).sort(), ['3.1.start.json', '99.1.start.json']);
  assert.equal(r.events.filter((x) => x.type === 'warning').length, 2);
  assert.deepEqual(listAttempts(store.db, 'ing').map((x) => x.job), [2]);
  store.close();
});

test('a second copy of a batch task finds its attempt taken and does nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-task-'));
  const outDir = join(dir, 'jobs', '3', 'attempt-1');
  mkdirSync(outDir, { recursive: true });
  const task: TaskFile = {
    version: TASK_VERSION, experiment: 'x', job: 3, attempt: 1, store: join(dir, 'store'), outDir, reportsDir: join(dir, 'reports'),
    base: { boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', virtualSize: 1 }, layers: [],
    launch: { argv: ['true'], params: {}, inputs: [] }, resources: { memoryMiB: 64, cpus: 1, timeoutMs: 1000, maxOutputBytes: 1024 },
  };
  writeFileAtomic(join(dir, 't.json'), JSON.stringify(task));
  assert.deepEqual(await runNodeTask(join(dir, 't.json')), { code: 0, result: null });
  assert.deepEqual(readdirSync(join(dir, 'reports')), [], 'no report: the first copy reports');
});

test('a task file that is not one is refused with its path and field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-task-'));
  writeFileSync(join(dir, 't.json'), JSON.stringify({ version: TASK_VERSION, experiment: 'x', job: 0 }));
  assert.throws(() => readTaskFile(join(dir, 't.json')), (e: unknown) => isVmwuError(e) && e.code === 'BAD_TASK_FILE' && /t\.json: task file: field job: /.test(e.message));
  assert.throws(() => readTaskFile(join(dir, 'missing.json')), (e: unknown) => isVmwuError(e) && e.code === 'NO_TASK_FILE');
});
