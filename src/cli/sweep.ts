import { join } from 'node:path';
import type { SingleBar } from 'cli-progress';
import { displayValue } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import type { Store } from '../store/store.js';
import { startWorker } from '../executors/worker.js';
import type { SweepEvent } from '../sweep/index.js';
import { parseAfter } from '../sweep/after.js';
import { getRun } from '../run/records.js';
import { reopenCancelled } from '../sweep/records/lifecycle.js';
import { getJob, listAttempts, requireExperiment } from '../sweep/records/reads.js';
import { experimentStatus, listExperimentSummaries, type ExperimentStatus } from '../sweep/records/status.js';
import type { PlacementPreview } from '../executors/ssh/driver.js';
import { wholeNumber, type SshOptions } from '../request/executor.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { EXIT_VMWU_ERROR, ms, printJson, table } from './output.js';
import { escapeForTerminal } from './terminal-text.js';

/**
 * The experiment commands: `vmwu sweep` (with `--dry-run` and `--detach`), suspend, resume, cancel,
 * experiments, status, results, a job's logs, and the node's `sweep-task`.
 */

/**
 * What plans, runs and places experiments (the plan parser, executors, SSH, the
 * progress bar: ~140 modules) is imported by the commands that use it, so that
 * `vmwu status` and `vmwu experiments` load only the store and its reads and
 * answer within 0.2 s on a busy 2-core machine (issue 25).
 */
const planning = () => import('../sweep/experiment.js');
const dispatching = () => import('../executors/dispatch.js');

interface SweepOptions {
  unit?: string; base?: string; name?: string; slots?: string; retries: string; dryRun?: boolean; detach?: boolean; json?: boolean;
  memory?: string; cpus?: string; timeout?: string; seed?: string; maxJobs?: string; cold?: boolean; checkpointEvery?: string; slurmTime?: string; data?: string[]; scratch?: string; stdin?: string;
  executor?: 'local' | 'slurm' | 'ssh'; createOnly?: boolean; partition?: string; account?: string; slurmOpt?: string[]; maxParallel?: string;
  hosts?: string; hostTimeout?: string; after?: string; cache?: boolean; nodes?: string; outputs?: string; spread?: boolean;
}

/** Exit codes: 0 every job succeeded; 1 some failed or the experiment was cancelled; 128+signal when interrupted. */
const EXIT_JOBS_FAILED = 1;

