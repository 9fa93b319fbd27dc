import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, stat, statfs, truncate } from 'node:fs/promises';
import { arch, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { VmwuError } from '../../errors.js';
import { packageRoot } from '../../paths.js';
import { addEntry } from '../../run/input-disk.js';
import { identityAlive, identityState, parseIdentity, selfIdentity } from '../../store/process-identity.js';
import { runJob } from '../../run/run.js';
import { findBase, registerBase, type Base } from '../../store/bases.js';
import { hexOf, type Digest } from '../../store/blobs.js';
import { putSetting, settingsCache } from '../../store/db.js';
import { offeredCpuFeatures } from '../../vm/cpu-probe.js';
import type { Store } from '../../store/store.js';
import { hostResources } from '../../sweep/host-resources.js';
import { qemuVersion } from '../../vm/host.js';
import { JOB_ID, REMOTE_PROTOCOL, remoteRunSchema, type HaveReply, type RemoteInfo } from './protocol.js';
import { syncDir, syncFile, writeFileDurableSync } from '../../store/durable.js';
import type { CheckpointRecord } from '../../run/checkpoint/format.js';
import { deleteCheckpointRow, listCheckpoints, type CheckpointRow } from '../../run/checkpoint/records.js';
import { packCheckpoint, unpackCheckpoint } from '../../run/checkpoint/transfer.js';
import { getRun, type RunRecord } from '../../run/records.js';
import { requestRunControl } from '../../run/run-control.js';
import { inSegmentDir } from '../../run/segment-dir.js';
import { connectUnix, startSegmentLink } from '../../vm/segment-link.js';

/**
 * The host side of the SSH executor: what `vmwu remote …` does on a pool host,
 * against that host's own store. The submitter drives it over SSH; nothing here
 * knows about experiments.
 */

export function vmwuVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

export async function remoteInfo(store: Store): Promise<RemoteInfo> {
  const qemu = await qemuVersion().catch(() => null);
  mkdirSync(store.paths.root, { recursive: true });
  const fs = await statfs(store.paths.root);
  return {
    protocol: REMOTE_PROTOCOL, version: vmwuVersion(), qemu, arch: arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch(),
    cores: cpus().length, memMiB: Math.round(totalmem() / 1024 ** 2), availableMemMiB: Math.round(hostResources().availableMemMiB),
    store: store.paths.root, freeBytes: fs.bavail * fs.bsize,
    // KVM's `-cpu host` where the host has KVM, else what TCG's `max` emulates.
    cpuFeatures: await offeredCpuFeatures(existsSync('/dev/kvm') ? 'kvm' : 'tcg', settingsCache(store.db)).catch(() => undefined),
  };
}

const partialPath = (store: Store, d: Digest) => join(store.blobs.dir, `.partial-${hexOf(d)}`);

export async function remoteHave(store: Store, digests: Digest[]): Promise<HaveReply> {
  const have: Digest[] = [];
  const partial: Record<string, number> = {};
  for (const d of digests) {
    if (store.blobs.has(d)) have.push(d);
    else {
      const size = await stat(partialPath(store, d)).then((s) => s.size, () => 0);
      if (size) partial[d] = size;
    }
  }
  return { have, partial };
}

/**
 * Receives one blob from stdin, appended at `offset` to what an earlier,
 * interrupted transfer left. Only a complete blob is hashed; only one that hashes
 * to its digest is renamed into the store. A short stream keeps the partial file
 * for the next try; a wrong one is deleted.
 */
export async function remoteReceive(store: Store, d: Digest, size: number, offset: number, input: Readable): Promise<{ digest: Digest; size: number; received: number }> {
  mkdirSync(store.blobs.dir, { recursive: true });
  if (store.blobs.has(d)) {
    input.resume();
    return { digest: d, size, received: 0 };
  }
  const part = partialPath(store, d);
  const have = await stat(part).then((s) => s.size, () => 0);
  if (offset > have) throw new VmwuError('TRANSFER_OFFSET', `blob ${d}: the sender resumes at byte ${offset} but only ${have} arrived earlier`, 'the sender asks again and starts over');
  if (have > offset) await truncate(part, offset);
  let received = 0;
  await pipeline(input, async function* (source) {
    for await (const chunk of source) {
      received += (chunk as Buffer).length;
      if (offset + received > size) throw new VmwuError('BLOB_CORRUPT', `blob ${d}: more than the ${size} bytes announced arrived`);
      yield chunk;
    }
  }, createWriteStream(part, { flags: 'a', mode: 0o600 }));
  const now = offset + received;
  if (now < size) throw new VmwuError('TRANSFER_INCOMPLETE', `blob ${d}: ${now} of ${size} bytes arrived`, 'the transfer resumes from there next time');
  const hash = createHash('sha256');
  await pipeline(createReadStream(part), hash);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== d) {
    await rm(part, { force: true });
    throw new VmwuError('BLOB_CORRUPT', `blob ${d} arrived corrupt: its content hashes to ${actual}`, 'the sender sends it again from the start');
  }
  await syncFile(part);
  await chmod(part, 0o400);
  await rename(part, store.blobs.path(d));
  await syncDir(store.blobs.dir);
  // Hashed just now: the first run need not hash it again.
  putSetting(store.db, `verified:${d}`, new Date().toISOString());
  return { digest: d, size, received };
}

