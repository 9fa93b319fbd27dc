import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { VmwuError } from '../errors.js';
import type { Store } from '../store/store.js';
import { readCheckpoint } from './checkpoint.js';
import { checkpointBlobPaths, requireSameQemu } from './resume.js';
import { requireCheckpoint } from './checkpoint-records.js';
import { PhaseClock } from './ctl.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from './instance.js';
import { instanceDir, nodeDirs } from './node-dirs.js';
import { identityState, selfIdentity } from './process-identity.js';
import { reapOrphans } from './reap.js';
import { getRun, reopenRun } from './records.js';
import { blobSourceFor, checkOutDir, dataDiskOf, runRecorded, type RunHooks, type RunResult } from './run.js';

/**
 * `vmwu restore CHECKPOINT`: goes on with a checkpointed job in a new QEMU on
 * this host, as the same run: its logs continue, its outputs land in its out dir
 * (or `outDir`). Works whether the vmwu that ran it stopped it, or died (its QEMU
 * is reaped first). Refused, with the reason, for a checkpoint of another QEMU
 * build, one whose blobs the store lacks (src/run/blob-source.ts), and a run that
 * is still going or done.
 */
export async function restoreRun(store: Store, ref: string, o: { outDir?: string } = {}, hooks: RunHooks = {}): Promise<RunResult> {
  const clock = new PhaseClock();
  clock.mark('start');
  await reapOrphans(store);
  const row = requireCheckpoint(store.db, ref);
  const rec = readCheckpoint(row.dir);
  requireSameQemu(rec);
  const run = getRun(store.db, rec.runId);
  if (!run) throw new VmwuError('NO_RUN', `checkpoint ${rec.id} belongs to run ${rec.runId}, which the store no longer has`);
  if ((run.status === 'running' || run.status === 'preparing') && identityState(run.owner) !== 'dead') {
    throw new VmwuError('RUN_ACTIVE', `run ${run.id} is still running`, `stop it at a checkpoint first: vmwu checkpoint ${run.id} --stop`);
  }
  if (run.status === 'succeeded' || run.status === 'failed' || run.status === 'timeout') {
    throw new VmwuError('RUN_FINISHED', `run ${run.id} already finished (${run.status})`, 'a finished job has nothing to go on with');
  }
  const outDir = resolve(o.outDir ?? run.outDir);
  checkOutDir(outDir);
  const dirs = nodeDirs((await loadConfig(store.paths.root)).scratch, store.paths.root);
  const blobs = await checkpointBlobPaths(rec, blobSourceFor(store, dirs));
  const p = instancePaths(instanceDir(dirs, run.id), runLogPaths(run.runDir), run.id);
  if (existsSync(p.scratch)) throw new VmwuError('RUN_ACTIVE', `run ${run.id} has an instance on this host (${p.scratch})`, 'is it being restored already?');
  mkdirSync(run.runDir, { recursive: true });
  makeInstanceDirs(p);
  reopenRun(store.db, run.id, { owner: selfIdentity(), outDir, scratchDir: p.scratch });
  const accel = { accel: rec.vm.accel, reason: `as checkpoint ${rec.id} was saved`, cached: false };
  hooks.onStart?.({ id: run.id, runDir: run.runDir, outDir, accel });
  return runRecorded(store, {
    id: run.id, accel, paths: p, outDir, runDir: run.runDir, clock,
    image: { boot: { kind: 'kernel', kernel: blobs.kernel, initrd: blobs.initrd, cmdline: rec.vm.cmdline }, root: blobs.root, virtualSize: rec.image.virtualSize },
    resumeFrom: { rec, dir: row.dir, blobs },
    // Its later checkpoints name its datasets too.
    data: (rec.data ?? []).map((d, n) => dataDiskOf(d.name, blobs.data[n]!)),
  }, {
    argv: run.argv, params: run.params, memoryMiB: rec.vm.memoryMiB, cpus: rec.vm.cpus, timeoutMs: rec.job.timeoutMs,
    maxOutputBytes: rec.job.maxOutputBytes, network: rec.vm.network, ...(rec.job.keep ? { keep: rec.job.keep } : {}),
  }, hooks);
}