function paramsText(p: Record<string, string>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${displayValue(v)}`).join(' ');
}

/** `--dry-run`: parse, expand and show the jobs; boots nothing. With --executor ssh, also where they would go. */
async function dryRun(planPath: string, o: SweepOptions): Promise<void> {
  const { checkPlanParameters, jobChecker, loadPlan } = await planning();
  const loaded = loadPlan(planPath, { seed: wholeNumber(o.seed, '--seed', 0), maxJobs: wholeNumber(o.maxJobs, '--max-jobs', 1) });
  checkPlanParameters(loaded.plan);
  const checker = jobChecker(loaded.plan);
  const placement = o.executor === 'ssh' ? await previewPlacement(o, loaded.count) : undefined;
  if (o.json) {
    const jobs = [];
    for (const j of loaded.jobs()) {
      checker.check(j);
      jobs.push(j);
    }
    checker.finish();
    printJson(placement ? { jobs, placement } : jobs);
    return;
  }
  const names = loaded.plan.parameters.map((p) => p.name);
  const rows = [['JOB', ...names.map((n) => n.toUpperCase())]];
  for (const j of loaded.jobs()) {
    checker.check(j);
    rows.push([String(j.index), ...names.map((n) => displayValue(j.params[n] ?? ''))]);
  }
  checker.finish();
  process.stdout.write(table(rows));
  process.stdout.write(`${loaded.count} job${loaded.count === 1 ? '' : 's'} (seed ${loaded.seed})\n`);
  if (placement) {
    process.stdout.write(`\nplacement (${escapeForTerminal(placement.explain)}):\n`);
    process.stdout.write(table([
      ['RANK', 'HOST', 'STATE', 'SLOTS', 'HOLDS UNIT', 'TO SEND', 'WHY NOT'],
      ...placement.hosts.map((h) => [h.rank === null ? '-' : String(h.rank), h.name, !h.eligible ? 'filtered' : h.up ? 'up' : 'down', String(h.slots),
        h.eligible ? (h.holdsUnit ? 'yes' : 'no') : '-', h.eligible ? formatBytes(h.toSendBytes) : '-', h.why ?? '']),
    ]));
    const first = placement.first.map((f) => `${f.job}→${f.host ?? 'waits'}${f.sends ? ' (sends the unit)' : ''}`);
    process.stdout.write(`first jobs: ${escapeForTerminal(first.join(', '))}\n`);
  }
}

/** What the SSH executor would do with this sweep: connects to the hosts (read-only) to rank them. */
async function previewPlacement(o: SweepOptions, jobs: number): Promise<PlacementPreview & { explain: string }> {
  const [{ resolveRequest }, { sshExecutor }] = await Promise.all([import('../request/resolve.js'), import('../executors/ssh/driver.js')]);
  return withStore(async (store) => {
    const r = await resolveRequest(store, o, 'sweep');
    const ex = sshExecutor(r.executor.options as SshOptions);
    try {
      const cap = await ex.capacity(store, r);
      return { explain: cap.explain, ...ex.preview(store, Math.min(jobs, cap.slots + 2)) };
    } finally {
      await ex.close();
    }
  });
}

export async function sweep(planPath: string, o: SweepOptions): Promise<void> {
  if (o.dryRun) return dryRun(planPath, o);
  const { checkExperimentName, createExperiment } = await planning();
  if (o.name !== undefined) checkExperimentName(o.name);
  await withStore(async (store) => {
    // Storing a big experiment takes a while: a signal stops it between two batches and removes what was stored.
    const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
    let e;
    try {
      e = await createExperiment(store, {
        ...o, planPath, slots: wholeNumber(o.slots, '--slots', 1), retries: wholeNumber(o.retries, '--retries', 0), seed: wholeNumber(o.seed, '--seed', 0),
        maxJobs: wholeNumber(o.maxJobs, '--max-jobs', 1), signal: interrupt.signal, data: o.data ?? [], after: o.after === undefined ? undefined : parseAfter(o.after),
        noCache: o.cache === false,
      });
    } catch (err) {
      if (!interrupt.received) throw err;
      process.stderr.write(`vmwu: ${(err as Error).message}\n`);
      process.exitCode = interrupt.exitCode;
      return;
    } finally {
      interrupt.dispose();
    }
    if (o.createOnly) {
      if (o.json) printJson({ name: e.name, jobs: e.jobCount, dir: e.dir });
      else process.stderr.write(`vmwu: experiment ${e.name}: ${e.jobCount} jobs created, not started: run it with \`vmwu resume ${e.name}\`, or export it with \`vmwu export-jobs ${e.name} --format htcondor|pbs\`\n`);
      return;
    }
    if (o.detach) {
      const pid = startWorker(store.paths.root, e.name, e.dir);
      if (o.json) printJson({ name: e.name, jobs: e.jobCount, pid, log: join(e.dir, 'sweep.log'), dir: e.dir });
      else process.stderr.write(`vmwu: experiment ${e.name}: ${e.jobCount} jobs, running in the background (pid ${pid}, log ${join(e.dir, 'sweep.log')})\n  follow it with \`vmwu status ${e.name}\`\n`);
      return;
    }
    if (!o.json) process.stderr.write(`vmwu: experiment ${e.name}: ${e.jobCount} jobs on ${e.target.label} (seed ${e.seed})\n`);
    await attach(store, e.name, { json: Boolean(o.json), restartCancelled: false });
  });
}

