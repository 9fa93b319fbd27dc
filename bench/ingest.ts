/**
 * Ingest of batch tasks' result files (issue 10): 10,000 `done` reports, each with
 * its attempt's outputs and one stage-out, applied to a 10,000-job experiment by
 * the submitter's ingestReports, in batches. Target: under 2 s. No VM boots: the
 * reports are what compute nodes write. Also: the same reports ingested again
 * (a crash between commit and move) cost only the reading.
 *
 *   node dist/bench/ingest.js [reports]
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { registerBase } from '../src/store/bases.js';
import type { Digest } from '../src/store/blobs.js';
import { openStore } from '../src/store/store.js';
import { attemptDir, createExperiment } from '../src/sweep/experiment.js';
import { ingestReports } from '../src/sweep/batch/ingest.js';
import { jobCounts } from '../src/sweep/records/reads.js';
import { reportName, REPORTS_DIR, type Report } from '../src/sweep/batch/task-files.js';

const N = Number(process.argv[2] ?? 10_000);
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-ingest-'));
const store = openStore(join(work, 'store'));
try {
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  writeFileSync(join(work, 'plan.pln'), `parameter x integer range from 1 to ${N}\ntask main\n  exec work $x\n  copy node:out.txt root:out-\${jobindex}.txt\nendtask\n`);
  const e = await createExperiment(store, { planPath: join(work, 'plan.pln'), base: 'fake', name: 'ingest' });
  const inbox = join(e.dir, REPORTS_DIR);
  mkdirSync(inbox, { recursive: true });
  process.stderr.write(`writing ${N} reports and their outputs…\n`);
  for (let j = 1; j <= N; j++) {
    const out = attemptDir(e, j, 1);
    mkdirSync(join(out, 'work'), { recursive: true });
    writeFileSync(join(out, 'work', 'out.txt'), `job ${j}\n`);
    writeFileSync(join(out, 'stderr'), '');
    const r: Report = {
      kind: 'done', experiment: e.name, job: j, attempt: 1, host: `n${1 + (j % 3)}`, owner: `${1000 + j}:77@n${1 + (j % 3)}/boot`, batchId: `9_${j}`,
      runId: (0xa00000 + j).toString(16), at: new Date().toISOString(),
      result: { id: (0xa00000 + j).toString(16), status: 'succeeded', exitCode: 0, accel: 'tcg', phases: { prepare: 30, boot: 2100, stageIn: 20, exec: 15, stageOut: 25, shutdown: 15, collect: 10 }, totalMs: 2300, usage: { cpuMs: 2400, maxRssKiB: 280_000, source: 'proc' } },
    };
    writeFileSync(join(inbox, reportName(j, 1, 'done')), JSON.stringify(r) + '\n');
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await ingestReports(store, e, { owner: '1:1@bench/boot' });
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const counts = jobCounts(store.db, e.name);
  if (res.finished.length !== N || counts.succeeded !== N) throw new Error(`ingested ${res.finished.length}, ${counts.succeeded} succeeded`);
  // The same reports again, as after a crash between the commit and the move.
  for (let j = 1; j <= N; j++) copyFileSync(`${attemptDir(e, j, 1)}.done.json`, join(inbox, reportName(j, 1, 'done')));
  const t1 = performance.now();
  const again = await ingestReports(store, e, { owner: '1:1@bench/boot' });
  const wallAgain = performance.now() - t1;
  if (again.finished.length !== 0 || readdirSync(inbox).length !== 0) throw new Error('a second ingest changed something');
  console.log(`${N} result files ingested (validated, recorded, staged out, moved) in ${(wall / 1000).toFixed(2)} s wall, ` +
    `${((cpu.user + cpu.system) / 1000 / 1000).toFixed(2)} s CPU: ${(wall / N).toFixed(3)} ms per file (target: all in < 2 s)`);
  console.log(`the same ${N} files ingested again (nothing to change): ${(wallAgain / 1000).toFixed(2)} s`);
} finally {
  store.close();
  rmSync(work, { recursive: true, force: true });
}
