import { statSync } from 'node:fs';
import { z } from 'zod';
import { isVmwuError, VmwuError } from '../../errors.js';
import { CHECKPOINT_ID, readCheckpoint } from '../../run/checkpoint/format.js';
import { poolOrigin } from '../../run/checkpoint/records.js';
import type { JobTerms } from '../../run/checkpoint/trust.js';
import { dataDiskBytes } from '../../run/prepare.js';
import type { Base } from '../../store/bases.js';
import type { Digest } from '../../store/blobs.js';
import type { Store } from '../../store/store.js';
import { resumableCheckpoint } from '../../sweep/attempt-checkpoints.js';
import type { AttemptContext, AttemptResult } from '../../sweep/driver.js';
import { attemptDir } from '../../sweep/experiment.js';
import { stateCap } from '../../vm/vm-state.js';
import { HostLostError, type SshConnection } from './connection.js';
import { listHosts } from './hosts.js';
import { fetchCheckpoint, logsUpToCheckpoint, sendCheckpoint } from './job-move.js';
import type { PoolHost } from './pool-host.js';
import type { RemoteResult } from './protocol.js';

/** A pool attempt's checkpoints: the one it goes on from, sent ahead to its host; those its host takes, periodically or when it stops, brought back into the store. */

/** An attempt placed on a pool host, connected. */
export interface PlacedAttempt {
  store: Store;
  ctx: AttemptContext;
  host: PoolHost<SshConnection>;
  conn: SshConnection;
  base: Base;
  info(message: string): void;
}

/** A job as its host knows it: the id of its job dir, and the bytes of its staged inputs. */
export interface RemoteJob {
  id: string;
  inputBytes: number;
}

const checkpointReplySchema = z.object({ id: z.string().regex(CHECKPOINT_ID) }).passthrough();

/** Sends the job's resumable checkpoint (src/sweep/attempt-checkpoints.ts) to the host, if it has one; a checkpoint that cannot be sent is passed over. */
export async function sendResumable(a: PlacedAttempt, id: string): Promise<{ id: string; logPrefix: { stdout: number; stderr: number } } | undefined> {
  const { store, ctx, conn, info } = a;
  const ck = resumableCheckpoint(store, ctx.experiment.name, ctx.job.index);
  if (!ck || ck.attempt === null) return undefined;
  // A migration stream goes only to hosts of the pool that made it (docs/security.md): a host removed since is not vouched for.
  if (!listHosts(store.db).some((x) => poolOrigin(x.name) === ck.origin)) {
    info(`job ${ctx.job.index}: checkpoint ${ck.id} came from ${ck.origin}, which is not a host of this pool; the job starts over`);
    return undefined;
  }
  let rec;
  try {
    rec = readCheckpoint(ck.dir);
  } catch (err) {
    info(`job ${ctx.job.index}: checkpoint ${ck.id} is unreadable (${(err as Error).message}); the job starts over`);
    return undefined;
  }
  try {
    await sendCheckpoint(conn, id, ck.dir);
  } catch (err) {
    if (!conn.alive) throw new HostLostError(a.host.record.name, (err as Error).message);
    info(`job ${ctx.job.index}: checkpoint ${ck.id} could not be sent to ${a.host.record.name} (${(err as Error).message}); the job starts over`);
    await conn.exec(['clean', id]).catch(() => undefined);
    return undefined;
  }
  const logPrefix = logsUpToCheckpoint(ctx.outDir, attemptDir(ctx.experiment, ctx.job.index, ck.attempt), rec.logged);
  return { id: ck.id, logPrefix };
}