interface AttachOptions {
  json: boolean;
  restartCancelled: boolean;
  slots?: number;
  /** Background worker: plain timestamped lines (to its log), never a bar. */
  worker?: boolean;
}

/**
 * Runs an experiment in this process and shows it: a progress bar on a terminal,
 * one line per job event otherwise. SIGINT/SIGTERM interrupt it (resumable).
 */
async function attach(store: Store, name: string, o: AttachOptions): Promise<void> {
  const [{ MultiBar, Presets }, { runExperimentOn }] = await Promise.all([import('cli-progress'), dispatching()]);
  const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
  const useBar = !o.worker && !o.json && Boolean(process.stderr.isTTY);
  // A MultiBar with one bar, because only it can print lines above the bar.
  const multi = useBar
    ? new MultiBar({
      stream: process.stderr, hideCursor: true, etaBuffer: 20, clearOnComplete: false,
      format: '{bar} {value}/{total} | ok {ok} failed {failed} running {running} | ETA {eta_formatted}',
    }, Presets.shades_classic)
    : undefined;
  let bar: SingleBar | undefined;
  const stamp = () => (o.worker ? `${new Date().toISOString()} ` : '');
  // Events quote what jobs, their hosts and the batch system said.
  const say = (text: string) => {
    if (o.json && !o.worker) return;
    const line = escapeForTerminal(text);
    if (multi) multi.log(`${line}\n`);
    else process.stderr.write(`${stamp()}vmwu: ${line}\n`);
  };
  let done = 0;
  let total = 0;
  const onEvent = (ev: SweepEvent) => {
    switch (ev.type) {
      case 'start':
        total = ev.total;
        done = ev.done;
        say(`experiment ${ev.experiment}: ${ev.hostSlots === 0 ? '' : `${ev.slots} slot${ev.slots === 1 ? '' : 's'}: `}${ev.explain}${ev.recovered ? `; ${ev.recovered} attempt(s) of a dead runner recovered` : ''}`);
        bar = multi?.create(ev.total, ev.done, { ok: 0, failed: 0, running: 0 });
        break;
      case 'job-start':
        if (!multi) say(`job ${ev.job} attempt ${ev.attempt} started`);
        break;
      case 'job-end': {
        const what = `${ev.status}${ev.error && ev.error !== ev.status ? ` (${ev.error})` : ''}`;
        const then = ev.next === 'pending' && ev.retryInMs !== null && ev.status !== 'interrupted' ? `; retry in ${ms(ev.retryInMs)}` : ev.next === 'failed' ? '; giving up' : '';
        if (['succeeded', 'failed', 'cancelled'].includes(ev.next)) done++;
        if (!multi || ev.status !== 'succeeded') say(`job ${ev.job} attempt ${ev.attempt} ${what}${ev.totalMs !== null ? ` in ${ms(ev.totalMs)}` : ''}${then} [${done}/${total}]`);
        break;
      }
      case 'warning':
        say(`warning: ${ev.message}`);
        break;
      case 'info':
        say(ev.message);
        break;
      case 'end':
        break;
    }
  };
  let result;
  try {
    result = await runExperimentOn(store, name, {
      signal: interrupt.signal, slots: o.slots, restartCancelled: o.restartCancelled, onEvent,
      onProgress: (p) => bar?.update(p.counts.succeeded + p.counts.failed + p.counts.cancelled, {
        ok: p.counts.succeeded, failed: p.counts.failed, running: p.counts.running,
      }),
    });
  } finally {
    multi?.stop();
    interrupt.dispose();
  }
  const st = experimentStatus(store, name);
  if (o.json && !o.worker) printJson(st);
  else printSummary(st, o.worker ? stamp() : '');
  if (interrupt.exitCode !== undefined) process.exitCode = interrupt.exitCode;
  else process.exitCode = result.state === 'succeeded' ? 0 : st.state === 'stopped' ? EXIT_VMWU_ERROR : EXIT_JOBS_FAILED;
}

