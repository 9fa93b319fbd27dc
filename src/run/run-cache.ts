import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { requireBase } from '../store/bases.js';
import { writeFileDurableSync } from '../store/durable.js';
import { linkOrCopySync } from '../store/link-or-copy.js';
import { selfIdentity } from '../store/process-identity.js';
import type { Store } from '../store/store.js';
import { checkOutDir } from './instance-run.js';
import { newRunId, type RunHooks, type RunRequest, type RunResult } from './job-request.js';
import { jobKey } from './job-key.js';
import { PhaseClock } from './phase-clock.js';
import { finishRun, getRun, insertRun } from './records.js';
import { findResult, keyContext, linkResult, pathDigest, recordResult, type KeyContext } from './result-cache.js';
import { runJob } from './run.js';

/**
 * The result cache for `vmwu run` (src/run/result-cache.ts, as sweeps have it): a
 * run whose key has a succeeded result is not run again. A new run is recorded
 * that names the one it came from; the outputs are linked into its out dir and the
 * first run's stdout and stderr are shown again. A job with a network is cached
 * only when asked (`--cache`): what it fetched the key cannot see. Build steps,
 * resumed runs and `vmwu docker run` go through runJob and are never cached.
 */

export interface RunCacheChoice {
  /** `--no-cache`, or VMWU_RESULT_CACHE=off. */
  off?: boolean;
  /** `--cache`: cache a job with a network too. */
  force?: boolean;
}

/** Why this request is not cached, or undefined when it is. */
export function notCachedBecause(req: RunRequest, c: RunCacheChoice): string | undefined {
  if (c.off) return 'the cache is off';
  if (req.resumeFrom || req.cut || req.keepRoot || req.tty) return 'a job of its kind is never cached';
  if (req.network && !c.force) return 'it has a network (--cache caches it anyway)';
  return undefined;
}

/** The run's key: what boots, what runs, every input's and the app's content, datasets, stdin, the machine. */
export async function runKey(store: Store, req: RunRequest, ctx: KeyContext): Promise<string> {
  const base = requireBase(store.db, req.base);
  const inputs: { path: string; digest: string }[] = [];
  for (const i of req.inputs ?? []) {
    const { path, name } = typeof i === 'string' ? { path: i, name: basename(i) } : i;
    inputs.push({ path: name, digest: existsSync(path) ? await pathDigest(ctx, path) : 'missing' });
  }
  if (req.app) inputs.push({ path: '/app', digest: await pathDigest(ctx, req.app) });
  const stdin = req.stdin && 'host' in req.stdin ? (existsSync(req.stdin.host) ? await pathDigest(ctx, req.stdin.host) : 'missing') : req.stdin ? `work:${req.stdin.work}` : null;
  return jobKey({
    target: { base: base.digest, layers: req.layers ?? [], process: req.process, paramDefaults: {} },
    commands: { argv: req.argv, keep: req.keep ?? null, network: Boolean(req.network) },
    params: req.params ?? {}, inputs, datasets: req.datasets ?? [], stdin,
    machine: { cpus: req.cpus, memoryMiB: req.memoryMiB, cpuModel: ctx.cpuModel, cpuNeeds: req.cpuNeeds ?? [], scratchBytes: req.scratchBytes ?? null, rootBytes: req.rootBytes ?? null },
  });
}

export interface CachedRunNotes {
  /** Why the cache did not answer, when it had a result it could not use. */
  onDamaged?(why: string): void;
  /** The run it came from, on a hit. */
  onCached?(from: { runId: string | null; source: string }): void;
}

/** `runJob`, answered from the cache when it can be; a succeeded run's result is recorded for the next. */
export async function runJobCached(store: Store, req: RunRequest, hooks: RunHooks & CachedRunNotes, choice: RunCacheChoice): Promise<RunResult> {
  if (notCachedBecause(req, choice)) return runJob(store, req, hooks);
  const key = await runKey(store, req, keyContext());
  const hit = await findResult(store.db, key);
  if (hit && 'damaged' in hit) hooks.onDamaged?.(hit.damaged);
  else if (hit) {
    hooks.onCached?.({ runId: hit.runId, source: hit.source });
    return answerFromCache(store, req, hit, hooks);
  }
  const result = await runJob(store, req, hooks);
  if (result.status === 'succeeded') await recordResult(store.db, { key, outDir: result.outDir, runId: result.id, source: `run ${result.id}` });
  return result;
}

/** A new run that took a cached result: recorded, its outputs linked, the first run's output shown. */
async function answerFromCache(store: Store, req: RunRequest, hit: { outDir: string; runId: string | null; source: string }, hooks: RunHooks): Promise<RunResult> {
  const started = performance.now();
  const id = newRunId();
  const runDir = join(store.paths.runs, id);
  const outDir = resolve(req.outDir ?? join(runDir, 'out'));
  checkOutDir(outDir);
  mkdirSync(runDir, { recursive: true });
  insertRun(store.db, {
    id, base: req.base, argv: req.argv, params: req.params ?? {}, owner: selfIdentity(),
    // No instance: nothing node-local for a reaper to remove.
    resources: { memoryMiB: req.memoryMiB, cpus: req.cpus, timeoutMs: req.timeoutMs }, outDir, runDir, scratchDir: null,
  });
  // No phase ran: a clock never started reads all zeros.
  const phases = new PhaseClock().phases();
  try {
    linkResult(hit.outDir, outDir);
    const first = hit.runId ? getRun(store.db, hit.runId) : undefined;
    for (const stream of ['stdout', 'stderr'] as const) {
      const log = first ? join(first.runDir, `${stream}.log`) : undefined;
      if (!log || !existsSync(log)) continue;
      linkOrCopySync(log, join(runDir, `${stream}.log`));
      hooks.onOutput?.(stream, readFileSync(log));
    }
    const totalMs = Math.round(performance.now() - started);
    const result: RunResult = { id, status: 'succeeded', exitCode: 0, accel: first?.accel === 'kvm' ? 'kvm' : 'tcg', outDir, phases, totalMs, cachedFrom: hit.source };
    // This run's own record, not the linked one of the run it came from.
    rmSync(join(outDir, 'run.json'), { force: true });
    writeFileDurableSync(join(outDir, 'run.json'), JSON.stringify(result, null, 2) + '\n');
    finishRun(store.db, id, { status: 'succeeded', exitCode: 0, phases, totalMs, error: null, cachedFrom: hit.source });
    return result;
  } catch (e) {
    // The record never stays in flight.
    finishRun(store.db, id, { status: 'error', exitCode: null, phases, totalMs: Math.round(performance.now() - started), error: (e as Error).message, cachedFrom: hit.source });
    throw e;
  }
}