/** Registers a base whose blobs have arrived, unless this store already has it. */
export function remoteRegisterBase(store: Store, base: Base): Base {
  const known = findBase(store.db, base.digest);
  if (known) return known;
  for (const d of [base.kernel, base.initrd, base.root]) {
    if (d && !store.blobs.has(d)) throw new VmwuError('BLOB_MISSING', `base ${base.name}: blob ${d} has not arrived`);
  }
  // Registered under its digest, so it never replaces a same-named base of the host's own.
  return registerBase(store.db, { ...base, name: base.digest });
}

function jobDir(store: Store, id: string): string {
  if (!JOB_ID.test(id)) throw new VmwuError('BAD_VALUE', `job id ${JSON.stringify(id)}: expected letters, digits, ".", "_" and "-"`);
  return join(store.paths.root, 'remote-jobs', id);
}

/** Unpacks request.json and inputs/ from the submitter's tar; only files and directories, nothing outside the job dir. */
async function unpackJob(input: Readable, dir: string): Promise<unknown> {
  const ex = tar.extract();
  let request: unknown;
  const done = pipeline(input, ex);
  // Refusing an entry ends the loop early and tears the pipeline down: that error is ours, not news.
  done.catch(() => undefined);
  for await (const entry of ex) {
    const name = entry.header.name.replace(/\/+$/, '');
    const parts = name.split('/');
    if (name.startsWith('/') || parts.some((p) => p === '..' || p === '' || p === '.')) throw new VmwuError('BAD_REQUEST', `job archive entry ${JSON.stringify(name)} is not a plain relative path`);
    if (name === 'stdin' && entry.header.type === 'file') {
      await pipeline(entry, createWriteStream(join(dir, 'stdin'), { flags: 'wx', mode: 0o600 }));
      continue;
    }
    if (name === 'request.json' && entry.header.type === 'file') {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      continue;
    }
    if (parts[0] !== 'inputs') throw new VmwuError('BAD_REQUEST', `job archive entry ${JSON.stringify(name)} is outside inputs/`);
    const dest = join(dir, name);
    if (entry.header.type === 'directory') {
      await mkdir(dest, { recursive: true, mode: 0o700 });
      entry.resume();
    } else if (entry.header.type === 'file') {
      await mkdir(dirname(dest), { recursive: true });
      await pipeline(entry, createWriteStream(dest, { flags: 'wx', mode: ((entry.header.mode ?? 0o600) & 0o700) | 0o600 }));
    } else {
      throw new VmwuError('BAD_REQUEST', `job archive entry ${JSON.stringify(name)} is a ${entry.header.type}; inputs are files and directories`);
    }
  }
  await done;
  return request;
}

/** Where a job's checkpoint from another host waits for `remote run` (it arrives first: `remote receive-checkpoint`). */
const incomingCheckpoint = (dir: string) => join(dir, 'checkpoint');

/**
 * Runs one job sent by a submitter: the job's tar (request.json + inputs/) on
 * `input`, the guest's stdout and stderr streamed to `out`/`err` as they come.
 * The job dir keeps the result until the submitter fetches and cleans it. A
 * job stopped at a checkpoint (`remote checkpoint --stop`, a drain) leaves its
 * run record there too, naming the checkpoint the submitter fetches.
 */