function printSummary(st: ExperimentStatus, prefix: string): void {
  const c = st.counts;
  const w = (s: string) => process.stderr.write(`${prefix}${escapeForTerminal(s)}\n`);
  w(`vmwu: experiment ${st.name} ${st.state}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.pending + c.running} left of ${st.total}`);
  for (const f of st.failures.slice(0, 10)) w(`  job ${f.job} (${paramsText(f.params)}): ${f.error ?? 'failed'} [${f.attempts} attempt${f.attempts === 1 ? '' : 's'}]`);
  if (st.failures.length > 10) w(`  … and ${st.failures.length - 10} more: vmwu results ${st.name}`);
  if (st.state === 'stopped') w(`  continue with \`vmwu resume ${st.name}\``);
  w(`  results: ${st.resultsDir}`);
}

export async function suspend(name: string, o: { json?: boolean }): Promise<void> {
  const { suspendExperimentOn } = await dispatching();
  await withStore(async (store) => {
    const taken = await suspendExperimentOn(store, name, {
      onCheckpoint: (job, rec) => {
        if (!o.json) process.stderr.write(`vmwu: job ${job} stopped at checkpoint ${rec.id}\n`);
      },
    });
    if (o.json) return printJson(taken);
    process.stderr.write(`vmwu: experiment ${name} suspended (${taken.length} job(s) checkpointed); go on with: vmwu resume ${name}\n`);
  });
}

export async function resume(name: string, o: { slots?: string; detach?: boolean; json?: boolean; worker?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const e = requireExperiment(store.db, name);
    if (o.detach) {
      reopenCancelled(store.db, name);
      const pid = startWorker(store.paths.root, e.name, e.dir);
      if (o.json) printJson({ name: e.name, pid, log: join(e.dir, 'sweep.log') });
      else process.stderr.write(`vmwu: experiment ${e.name} resumed in the background (pid ${pid}, log ${join(e.dir, 'sweep.log')})\n`);
      return;
    }
    await attach(store, name, { json: Boolean(o.json), restartCancelled: !o.worker, slots: wholeNumber(o.slots, '--slots', 1), worker: o.worker });
  });
}

export async function experiments(o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const list = listExperimentSummaries(store);
    if (o.json) return printJson(list);
    if (!list.length) {
      process.stderr.write('vmwu: no experiments yet; start one with `vmwu sweep PLAN --unit UNIT`\n');
      return;
    }
    process.stdout.write(table([
      ['NAME', 'STATE', 'PROGRESS', 'OK', 'FAILED', 'TARGET', 'CREATED'],
      ...list.map((x) => [x.name, x.state === 'waiting' && x.after ? `waiting (${x.after.experiment})` : x.state, `${bar(x.done, x.total, 10)} ${x.done}/${x.total}`, String(x.counts.succeeded), String(x.counts.failed), x.target, x.createdAt.slice(0, 19)]),
    ]));
  });
}

