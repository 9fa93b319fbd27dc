/**
 * Experiments of 100,000 jobs (issue 25 §4). No VM boots. One experiment is made
 * the way a sweep makes it: planned and stored by createExperiment, claimed by
 * claimExperiment, its jobs claimed with claimNext and settled with finishAttempt,
 * each attempt with its run record (insertRun, markRunning, finishRun), all in one
 * transaction for speed. 10 % of its jobs are running, ~45 % finished (a few
 * failed, a few waiting to retry), the rest pending. The other experiments are
 * row-for-row copies of it under other names (INSERT … SELECT: the same bytes,
 * made in seconds rather than replaying 100,000 claims each; their kept totals
 * counted once by resetTotals), of every 10th job by default (--copy-every 1 for
 * full copies: 100 × 100,000 jobs take ~14 GB).
 *
 * Measured: the whole CLI (`vmwu status EXP`, `vmwu experiments`) as child
 * processes; the dashboard's API over real HTTP on a running server (experiment
 * page, job table pages with filters, sorts and deep pages, the experiment list,
 * the event stream's first event and the change hub's tick); store bytes per job.
 *
 *   node dist/bench/experiments-100k.js [--experiments 100] [--jobs 100000] [--copy-every 10] [--requests 50] [--cli-runs 20] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/paths.js';
import { finishRun, insertRun, markRunning } from '../src/run/records.js';
import type { Phases } from '../src/run/phase-clock.js';
import { changeSignatures } from '../src/server/queries.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { registerBase } from '../src/store/bases.js';
import type { Digest } from '../src/store/blobs.js';
import { selfIdentity } from '../src/store/process-identity.js';
import { openStore, type Store } from '../src/store/store.js';
import { attemptDir, createExperiment } from '../src/sweep/experiment.js';
import { claimExperiment, claimNext, finishAttempt, resetTotals, setAttemptHost, setAttemptRun, type AttemptOutcome } from '../src/sweep/records/lifecycle.js';
import { median, quantile } from './stats.js';

const { values: args } = parseArgs({
  options: {
    experiments: { type: 'string', default: '100' },
    jobs: { type: 'string', default: '100000' },
    requests: { type: 'string', default: '50' },
    'cli-runs': { type: 'string', default: '20' },
    /** The copies hold every Nth job of the first (renumbered 1, 2, …): 100 × 100,000 jobs would be ~14 GB. 1: full copies. */
    'copy-every': { type: 'string', default: '10' },
    /** Per measured call, stop sampling after this long (a slow route still gets at least 3 samples). */
    budget: { type: 'string', default: '20000' },
    keep: { type: 'boolean', default: false },
  },
});
const EXPERIMENTS = Number(args.experiments);
const A = 1000;
const JOBS = Number(args.jobs);
const B = Math.max(1, Math.round(JOBS / A));
const REQUESTS = Number(args.requests);
const CLI_RUNS = Number(args['cli-runs']);
const BUDGET_MS = Number(args.budget);
const EVERY = Math.max(1, Number(args['copy-every']));
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const log = (s: string) => process.stderr.write(`${s}\n`);
const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

interface Row { what: string; n: number; p50: number; p95: number; target: number | null; note?: string }
const rows: Row[] = [];

const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-100k-'));
const home = join(work, 'store');
process.env.VMWU_HOME = home;
let store: Store | undefined;
let server: RunningServer | undefined;