export async function remoteRun(store: Store, id: string, input: Readable, out: Writable, err: Writable, signal: AbortSignal): Promise<string> {
  const dir = jobDir(store, id);
  if (existsSync(join(dir, 'owner')) || existsSync(join(dir, 'inputs'))) throw new VmwuError('BAD_REQUEST', `job ${id} already exists on this host`);
  mkdirSync(join(dir, 'inputs'), { recursive: true });
  writeFileSync(join(dir, 'owner'), selfIdentity());
  const parsed = remoteRunSchema.safeParse(await unpackJob(input, dir));
  if (!parsed.success) throw new VmwuError('BAD_REQUEST', `request.json: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const r = parsed.data;
  if (r.checkpoint && !existsSync(incomingCheckpoint(dir))) throw new VmwuError('BAD_REQUEST', `job ${id} is to go on from checkpoint ${r.checkpoint}, which has not arrived`);
  const outDir = join(dir, 'out');
  const seg = r.segment;
  // A VM of a multi-VM job: its QEMU's segment goes to the submitter's hub through the socket its SSH connection forwards.
  const link = seg ? await inSegmentDir(store.paths.root, (d, user) => startSegmentLink(d, () => connectUnix(seg.link), user)) : undefined;
  const result = await runJob(store, {
    base: r.base, layers: r.layers as Digest[], argv: r.argv, params: r.params, script: r.script, process: r.process, inputs: r.inputs.map((n) => ({ path: join(dir, 'inputs', n), name: n })),
    outDir, memoryMiB: r.memoryMiB, cpus: r.cpus, timeoutMs: r.timeoutMs, maxOutputBytes: r.maxOutputBytes, network: false, cold: r.cold, checkpointable: r.checkpointable, cpuNeeds: r.cpuNeeds,
    datasets: r.datasets as { name: string; digest: Digest }[] | undefined, scratchBytes: r.scratchBytes, rootBytes: r.rootBytes,
    stdin: r.stdin && ('sent' in r.stdin ? { host: join(dir, 'stdin') } : { work: r.stdin.work }),
    ...(r.checkpoint ? { resumeFrom: incomingCheckpoint(dir) } : {}),
    ...(seg && link ? { segment: { index: seg.index, size: seg.size, token: seg.token, socket: link.socket } } : {}),
  }, {
    signal, onOutput: (s, c) => (s === 'stdout' ? out : err).write(c),
    // `remote checkpoint` finds the run by it.
    onStart: ({ id: runId }) => writeFileSync(join(dir, 'run-id'), runId),
  }).finally(() => link?.close());
  // runJob leaves a stopped job's out dir unwritten (it is not done): the submitter still needs to hear how it ended.
  if (result.status === 'stopped') {
    mkdirSync(outDir, { recursive: true });
    writeFileDurableSync(join(outDir, 'run.json'), JSON.stringify(result, null, 2) + '\n');
  }
  return result.id;
}

function runOf(store: Store, id: string): RunRecord {
  const runId = readFileSync(join(jobDir(store, id), 'run-id'), { encoding: 'utf8', flag: 'r' }).trim();
  const run = getRun(store.db, runId);
  if (!run) throw new VmwuError('NO_RUN', `job ${id}: its run ${runId} is not in this host's store`);
  return run;
}

/** `remote checkpoint ID [--stop]`: asks the job's `remote run` for a checkpoint, as `vmwu checkpoint` does on one host. */
export async function remoteCheckpoint(store: Store, id: string, stop: boolean): Promise<CheckpointRecord> {
  let run: RunRecord;
  try {
    run = runOf(store, id);
  } catch {
    throw new VmwuError('NOT_RUNNING', `job ${id} is not running on this host yet`, 'ask again once it has started');
  }
  if (run.status !== 'running' || !run.control) throw new VmwuError('NOT_RUNNING', `job ${id} is ${run.status}${run.status === 'running' ? ', still starting' : ''}`);
  return requestRunControl(run.control, { op: 'checkpoint', stop });
}

/** `remote fetch-checkpoint ID CK`: a checkpoint the job's run took here, as a sparse tar (src/run/checkpoint/transfer.ts). */
export async function remoteSendCheckpoint(store: Store, id: string, ck: string, output: Writable): Promise<void> {
  const mine = listCheckpoints(store.db, runOf(store, id).id).find((c) => c.id === ck);
  if (!mine) throw new VmwuError('NO_CHECKPOINT', `job ${id} has no checkpoint ${ck} on this host`);
  await packCheckpoint(mine.dir, output);
  // The submitter holds the older ones already; only the newest may still be on its way.
  for (const older of listCheckpoints(store.db, mine.runId).filter((c) => c.createdAt < mine.createdAt)) await dropCheckpoint(store, older);
}

async function dropCheckpoint(store: Store, ck: CheckpointRow): Promise<void> {
  await rm(ck.dir, { recursive: true, force: true });
  deleteCheckpointRow(store.db, ck.id);
}

/** `remote receive-checkpoint ID`: a checkpoint the job's `remote run` is to go on from, sent ahead of it. */
export async function remoteReceiveCheckpoint(store: Store, id: string, input: Readable): Promise<{ checkpoint: string }> {
  const dir = jobDir(store, id);
  if (existsSync(dir)) throw new VmwuError('BAD_REQUEST', `job ${id} already exists on this host`);
  mkdirSync(dir, { recursive: true });
  // No more than the store's disk holds: a cut-off stream fails here, not the disk.
  const fs = await statfs(store.paths.root);
  const rec = await unpackCheckpoint(input, incomingCheckpoint(dir), { maxBytes: fs.bavail * fs.bsize });
  return { checkpoint: rec.id };
}

/** The job's result as a tar: meta/run.json and work/…, the layout collectOutputs reads. */
export async function remoteFetch(store: Store, id: string, output: Writable): Promise<void> {
  const dir = jobDir(store, id);
  const runJson = join(dir, 'out', 'run.json');
  if (!existsSync(runJson)) throw new VmwuError('NO_RESULT', `job ${id} has no result on this host`);
  const pack = tar.pack();
  const writing = pipeline(pack, output);
  pack.entry({ name: 'meta/run.json', mode: 0o644 }, readFileSync(runJson));
  const work = join(dir, 'out', 'work');
  if (existsSync(work)) {
    for (const child of readdirSync(work).sort()) await addEntry(pack, `work/${child}`, join(work, child));
  }
  pack.finalize();
  await writing;
}

/** Asks the job's `vmwu remote run` to stop its VM (as Ctrl-C would). */
export function remoteKill(store: Store, id: string): boolean {
  const ownerFile = join(jobDir(store, id), 'owner');
  if (!existsSync(ownerFile)) return false;
  const owner = readFileSync(ownerFile, 'utf8').trim();
  if (!identityAlive(owner)) return false;
  process.kill(parseIdentity(owner).pid, 'SIGTERM');
  return true;
}

/** Removes the job dir, and the checkpoints its run took here (fetched by the submitter, or of no use once it is gone). */
export async function remoteClean(store: Store, id: string): Promise<void> {
  const run = (() => {
    try {
      return runOf(store, id);
    } catch {
      return undefined;
    }
  })();
  for (const ck of run ? listCheckpoints(store.db, run.id) : []) await dropCheckpoint(store, ck);
  await rm(jobDir(store, id), { recursive: true, force: true });
}

const INCOMING_GRACE_MS = 60 * 60_000;

/** Job dirs whose runner is gone (its submitter lost the host mid-job): removed. Returns their ids. */
export async function remoteGc(store: Store): Promise<string[]> {
  const root = join(store.paths.root, 'remote-jobs');
  if (!existsSync(root)) return [];
  const gone: string[] = [];
  for (const id of readdirSync(root)) {
    const owner = await readFile(join(root, id, 'owner'), 'utf8').then((t) => t.trim(), () => '');
    if (owner && identityState(owner) !== 'dead') continue;
    // A checkpoint sent ahead of its job waits for it (an hour is plenty), with no owner yet.
    if (!owner && Date.now() - statSync(join(root, id)).mtimeMs < INCOMING_GRACE_MS) continue;
    await remoteClean(store, id);
    gone.push(id);
  }
  return gone;
}