function bar(done: number, total: number, width = 30): string {
  const n = total ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`;
}

export async function status(name: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    // The text shows 20 failures and how many there are; JSON lists them all.
    const st = experimentStatus(store, name, o.json ? {} : { failures: 20 });
    if (o.json) return printJson(st);
    const c = st.counts;
    const pct = st.total ? Math.floor((st.done / st.total) * 100) : 100;
    const who = st.owner?.alive ? ` (pid ${st.owner.pid}${st.owner.host ? ` on ${st.owner.host}` : ''})` : st.state === 'stopped' ? ' (no runner: `vmwu resume ' + st.name + '`)' : '';
    const lines = [
      `experiment ${st.name}: ${st.state}${who} on ${st.target}`,
      `${bar(st.done, st.total)} ${st.done}/${st.total} ${pct}%${st.etaMs !== null ? `  ETA ${ms(st.etaMs)}` : ''}`,
      `succeeded ${c.succeeded}  failed ${c.failed}  running ${c.running}  pending ${c.pending}${st.retrying ? ` (${st.retrying} waiting to retry)` : ''}  cancelled ${c.cancelled}`,
    ];
    if (st.after) lines.push(`after: ${st.state === 'waiting' ? 'waiting for' : 'ran after'} experiment ${st.after.experiment} to ${st.after.condition === 'succeeded' ? 'succeed' : 'finish'}`);
    if (st.endedWhy) lines.push(st.endedWhy);
    if (st.slots) lines.push(`slots: ${st.slotsExplain ?? st.slots}`);
    if (st.failures.length) {
      lines.push('failures:');
      for (const f of st.failures.slice(0, 20)) lines.push(`  job ${f.job} (${paramsText(f.params)}): ${f.error ?? 'failed'} [${f.attempts} attempt${f.attempts === 1 ? '' : 's'}]`);
      if (c.failed > st.failures.length) lines.push(`  … and ${c.failed - st.failures.length} more: vmwu results ${st.name}`);
    }
    lines.push(`results: ${st.resultsDir}`);
    process.stdout.write(escapeForTerminal(lines.join('\n')) + '\n');
  });
}

/** How an attempt's VM started (warm clone, restored, booted), and the template it made first, when it had to. */
function startText(a: { start?: { mode: string; warm?: boolean } | null; phases: { template?: number } | null } | undefined): string {
  if (!a?.start) return '-';
  const how = a.start.warm ? 'warm' : a.start.mode;
  return a.phases?.template && a.phases.template >= 100 ? `template ${ms(a.phases.template)} + ${how}` : how;
}

export async function results(name: string, o: { json?: boolean }): Promise<void> {
  const { experimentResults } = await planning();
  await withStore(async (store) => {
    const rs = experimentResults(store, name);
    if (o.json) return printJson(rs);
    const e = requireExperiment(store.db, name);
    // Like a Nextflow trace: where the deciding attempt ran, its batch task, and what its QEMU used.
    process.stdout.write(table([
      ['JOB', 'STATUS', 'EXIT', 'ATTEMPTS', 'TIME', 'START', 'HOST', 'BATCH ID', 'CPU', 'PEAK RSS', 'RUN', 'PARAMS', 'OUTPUTS'],
      ...rs.map((r) => {
        const last = r.history[r.history.length - 1];
        const u = last?.usage;
        // Like Nextflow's CACHED: the job did not run; its outputs are those of the run it names.
        return [String(r.job), r.cachedFrom ? `cached (${r.cachedFrom})` : r.status, r.exitCode === null ? '-' : String(r.exitCode), String(r.attempts), r.totalMs === null ? '-' : ms(r.totalMs),
          startText(last), last?.host ?? '-', last?.batchId ?? '-', u ? ms(u.cpuMs) : '-', u ? formatBytes(u.maxRssKiB * 1024) : '-',
          r.runId ?? '-', paramsText(r.params), r.outputs.map((p) => p.slice(join(e.dir, 'results').length + 1)).join(' ')];
      }),
    ]));
  });
}

export async function cancel(name: string, o: { json?: boolean }): Promise<void> {
  const { cancelExperimentOn } = await dispatching();
  await withStore(async (store) => {
    requireExperiment(store.db, name);
    const interrupt = interruptOn(['SIGINT']);
    try {
      const { state, scancelled } = await cancelExperimentOn(store, name, { signal: interrupt.signal });
      if (scancelled.length && !o.json) process.stderr.write(`vmwu: scancel ${scancelled.join(' ')}\n`);
      if (o.json) printJson(experimentStatus(store, name));
      else process.stderr.write(state === 'cancelled' ? `vmwu: experiment ${name} cancelled\n` : `vmwu: experiment ${name} is ${state}; nothing to cancel\n`);
    } finally {
      interrupt.dispose();
    }
  });
}

/** `vmwu logs EXP/JOB`: the latest attempt's run; with -f, each new attempt in turn until the job settles. */
export async function jobLogs(ref: string, o: { follow?: boolean; console?: boolean; raw?: boolean }): Promise<void> {
  const i = ref.lastIndexOf('/');
  const name = ref.slice(0, i);
  const jobText = ref.slice(i + 1);
  if (!/^\d+$/.test(jobText)) throw new VmwuError('BAD_VALUE', `${ref}: expected EXPERIMENT/JOB with JOB a job number`, 'for example vmwu logs mandelbrot/3');
  const job = Number(jobText);
  const { logs, tailFiles } = await import('./logs.js');
  let shown = 0;
  for (;;) {
    const step = await withStore(async (store) => {
      requireExperiment(store.db, name);
      const j = getJob(store.db, name, job);
      if (!j) throw new VmwuError('NO_JOB', `experiment ${name} has no job ${job}`, `see its jobs with \`vmwu results ${name}\``);
      // SSH attempts learn their run id only at the end: their host says they have started.
      const latest = listAttempts(store.db, name, job).filter((a) => a.runId || a.host).pop();
      const e = requireExperiment(store.db, name);
      const settled = ['succeeded', 'failed', 'cancelled'].includes(j.state) || !['running', 'cancelling', 'created'].includes(e.state);
      // A run of this store keeps its logs in its run dir; one of an SSH host or a compute node streams them into the attempt's dir.
      return { latest, settled, local: Boolean(latest?.runId && getRun(store.db, latest.runId)) };
    });
    if (step.latest && step.latest.attempt > shown) {
      const a = step.latest;
      if (shown > 0) process.stderr.write(`--- vmwu: attempt ${a.attempt} (${escapeForTerminal(a.host ? `host ${a.host}` : `run ${a.runId}`)}) ---\n`);
      if (step.local) {
        await logs(a.runId!, { follow: o.follow, console: o.console, raw: o.raw });
      } else {
        const files: [string, NodeJS.WriteStream][] = o.console ? [[join(a.outDir, 'console.log'), process.stdout]]
          : [[join(a.outDir, 'stdout'), process.stdout], [join(a.outDir, 'stderr'), process.stderr]];
        await withStore((store) => tailFiles(files, { follow: Boolean(o.follow), raw: Boolean(o.raw) }, () => listAttempts(store.db, name, job).find((x) => x.attempt === a.attempt)?.status === 'running'));
      }
      shown = step.latest.attempt;
      if (!o.follow) return;
      continue;
    }
    if (!o.follow) throw new VmwuError('NO_RUN', `job ${job} of ${name} has not started yet`, `see \`vmwu status ${name}\``);
    if (step.settled) return;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * `vmwu sweep-task --task FILE` (hidden): one job attempt, run on this node from
 * the task file the submitter wrote; what each batch task executes. It never opens
 * the store's database.
 */
export async function sweepTaskCommand(o: { task: string; batchId?: string }): Promise<void> {
  const { runNodeTask, stopAtCheckpointWhenAsked } = await import('../sweep/batch/node-task.js');
  const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
  // Slurm's `--signal=B:USR1@S` (sweep --slurm-time): the allocation ends soon.
  const ending = stopAtCheckpointWhenAsked((m) => process.stderr.write(`vmwu: ${m}\n`));
  const onUsr1 = () => ending.ask();
  process.on('SIGUSR1', onUsr1);
  try {
    const { code, result } = await runNodeTask(o.task, { batchId: o.batchId, signal: interrupt.signal, onControl: ending.onControl });
    if (result) process.stderr.write(`vmwu: ${result.status}${result.exitCode !== null ? ` (exit ${result.exitCode})` : ''}${result.error ? `: ${escapeForTerminal(result.error.message)}` : ''}; run ${result.id}\n`);
    process.exitCode = code;
  } finally {
    interrupt.dispose();
    process.off('SIGUSR1', onUsr1);
  }
}