/** What the job asked of its host (its request): a checkpoint of it coming back must agree (src/run/checkpoint/trust.ts). */
function jobTermsFor(a: PlacedAttempt, job: RemoteJob): JobTerms {
  const { store, base: b } = a;
  const e = a.ctx.experiment;
  if (!b.kernel || !b.initrd) throw new VmwuError('CHECKPOINT', `base ${b.name} boots by firmware: its jobs cannot be checkpointed`);
  return {
    memoryMiB: e.resources.memoryMiB, cpus: e.resources.cpus, network: false, timeoutMs: e.resources.timeoutMs, maxOutputBytes: e.resources.maxOutputBytes,
    image: { kernel: b.kernel, initrd: b.initrd, root: (e.target.layers[0] ?? b.root) as Digest, virtualSize: b.virtualSize, cmdline: b.cmdline },
    ...(e.resources.rootBytes ? { rootBytes: e.resources.rootBytes } : {}),
    datasets: (e.resources.datasets ?? []).map((d) => ({ digest: d.digest as Digest, diskBytes: dataDiskBytes(statSync(store.blobs.path(d.digest as Digest)).size) })),
    app: false, ...(e.resources.scratchBytes ? { scratchBytes: e.resources.scratchBytes } : {}), inputBytes: job.inputBytes,
  };
}

/** Brings a checkpoint the job's run took on its host into the store, recorded as the attempt's (src/executors/ssh/job-move.ts). */
async function bringCheckpoint(a: PlacedAttempt, job: RemoteJob, checkpoint: string): Promise<void> {
  const e = a.ctx.experiment;
  await fetchCheckpoint(a.store, a.conn, {
    job: job.id, checkpoint, attemptOf: { experiment: e.name, job: a.ctx.job.index, attempt: a.ctx.attempt }, terms: jobTermsFor(a, job),
    // RAM, the root overlay and the template's under it, the output disk, the inputs: nothing a job of this sweep could not have made.
    maxBytes: stateCap(e.resources.memoryMiB) + 2 * a.base.virtualSize + e.resources.maxOutputBytes + job.inputBytes + 64 * 1024 ** 2,
  });
}

/**
 * `--checkpoint-every` on the pool: the job's host takes the checkpoint and it
 * comes here at once, so a job whose host is lost goes on from it elsewhere.
 * Returns what stops it.
 */
export function periodicRemoteCheckpoints(a: PlacedAttempt, job: RemoteJob): () => void {
  const every = a.ctx.experiment.resources.checkpointEveryMs;
  if (!every) return () => undefined;
  let busy = false;
  const timer = setInterval(() => {
    if (busy || a.host.jobs.get(job.id)?.stopAsked) return;
    busy = true;
    void (async () => {
      const rec = await a.conn.json(['checkpoint', job.id], checkpointReplySchema);
      await bringCheckpoint(a, job, rec.id);
    })().catch((err: unknown) => {
      if (!isVmwuError(err) || err.code !== 'NOT_RUNNING') a.info(`job ${a.ctx.job.index}: periodic checkpoint on ${a.host.record.name}: ${(err as Error).message}`);
    }).finally(() => {
      busy = false;
    });
  }, every);
  timer.unref();
  return () => clearInterval(timer);
}

/** A job that stopped at a checkpoint on its host (a drain): the checkpoint comes here, recorded as the job's, and the attempt ends interrupted. */
export async function stoppedAt(a: PlacedAttempt, job: RemoteJob, r: RemoteResult): Promise<AttemptResult> {
  const name = a.host.record.name;
  const ended = { runId: r.id, status: 'stopped' as const, exitCode: null, phases: (r.phases ?? null) as AttemptResult['phases'], totalMs: r.totalMs ?? null, usage: r.usage, start: r.start };
  if (!r.checkpoint) return { ...ended, error: { code: 'STOPPED', message: `host ${name} stopped the job without a checkpoint` } };
  try {
    await bringCheckpoint(a, job, r.checkpoint);
  } catch (err) {
    if (!a.conn.alive) throw new HostLostError(name, (err as Error).message);
    return { ...ended, error: { code: 'CHECKPOINT_TRANSFER', message: `checkpoint ${r.checkpoint} could not be fetched from ${name}: ${(err as Error).message}` } };
  }
  a.info(`job ${a.ctx.job.index}: stopped on ${name} at checkpoint ${r.checkpoint}, which moves with it`);
  return { ...ended, error: { code: 'MOVED', message: `stopped on ${name} at checkpoint ${r.checkpoint}${a.host.drained ? ' (host drained)' : ''}; the job goes on from it` } };
}