try {
  store = openStore(home);
  const db = store.db;
  registerBase(db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: 'bench', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  // A plan as a user writes one: two parameters (A × B jobs), a command and a stage-out per job.
  writeFileSync(join(work, 'big.pln'), [
    `parameter a label "sample" integer range from 1 to ${A}`,
    `parameter b label "replicate" integer range from 1 to ${B}`,
    'task main',
    '    shexec "/app/model --sample ${a} --replicate ${b} --out result.txt"',
    '    copy node:result.txt root:out/result-${jobindex}.txt',
    'endtask',
    '',
  ].join('\n'));

  // ---- experiment 0, through the code a sweep runs ----
  const first = 'exp-000';
  let t0 = performance.now();
  await createExperiment(store, { planPath: join(work, 'big.pln'), base: 'fake', name: first, maxJobs: A * B, retries: 2 });
  log(`created ${first} (${A * B} jobs, createExperiment): ${since(t0)}`);
  const createMs = performance.now() - t0;

  t0 = performance.now();
  const me = selfIdentity();
  const { experiment: e } = claimExperiment(db, first, me, { restartCancelled: false });
  const total = A * B;
  const claimed = Math.round(total * 0.55);
  const finished = Math.round(total * 0.45);
  const runIds = new Set<string>();
  const nowMs = Date.now();
  const terms = {
    memoryMiB: 256, cpus: 1, network: false, timeoutMs: 600_000, maxOutputBytes: 1 << 30,
    image: { kernel: d('1'), initrd: d('2'), root: d('3'), virtualSize: 2 << 30, cmdline: 'console=ttyS0 quiet' }, datasets: [], app: false,
  };
  db.transaction(() => {
    const attemptOf = new Map<number, { attempt: number; runId: string }>();
    for (let k = 0; k < claimed; k++) {
      const c = claimNext(db, {
        experiment: first, owner: me, nowMs, outDir: (j, a) => attemptDir(e, j, a), lease: false,
        perExperiment: 1e9, hostSlots: 1e9, memoryMiB: 256, cpus: 1,
      });
      if (c.kind !== 'claimed') throw new Error(`claim ${k}: ${c.kind}`);
      // Run ids (12 hex digits, as newRunId) start with 00 here and are unique in their last 10, so copy k prefixes them with its own number.
      let id: string;
      do id = `00${Math.floor(Math.random() * 2 ** 40).toString(16).padStart(10, '0')}`; while (runIds.has(id));
      runIds.add(id);
      insertRun(db, {
        id, base: 'fake', argv: ['sh', 'job.sh'], params: { ...c.job.params, jobindex: String(c.job.index) },
        resources: { memoryMiB: 256, cpus: 1, timeoutMs: 600_000, terms }, outDir: c.outDir, runDir: join(home, 'runs', id),
        scratchDir: join('/tmp', `vmwu-${process.getuid?.() ?? 0}`, 'instances', id), owner: me,
      });
      markRunning(db, id, 'tcg', 100_000 + k, join('/tmp', `vmwu-${process.getuid?.() ?? 0}`, 'instances', id, 'control.sock'));
      setAttemptRun(db, first, c.job.index, c.attempt, id);
      setAttemptHost(db, first, c.job.index, c.attempt, `node${String(c.job.index % 16).padStart(2, '0')}`);
      attemptOf.set(c.job.index, { attempt: c.attempt, runId: id });
    }
    for (let idx = 1; idx <= finished; idx++) {
      const a = attemptOf.get(idx)!;
      const retry = idx % 23 === 0;
      const fail = !retry && idx % 97 === 0;
      const exec = 1000 + ((idx * 37) % 20_000);
      const phases: Phases = { prepare: 15 + (idx % 7), boot: 0, restore: 240 + (idx % 90), stageIn: 25 + (idx % 11), exec, stageOut: 30 + (idx % 13), shutdown: 20, collect: 8 };
      const totalMs = Object.values(phases).reduce((s, x) => s + x, 0);
      const usage = { cpuMs: Math.round(exec * 0.93), maxRssKiB: 180_000 + ((idx * 131) % 60_000), source: 'proc' as const };
      const start = { mode: 'restore' as const, template: 'a3f9c1d2e4b5a6c7', cpu: 'qemu64' };
      const outcome: AttemptOutcome = retry || fail
        ? { status: 'failed', runId: a.runId, exitCode: 1, error: 'exit status 1', phases, totalMs, usage, start }
        : { status: 'succeeded', runId: a.runId, exitCode: 0, error: null, phases, totalMs, usage, start, outputs: [`out/result-${idx}.txt`] };
      finishAttempt(db, { experiment: first, job: idx, attempt: a.attempt, owner: me, outcome, maxRetries: fail ? 0 : e.maxRetries, nowMs });
      finishRun(db, a.runId, { status: outcome.status === 'succeeded' ? 'succeeded' : 'failed', exitCode: outcome.exitCode, phases, totalMs, error: outcome.error, usage, start });
    }
  }).immediate();
  const statesMs = performance.now() - t0;
  log(`${first}: ${claimed} claims, ${finished} attempts settled (claimNext, finishAttempt, runs): ${since(t0)}`);

  const dbFile = store.paths.db;
  const bytes = () => {
    db.pragma('wal_checkpoint(TRUNCATE)');
    let n = 0;
    for (const f of [dbFile, `${dbFile}-wal`]) {
      try {
        n += statSync(f).size;
      } catch {
        // no WAL file
      }
    }
    return n;
  };
  const bytesOne = bytes();
  let perTable: { name: string; bytes: number }[] = [];
  try {
    perTable = db.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC').all() as { name: string; bytes: number }[];
  } catch {
    // dbstat not compiled in
  }
  log(`store with one experiment: ${(bytesOne / 1e6).toFixed(1)} MB, ${(bytesOne / total).toFixed(0)} B per job`);

  // ---- the others: row-for-row copies under other names ----
  t0 = performance.now();
  const cols = (table: string) => (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((r) => r.name);
  const copySql = (table: string, replace: Record<string, string>, where: string) => {
    const c = cols(table);
    return db.prepare(`INSERT INTO ${table} (${c.join(', ')}) SELECT ${c.map((x) => replace[x] ?? x).join(', ')} FROM ${table} WHERE ${where}`);
  };
  // :n is the new name, :k the copy's number (two hex digits) that prefixes its run ids; every EVERY-th job is copied, renumbered.
  const swap = (col: string) => `replace(${col}, '/${first}/', '/' || :n || '/')`;
  const copyJobs = Math.floor(total / EVERY);
  const copies = [
    copySql('experiments', { name: ':n', dir: `replace(dir, '${first}', :n)`, job_count: String(copyJobs) }, `name = '${first}'`),
    copySql('experiment_jobs', { experiment: ':n', idx: `idx / ${EVERY}` }, `experiment = '${first}' AND idx % ${EVERY} = 0`),
    copySql('job_params', { experiment: ':n', idx: `idx / ${EVERY}` }, `experiment = '${first}' AND idx % ${EVERY} = 0`),
    copySql('attempts', { experiment: ':n', job: `job / ${EVERY}`, out_dir: swap('out_dir'), run_id: `:k || substr(run_id, 3)` }, `experiment = '${first}' AND job % ${EVERY} = 0`),
    copySql('runs', { id: `:k || substr(id, 3)`, out_dir: swap('out_dir'), run_dir: `replace(run_dir, id, :k || substr(id, 3))`, scratch_dir: `replace(scratch_dir, id, :k || substr(id, 3))`, control: `replace(control, id, :k || substr(id, 3))` },
      `id IN (SELECT run_id FROM attempts WHERE experiment = '${first}' AND job % ${EVERY} = 0)`),
  ];
  for (let k = 1; k < EXPERIMENTS; k++) {
    const n = `exp-${String(k).padStart(3, '0')}`;
    const hex = k.toString(16).padStart(2, '0');
    db.transaction(() => {
      for (const s of copies) s.run({ n, k: hex });
      // The library keeps an experiment's totals as it writes; rows copied around it are counted once.
      resetTotals(db, n);
    }).immediate();
    if (k % 10 === 0) log(`  ${k + 1} experiments (${since(t0)})`);
  }
  const copiesMs = performance.now() - t0;
  log(`${EXPERIMENTS} experiments (${first}: ${total} jobs, the others ${copyJobs}): ${since(t0)} for the copies`);
  const bytesAll = bytes();
  const jobsAll = (db.prepare('SELECT COUNT(*) AS n FROM experiment_jobs').get() as { n: number }).n;
  const counts = db.prepare(`SELECT state, COUNT(*) AS n FROM experiment_jobs WHERE experiment = ? GROUP BY state`).all(first) as { state: string; n: number }[];
  log(`jobs of ${first}: ${counts.map((c) => `${c.state} ${c.n}`).join(', ')}`);

  // ---- the whole CLI, as a user runs it ----
  const cli = (argv: string[], runs: number, what: string, target: number) => {
    const bin = join(packageRoot, 'bin', 'vmwu.js');
    const xs: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t = performance.now();
      const r = spawnSync(process.execPath, [bin, ...argv], { env: { ...process.env, VMWU_HOME: home }, encoding: 'utf8' });
      const ms = performance.now() - t;
      if (r.status !== 0) throw new Error(`vmwu ${argv.join(' ')}: exit ${r.status}: ${r.stderr}`);
      if (i >= 2) xs.push(ms); // two warm-ups: the page cache, not the first start, is what a user sees
    }
    rows.push({ what, n: xs.length, p50: median(xs), p95: quantile(xs, 0.95), target });
  };
  // The full experiment is the one measured; the copies are there to be listed (and to make the tables as big as a store of 100 is).
  const mid = first;
  cli(['status', mid], CLI_RUNS, `vmwu status ${mid} (whole CLI)`, 200);
  cli(['status', mid, '--json'], CLI_RUNS, `vmwu status ${mid} --json (whole CLI)`, 200);
  cli(['experiments'], Math.min(CLI_RUNS, 10), `vmwu experiments: ${EXPERIMENTS} listed (whole CLI)`, 200);
  const node0 = (() => {
    const xs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      spawnSync(process.execPath, ['-e', '0']);
      xs.push(performance.now() - t);
    }
    return median(xs);
  })();

  // ---- the dashboard's API over HTTP ----
  const web = join(work, 'web');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<meta name="csrf-token" content="__CSRF__">');
  writeFileSync(join(web, 'app.js'), '// app');
  server = await startServer(store, { port: 0, webDir: web, spawnWorker: () => 0 });
  const srv = server;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { authorization: `Bearer ${srv.token}` };
  const get = (path: string): Promise<{ ms: number; body: string }> => {
    const t = performance.now();
    return new Promise((resolve, reject) => {
      request(srv.url + path, { headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => {
          if (res.statusCode === 200) resolve({ ms: performance.now() - t, body });
          else reject(new Error(`${path}: ${res.statusCode} ${body.slice(0, 200)}`));
        });
      }).on('error', reject).end();
    });
  };
  const sample = async (what: string, f: () => Promise<number>, target: number | null, note?: string) => {
    for (let i = 0; i < 3; i++) await f();
    const xs: number[] = [];
    const tEnd = performance.now() + BUDGET_MS;
    while (xs.length < REQUESTS && (xs.length < 3 || performance.now() < tEnd)) xs.push(await f());
    rows.push({ what, n: xs.length, p50: median(xs), p95: quantile(xs, 0.95), target, note });
    log(`  ${what}: p95 ${quantile(xs, 0.95).toFixed(1)} ms (${xs.length})`);
  };
  const api = (what: string, path: string, target: number | null = 50) => sample(what, async () => (await get(path)).ms, target);

  const x = `api/experiments/${mid}`;
  const deep = total - 50;
  const at = (f: number) => Math.round(total * f);
  await api('experiment page: GET /api/experiments/EXP', x);
  await api('experiment page: GET …/timings', `${x}/timings`);
  await api('jobs: page 1 (by index)', `${x}/jobs?limit=50`);
  await api('jobs: page 2 (by index)', `${x}/jobs?limit=50&offset=50`);
  await api(`jobs: last page by offset (offset ${deep})`, `${x}/jobs?limit=50&offset=${deep}`);
  await api(`jobs: by index desc, offset ${at(0.5)}`, `${x}/jobs?sort=index&dir=desc&offset=${at(0.5)}&limit=50`);
  await api('jobs: state=running, page 1', `${x}/jobs?state=running&limit=50`);
  await api(`jobs: state=pending, deep page (offset ${at(0.4)})`, `${x}/jobs?state=pending&offset=${at(0.4)}&limit=50`);
  await api('jobs: state=failed', `${x}/jobs?state=failed&limit=50`);
  await api('jobs: sort=duration desc, page 1', `${x}/jobs?sort=duration&dir=desc&limit=50`);
  await api(`jobs: sort=duration asc, offset ${at(0.3)}`, `${x}/jobs?sort=duration&dir=asc&offset=${at(0.3)}&limit=50`);
  await api('jobs: sort=host, page 1', `${x}/jobs?sort=host&limit=50`);
  await api('jobs: sort=cpu desc, page 1', `${x}/jobs?sort=cpu&dir=desc&limit=50`);
  await api('jobs: sort=rss, page 1', `${x}/jobs?sort=rss&limit=50`);
  await api('jobs: sort=started desc, page 1', `${x}/jobs?sort=started&dir=desc&limit=50`);
  await api(`jobs: sort=state, offset ${at(0.6)}`, `${x}/jobs?sort=state&offset=${at(0.6)}&limit=50`);
  await api('jobs: sort=exit desc, page 1', `${x}/jobs?sort=exit&dir=desc&limit=50`);
  await api('jobs: sort=attempts desc, page 1', `${x}/jobs?sort=attempts&dir=desc&limit=50`);
  await api('jobs: state=succeeded, sort=duration desc', `${x}/jobs?state=succeeded&sort=duration&dir=desc&limit=50`);
  await api('jobs: param a=7', `${x}/jobs?param.a=7&limit=50`);
  await api('jobs: param a=7 & b=9', `${x}/jobs?param.a=7&param.b=9&limit=50`);
  await api('jobs: param b=42, state=succeeded, sort=duration desc', `${x}/jobs?param.b=42&state=succeeded&sort=duration&dir=desc&limit=50`);
  // A state filter with another order: the sort's index is walked and each job's state read from its row.
  await api(`jobs: state=succeeded, sort=started desc, offset ${at(0.3)}`, `${x}/jobs?state=succeeded&sort=started&dir=desc&offset=${at(0.3)}&limit=50`);
  await api(`jobs: state=pending, sort=duration asc, offset ${at(0.4)}`, `${x}/jobs?state=pending&sort=duration&offset=${at(0.4)}&limit=50`);

  await api(`experiment list: GET /api/experiments (${EXPERIMENTS})`, 'api/experiments', 200);

  // ---- the event stream ----
  const hello = (): Promise<{ ms: number; close: () => void }> => {
    const t = performance.now();
    return new Promise((resolve, reject) => {
      const r = request(`${srv.url}api/events`, { headers }, (res) => {
        let buf = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          buf += c;
          if (buf.includes('event: hello')) resolve({ ms: performance.now() - t, close: () => r.destroy() });
        });
      });
      r.on('error', reject).end();
    });
  };
  await sample('events: GET /api/events, first event (hello)', async () => {
    const h = await hello();
    h.close();
    // Let the server see the close, so the next stream is again the first listener (the hub starts anew).
    await new Promise((r) => setTimeout(r, 30));
    return h.ms;
  }, 50);
  await sample(`events: change hub tick (changeSignatures over ${EXPERIMENTS} experiments)`, async () => {
    const t = performance.now();
    changeSignatures(db);
    return performance.now() - t;
  }, 50, 'runs every 0.5 s while a dashboard is open, blocking the server');
  // A dashboard open on the experiment page: its event stream open while the page's data is fetched.
  const listener = await hello();
  try {
    await api('experiment page with an event stream open', x);
    await api('jobs page 1 with an event stream open', `${x}/jobs?limit=50`);
  } finally {
    listener.close();
  }
  agent.destroy();

  // ---- the report ----
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [
    `${EXPERIMENTS} experiments: ${first} of ${total} jobs (${counts.map((c) => `${c.n} ${c.state}`).join(', ')}), the others of ${copyJobs} (every ${EVERY}th job of it); ${jobsAll} jobs in all`,
    `${REQUESTS} sequential requests per API call (fewer when one takes over ${BUDGET_MS / 1000} s in all), ${CLI_RUNS} CLI runs after 2 warm-ups;`
      + ` load average at the start ${load0}, at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (a shared machine)`,
    `writes: createExperiment of ${total} jobs ${(createMs / 1000).toFixed(1)} s; ${claimed} claimNext + ${finished} finishAttempt (with runs) ${(statesMs / 1000).toFixed(1)} s;`
      + ` ${EXPERIMENTS - 1} copies (INSERT … SELECT) ${(copiesMs / 1000).toFixed(1)} s; node -e 0: ${node0.toFixed(0)} ms`,
    '',
    `| ${pad('measure', 66)} | n   | p50 (ms) | p95 (ms) | target | p95 / target |`,
    `|${'-'.repeat(68)}|-----|----------|----------|--------|--------------|`,
    ...rows.map((r) => `| ${pad(r.what, 66)} | ${String(r.n).padEnd(3)} | ${r.p50.toFixed(1).padStart(8)} | ${r.p95.toFixed(1).padStart(8)} | ${r.target === null ? '   -  ' : `≤ ${r.target}`.padEnd(6)} | ${r.target === null ? '-' : (r.p95 / r.target).toFixed(2).padStart(12)} |`),
    ...rows.filter((r) => r.note).map((r) => `${r.what}: ${r.note}`),
    '',
    `store per job, one experiment: ${(bytesOne / total).toFixed(0)} B (${(bytesOne / 1e6).toFixed(1)} MB for ${total} jobs; target ≤ 2048 B, ratio ${(bytesOne / total / 2048).toFixed(2)})`,
    `store per job, all ${EXPERIMENTS}: ${(bytesAll / jobsAll).toFixed(0)} B (${(bytesAll / 1e9).toFixed(2)} GB)`,
    ...(perTable.length ? ['bytes per job by table and index (one experiment):', ...perTable.filter((t) => t.bytes > 65536).map((t) => `  ${pad(t.name, 36)} ${(t.bytes / total).toFixed(0).padStart(5)} B`)] : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await server?.close();
  store?.close();
  if (args.keep) log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
