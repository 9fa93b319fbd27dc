import { hostname } from 'node:os';
import { isVmwuError } from '../../errors.js';
import { restoreRun } from '../../run/checkpoint/restore.js';
import { runJob } from '../../run/run.js';
import { WarmPool } from '../../run/fast-start/warm-pool.js';
import type { Store } from '../../store/store.js';
import { type RunHooks, type RunRequest, type RunResult } from '../../run/job-request.js';
import { runMultiVm, type MultiVmResult } from '../../run/multi-vm.js';
import { jobNodes } from '../../sweep/job-nodes.js';
import { periodicCheckpoints, resumableCheckpoint } from '../../sweep/attempt-checkpoints.js';
import type { AttemptResult, Executor } from '../../sweep/driver.js';
import { jobExtras } from '../../request/resolve.js';
import { prepareLaunch } from '../../sweep/job-launch.js';

/** The local executor: each attempt a QEMU instance on this host, booted (or restored) with runJob. */

/**
 * Clones kept warm for the jobs to come (src/run/fast-start/warm-pool.ts), one
 * pool per store: never more than the runner has slots busy, and only on cores
 * its jobs leave idle. Off with VMWU_WARM=0.
 */
const pools = new Map<string, WarmPool>();

function poolFor(store: Store): WarmPool | undefined {
  if (process.env.VMWU_WARM === '0') return undefined;
  let p = pools.get(store.paths.root);
  if (!p) pools.set(store.paths.root, (p = new WarmPool()));
  return p;
}

/** Runs attempts as local QEMU instances with runJob: one boot (or restore) per job, or a checkpoint gone on from. */
export const localExecutor: Executor = {
  name: 'local',
  async close() {
    await Promise.all([...pools.values()].map((p) => p.close()));
    pools.clear();
  },
  async runAttempt(store, ctx) {
    const e = ctx.experiment;
    const launch = prepareLaunch(ctx);
    const ck = periodicCheckpoints(e.resources.checkpointEveryMs);
    const nodes = jobNodes(e.resources, ctx.job.params);
    // A job of several VMs is never checkpointed (src/sweep/experiment.ts), so it has none to go on from.
    const resumable = nodes > 1 ? undefined : resumableCheckpoint(store, e.name, ctx.job.index);
    const hooks: RunHooks = {
      signal: ctx.signal, attemptOf: { experiment: e.name, job: ctx.job.index, attempt: ctx.attempt }, onControl: ck.onControl,
      // The run id first: an attempt with a host but no run is one whose logs stream into its own directory (SSH, batch nodes).
      onStart: ({ id }) => {
        ctx.onRunId(id);
        ctx.onPlaced?.(hostname());
      },
    };
    try {
      if (resumable) {
        try {
          return attemptResultOf(await restoreRun(store, resumable.id, { outDir: ctx.outDir }, hooks));
        } catch (err) {
          // Not restorable here (another QEMU build, blobs gone): the job starts over.
          if (!isVmwuError(err) || err.code === 'RUN_ACTIVE') throw err;
        }
      }
      const req: RunRequest = {
        base: e.target.base,
        layers: e.target.layers.length ? e.target.layers : undefined,
        process: e.target.process,
        ...launch,
        outDir: ctx.outDir,
        memoryMiB: e.resources.memoryMiB,
        cpus: e.resources.cpus,
        timeoutMs: e.resources.timeoutMs,
        maxOutputBytes: e.resources.maxOutputBytes,
        network: false,
        cold: e.resources.cold,
        ...jobExtras(e.resources),
      };
      if (nodes > 1) return attemptResultOf(await runMultiVm(store, req, { nodes, outputsAll: e.resources.outputsAll }, hooks));
      const warm = poolFor(store);
      if (!warm) return attemptResultOf(await runJob(store, req, hooks));
      return attemptResultOf(await warm.serving(req.cpus, () => runJob(store, req, { ...hooks, warm }), ctx.slots));
    } finally {
      ck.stop();
    }
  },
};

function attemptResultOf(r: RunResult & Partial<Pick<MultiVmResult, 'vms'>>): AttemptResult {
  return { runId: r.id, status: r.status, exitCode: r.exitCode, phases: r.phases, totalMs: r.totalMs, error: r.error, usage: r.usage, start: r.start, ...(r.vms ? { vms: r.vms } : {}) };
}
