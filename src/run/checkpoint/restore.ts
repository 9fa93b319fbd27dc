import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../../config.js';
import type { AccelVerdict } from '../../vm/accel.js';
import { VmwuError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { readCheckpoint } from './format.js';
import { acceptCheckpoint, requireSameQemu } from './resume.js';
import { LOCAL_ORIGIN, requireCheckpoint } from './records.js';
import { PhaseClock } from '../phase-clock.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from '../instance.js';
import { instanceDir, openNodeDirs } from '../node-dirs.js';
import { identityState, selfIdentity } from '../../store/process-identity.js';
import { reapOrphans } from '../reap.js';
import { getRun, reopenRun } from '../records.js';
import { blobSourceFor, dataDiskOf, restoringHost } from '../host-setup.js';
import { checkOutDir } from '../instance-run.js';
import { runRecorded } from '../run.js';
import { type RunHooks, type RunResult } from '../job-request.js';

/** Going on with a checkpointed run on this host (`vmwu restore`), as the same run, once the checkpoint has passed every check that it may be restored here. */

/**
 * `vmwu restore CHECKPOINT`: goes on with a checkpointed job in a new QEMU on
 * this host, as the same run: its logs continue, its outputs land in its out dir
 * (or `outDir`). Works whether the vmwu that ran it stopped it, or died (its QEMU
 * is reaped first). Refused, with the reason, for a checkpoint of another QEMU
 * build, one whose blobs the store lacks (src/run/blob-source.ts), one fetched
 * from an SSH pool host, one that does not agree with the run's own record
 * (src/run/checkpoint/trust.ts), and a run that is still going or done.
 */
export async function restoreRun(store: Store, ref: string, o: { outDir?: string } = {}, hooks: RunHooks = {}): Promise<RunResult> {
  const clock = new PhaseClock();
  clock.mark('start');
  await reapOrphans(store);
  const row = requireCheckpoint(store.db, ref);
  if (row.origin !== LOCAL_ORIGIN) {
    throw new VmwuError('CHECKPOINT_ORIGIN', `checkpoint ${row.id} came from SSH pool host ${row.origin.replace(/^host:/, '')}: a migration stream made on a pool host is restored only on hosts of that pool`,
      'see docs/security.md ("Checkpoints from other hosts"); the pool\'s own sweeps go on from it there');
  }
  const ck = readCheckpoint(row.dir);
  requireSameQemu(ck);
  const run = getRun(store.db, row.runId);
  if (!run) throw new VmwuError('NO_RUN', `checkpoint ${row.id} belongs to run ${row.runId}, which the store no longer has`);
  if ((run.status === 'running' || run.status === 'preparing') && identityState(run.owner) !== 'dead') {
    throw new VmwuError('RUN_ACTIVE', `run ${run.id} is still running`, `stop it at a checkpoint first: vmwu checkpoint ${run.id} --stop`);
  }
  if (run.status === 'succeeded' || run.status === 'failed' || run.status === 'timeout') {
    throw new VmwuError('RUN_FINISHED', `run ${run.id} already finished (${run.status})`, 'a finished job has nothing to go on with');
  }
  const terms = run.resources.terms;
  const accel = run.accel === 'kvm' || run.accel === 'tcg' ? run.accel : undefined;
  if (!terms || !accel) {
    throw new VmwuError('BAD_CHECKPOINT', `run ${run.id} was recorded by an older vmwu, without what a checkpoint of it must agree with`, 'start the job again');
  }
  const outDir = resolve(o.outDir ?? run.outDir);
  checkOutDir(outDir);
  const dirs = openNodeDirs((await loadConfig(store.paths.root)).scratch, store.paths.root);
  // The run's own record decides what the VM is; the checkpoint must agree with it.
  const { rec, blobs } = await acceptCheckpoint(row.dir, ck, terms, restoringHost(accel), blobSourceFor(store, dirs));
  if (rec.runId !== run.id) throw new VmwuError('BAD_CHECKPOINT', `checkpoint ${row.id} names run ${rec.runId}, not ${run.id}`);
  const p = instancePaths(instanceDir(dirs, run.id), runLogPaths(run.runDir), run.id);
  if (existsSync(p.scratch)) throw new VmwuError('RUN_ACTIVE', `run ${run.id} has an instance on this host (${p.scratch})`, 'is it being restored already?');
  mkdirSync(run.runDir, { recursive: true });
  makeInstanceDirs(p);
  reopenRun(store.db, run.id, { owner: selfIdentity(), outDir, scratchDir: p.scratch });
  const verdict: AccelVerdict = { accel, reason: `as checkpoint ${rec.id} was saved`, cached: false };
  hooks.onStart?.({ id: run.id, runDir: run.runDir, outDir, accel: verdict });
  return runRecorded(store, {
    id: run.id, accel: verdict, paths: p, outDir, runDir: run.runDir, clock,
    image: { boot: { kind: 'kernel', kernel: blobs.kernel, initrd: blobs.initrd, cmdline: rec.vm.cmdline }, root: blobs.root, virtualSize: terms.image.virtualSize },
    resumeFrom: { rec, dir: row.dir, blobs },
    // Its later checkpoints name its datasets too.
    data: (rec.data ?? []).map((d, n) => dataDiskOf(d.name, blobs.data[n]!)),
  }, {
    argv: run.argv, params: run.params, memoryMiB: terms.memoryMiB, cpus: terms.cpus, timeoutMs: terms.timeoutMs,
    maxOutputBytes: terms.maxOutputBytes, network: terms.network, ...(terms.rootBytes ? { rootBytes: terms.rootBytes } : {}),
    ...(terms.scratchBytes ? { scratchBytes: terms.scratchBytes } : {}), ...(rec.job.keep ? { keep: rec.job.keep } : {}),
  }, hooks);
}
