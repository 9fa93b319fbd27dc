import { copyFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { VmwuError } from '../../errors.js';
import { packCheckpoint, unpackCheckpoint } from '../../run/checkpoint/transfer.js';
import type { CheckpointRecord } from '../../run/checkpoint/format.js';
import { checkpointBlobs, insertCheckpoint, poolOrigin } from '../../run/checkpoint/records.js';
import { checkpointMismatch, verifyCheckpointFiles, type JobTerms } from '../../run/checkpoint/trust.js';
import type { Store } from '../../store/store.js';
import { remoteFailure, type SshConnection } from './connection.js';

/**
 * A job moving between SSH hosts at a checkpoint (`vmwu hosts drain`): the
 * checkpoint comes back from the host that stopped the job into the submitter's
 * store, recorded as the job's; the job's next attempt sends it to its new host
 * ahead of `remote run`, and its logs begin with what the job had written.
 */

/**
 * Fetches the checkpoint a job stopped at on `conn`'s host into the store and
 * records it as the attempt's, dated by this store's clock and marked as the
 * host's (src/run/checkpoint/records.ts poolOrigin). The host is untrusted: the
 * stream is capped, the files checked (src/run/checkpoint/transfer.ts), and the
 * checkpoint must agree with the job's own record, its files with its resources
 * (src/run/checkpoint/trust.ts). A refused one leaves nothing behind.
 */
export async function fetchCheckpoint(store: Store, conn: SshConnection, o: {
  job: string; checkpoint: string; maxBytes: number; terms: JobTerms; attemptOf: { experiment: string; job: number; attempt: number };
}): Promise<CheckpointRecord> {
  const dest = join(store.paths.checkpoints, o.checkpoint);
  const stream = new PassThrough();
  const receiving = unpackCheckpoint(stream, dest, { maxBytes: o.maxBytes, id: o.checkpoint });
  receiving.catch(() => undefined);
  const fetched = await conn.exec(['fetch-checkpoint', o.job, o.checkpoint], { stdout: stream });
  if (fetched.code !== 0) {
    stream.destroy();
    await receiving.catch(() => undefined);
    throw remoteFailure(conn.target.name, 'fetch-checkpoint', fetched);
  }
  const rec = await receiving;
  try {
    const why = checkpointMismatch(rec, o.terms);
    if (why) throw new VmwuError('BAD_CHECKPOINT', `host ${conn.target.name}: checkpoint ${rec.id} is not of this job: ${why}`);
    await verifyCheckpointFiles(dest, rec, o.terms);
  } catch (e) {
    await rm(dest, { recursive: true, force: true });
    throw e;
  }
  insertCheckpoint(store.db, { ...rec, blobs: checkpointBlobs(rec) }, dest, o.attemptOf, poolOrigin(conn.target.name));
  return rec;
}

/** Sends a checkpoint to a host ahead of the job that goes on from it there. */
export async function sendCheckpoint(conn: SshConnection, job: string, dir: string): Promise<void> {
  const stream = new PassThrough();
  const packing = packCheckpoint(dir, stream).then(() => stream.end(), (e: unknown) => stream.destroy(e as Error));
  const r = await conn.exec(['receive-checkpoint', job], { stdin: stream });
  await packing;
  if (r.code !== 0) throw remoteFailure(conn.target.name, 'receive-checkpoint', r);
}

/**
 * Begins a new attempt's logs with what the job had written when its checkpoint
 * was taken (the attempt that took it has them): the restored guest goes on
 * from there. Returns the bytes put in front of each.
 */
export function logsUpToCheckpoint(outDir: string, fromDir: string, logged: CheckpointRecord['logged']): { stdout: number; stderr: number } {
  const put = { stdout: 0, stderr: 0 };
  for (const s of ['stdout', 'stderr'] as const) {
    const from = join(fromDir, s);
    const to = join(outDir, s);
    if (existsSync(from)) copyFileSync(from, to);
    else writeFileSync(to, '');
    if (statSync(to).size > logged[s]) truncateSync(to, logged[s]);
    put[s] = statSync(to).size;
  }
  return put;
}

/** Undoes logsUpToCheckpoint when the host could not go on from the checkpoint and the job started over. */
export function dropLogPrefix(outDir: string, put: { stdout: number; stderr: number }): void {
  for (const s of ['stdout', 'stderr'] as const) {
    const path = join(outDir, s);
    if (!put[s] || !existsSync(path)) continue;
    writeFileSync(path, readFileSync(path).subarray(put[s]));
  }
}
