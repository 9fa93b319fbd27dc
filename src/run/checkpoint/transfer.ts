import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VmwuError } from '../../errors.js';
import { syncDir, syncFile } from '../../store/durable.js';
import { checkpointFiles, readCheckpoint, type CheckpointRecord } from './format.js';

/**
 * A checkpoint directory on the wire between hosts (a drained SSH host's jobs
 * move with theirs). GNU tar with --sparse, because a restored clone's input
 * disk is tens of GiB of holes around a few KiB of archive: only data crosses.
 */

function tarProcess(args: string[], what: string) {
  const child = spawn('tar', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new VmwuError('CHECKPOINT_TRANSFER', `${what}: tar exited with ${code}: ${stderr.trim().slice(0, 500)}`))));
  });
  return { child, done };
}

/** Streams the checkpoint in `dir` (only the files its record names) to `out`. */
export async function packCheckpoint(dir: string, out: Writable): Promise<void> {
  const rec = readCheckpoint(dir);
  const { child, done } = tarProcess(['--sparse', '-cf', '-', '-C', dir, '--', ...checkpointFiles(rec)], `packing checkpoint ${rec.id}`);
  child.stdin.end();
  await Promise.all([pipeline(child.stdout, out, { end: false }), done]);
}

/**
 * Writes `input` into tar's stdin, at most `maxBytes`. tar may exit as soon as
 * it has read the archive's end, before the stream behind it has ended: what
 * comes after is read and dropped, so the sender is never left blocked, and
 * tar's exit status (not a closed pipe) says whether the archive was whole.
 */
async function feed(input: Readable, stdin: Writable, maxBytes: number): Promise<void> {
  let open = true;
  const shut = () => {
    open = false;
  };
  stdin.on('error', shut).on('close', shut);
  let got = 0;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    got += chunk.length;
    if (got > maxBytes) throw new VmwuError('CHECKPOINT_TRANSFER', `a checkpoint of more than ${maxBytes} bytes arrived`, 'the sending host is not trusted with more');
    if (open && !stdin.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = () => {
          stdin.off('drain', go).off('close', go);
          resolve();
        };
        stdin.on('drain', go).on('close', go);
      });
    }
  }
  if (open) stdin.end();
}

/**
 * Receives a checkpoint into `dest` (which must not exist): unpacked beside it,
 * checked, renamed into place whole. What arrives is untrusted: at most
 * `maxBytes` of stream; afterwards only the plain files its record names, and a
 * record that passes the checkpoint schema (src/run/checkpoint/take.ts). GNU tar
 * itself refuses names with `..` and defers links that point outside.
 */
export async function unpackCheckpoint(input: Readable, dest: string, o: { maxBytes: number; id?: string }): Promise<CheckpointRecord> {
  const tmp = join(dirname(dest), `.incoming-${basename(dest)}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  try {
    // --read-full-records: a pipe hands tar short reads, and a short first block would not look like an archive to it.
    const { child, done } = tarProcess(['-xf', '-', '--read-full-records', '-C', tmp, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir'], 'receiving a checkpoint');
    try {
      await Promise.all([feed(input, child.stdin, o.maxBytes), done]);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    const rec = readCheckpoint(tmp);
    if (o.id && rec.id !== o.id) throw new VmwuError('BAD_CHECKPOINT', `checkpoint ${o.id} was asked for, ${rec.id} arrived`);
    const want = new Set(checkpointFiles(rec));
    for (const name of readdirSync(tmp)) {
      if (!want.has(name) || !lstatSync(join(tmp, name)).isFile()) throw new VmwuError('BAD_CHECKPOINT', `checkpoint ${rec.id}: unexpected entry ${JSON.stringify(name)}`);
      want.delete(name);
      await syncFile(join(tmp, name));
    }
    if (want.size) throw new VmwuError('BAD_CHECKPOINT', `checkpoint ${rec.id}: ${[...want].join(', ')} missing`);
    if (existsSync(dest)) throw new VmwuError('CHECKPOINT_TRANSFER', `${dest} exists already`);
    await rename(tmp, dest);
    await syncDir(dirname(dest));
    return rec;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
