import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { requireBase } from '../store/bases.js';
import { settingsCache } from '../store/db.js';
import type { Store } from '../store/store.js';
import { qemuUser } from '../vm/qemu-user.js';
import { PhaseClock } from './phase-clock.js';
import { fastStartShape } from './fast-start/clone.js';
import { templateCache, type TemplateCache } from './fast-start/template.js';
import { discardWarmClone, type WarmClone, type WarmPool } from './fast-start/warm-pool.js';
import { hostTscKhz } from '../vm/host.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from './instance.js';
import { instanceDir } from './node-dirs.js';
import { selfIdentity } from '../store/process-identity.js';
import { reapOrphans } from './reap.js';
import { finishRun, insertRun, markRunning } from './records.js';
import { newRunId, type JobRequest, type RunHooks, type RunRequest, type RunResult } from './job-request.js';
import { blobSourceFor, hostSetup, jobTermsOf, resolveDatasets, resumeHere } from './host-setup.js';
import { checkOutDir, runInstance, type InstanceContext } from './instance-run.js';
import { checkpointBlobs, insertCheckpoint } from './checkpoint/records.js';
import { serveRunControl, type InstanceControl } from './run-control.js';

/** A job run and recorded in the store (`vmwu run`, local sweeps, builds, SSH pool hosts): the `runs` row, its control socket, its checkpoints. */

/**
 * Runs one job in a fresh VM and records it in the store (the `runs` table and
 * `runs/<id>/`): what `vmwu run`, local sweeps, builds and SSH pool hosts do.
 * Always leaves a finished run record.
 */
export async function runJob(store: Store, req: RunRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const clock = new PhaseClock();
  clock.mark('start');
  await reapOrphans(store);

  const base = requireBase(store.db, req.base);
  if (req.app && !(existsSync(req.app) && statSync(req.app).isDirectory())) throw new VmwuError('BAD_APP', `--app ${req.app}: not a directory`);
  const id = newRunId();
  const runDir = join(store.paths.runs, id);
  const outDir = resolve(req.outDir ?? join(runDir, 'out'));
  checkOutDir(outDir);
  const { config, dirs, image, accel, cache } = await hostSetup(store, base, req.layers);
  // What the job takes from the node cache stays there until it is over (src/run/node-cache.ts).
  try {
    const source = blobSourceFor(store, dirs, cache);
    const data = await resolveDatasets(source, req.datasets);
    const terms = jobTermsOf(image, req, data);
    const resume = req.resumeFrom ? await resumeHere(req.resumeFrom, terms, accel.accel, source) : {};

    const templates = config.fastStart ? templateCache(dirs, store.paths.root, qemuUser(), hooks.driver, cache) : undefined;
    const warm = hooks.warm && templates && !req.resumeFrom ? takeWarm(hooks.warm, templates, { accel, image, templates, data }, req) : undefined;
    const p = warm ? { ...warm.paths, logs: runLogPaths(runDir) } : instancePaths(instanceDir(dirs, id), runLogPaths(runDir), id);
    try {
      mkdirSync(runDir, { recursive: true });
      if (!warm) makeInstanceDirs(p);
      insertRun(store.db, {
        id, base: base.name, argv: req.argv, params: req.params ?? {}, owner: selfIdentity(),
        resources: { memoryMiB: req.memoryMiB, cpus: req.cpus, timeoutMs: req.timeoutMs, ...(terms ? { terms } : {}) }, outDir, runDir, scratchDir: p.scratch,
      });
    } catch (e) {
      // No run record names the clone's dir: nobody else would stop it.
      if (warm) await discardWarmClone(warm);
      throw e;
    }
    hooks.onStart?.({ id, runDir, outDir, accel });
    return await runRecorded(store, {
      id, image, accel, paths: p, outDir, runDir, clock, cache, templates, warm,
      ...resume, cpuCache: settingsCache(store.db), data,
    }, req, hooks);
  } finally {
    cache.release();
  }
}

/** A warm clone for the job if one waits, and another started for the job after it. */
function takeWarm(pool: WarmPool, templates: TemplateCache, ctx: Parameters<typeof fastStartShape>[0], req: RunRequest): WarmClone | undefined {
  // A warm clone's RAM is the template's, mapped privately: it cannot become a file of the job's own.
  if (req.checkpointable) return undefined;
  const shape = fastStartShape(ctx, req, hostTscKhz());
  if (typeof shape !== 'object') return undefined;
  const w = pool.take(shape);
  pool.keepWarm(templates, shape);
  return w;
}

/**
 * An instance recorded in the store's `runs`: running (with its QEMU's pid), its
 * control socket (`vmwu checkpoint`), its checkpoints, and how it finished.
 */
export async function runRecorded(store: Store, ctx: Omit<InstanceContext, 'storeRoot' | 'checkpoints' | 'onRunning' | 'runDir'> & { runDir: string },
  req: JobRequest, hooks: RunHooks): Promise<RunResult> {
  let control: InstanceControl | undefined;
  const server = await serveRunControl(ctx.paths.sockets.control, () => control);
  try {
    const result = await runInstance({
      ...ctx, storeRoot: store.paths.root,
      checkpoints: { dir: store.paths.checkpoints, onSaved: (rec, dir) => insertCheckpoint(store.db, { ...rec, blobs: checkpointBlobs(rec) }, dir, hooks.attemptOf ?? null) },
      onRunning: (pid) => markRunning(store.db, ctx.id, ctx.accel.accel, pid, ctx.paths.sockets.control),
    }, req, {
      ...hooks,
      onControl: (c) => {
        control = c;
        hooks.onControl?.(c);
      },
    });
    finishRun(store.db, ctx.id, {
      status: result.status, exitCode: result.exitCode, phases: result.phases, totalMs: result.totalMs, error: result.error?.message ?? null,
      usage: result.usage ?? null, start: result.start,
    });
    return result;
  } finally {
    control = undefined;
    server.close();
  }
}
