import type { SshOptions } from '../../request/executor.js';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import tar from 'tar-stream';
import { z } from 'zod';
import { isVmwuError, VmwuError } from '../../errors.js';
import { collectOutputs } from '../../run/collect.js';
import { formatBytes } from '../../quantities.js';
import { addEntry } from '../../run/input-disk.js';
import { cappedFileWriter, LOG_CAP } from '../../run/logsink.js';
import { requireBase, type Base } from '../../store/bases.js';
import type { Store } from '../../store/store.js';
import { capacityRule } from '../../sweep/capacity.js';
import { resumableCheckpoint } from '../../sweep/attempt-checkpoints.js';
import type { AttemptContext, AttemptResult, Executor } from '../../sweep/driver.js';
import { prepareLaunch } from '../../sweep/job-launch.js';
import { attemptDir } from '../../sweep/experiment.js';
import { CHECKPOINT_ID, readCheckpoint } from '../../run/checkpoint/format.js';
import { poolOrigin } from '../../run/checkpoint/records.js';
import type { JobTerms } from '../../run/checkpoint/trust.js';
import { dataDiskBytes } from '../../run/prepare.js';
import type { Digest } from '../../store/blobs.js';
import { treeBytes } from '../../store/temp-files.js';
import { stateCap } from '../../vm/vm-state.js';
import type { Experiment } from '../../sweep/records/types.js';
import type { SweepEvent } from '../../sweep/outcome.js';
import { HostLostError, remoteFailure, SshConnection } from './connection.js';
import { drainedHosts, hostBlobs, listHosts, updateHostInfo, type HostRecord } from './hosts.js';
import { dropLogPrefix, fetchCheckpoint, logsUpToCheckpoint, sendCheckpoint } from './job-move.js';
import { ineligible, parseSelector, placeJob, rankHosts, simulatePlacement, type HostFacts, type HostSelector, type JobNeeds } from './placement.js';
import { REMOTE_PROTOCOL, remoteInfoSchema, remoteResultSchema, type RemoteInfo, type RemoteResult, type RemoteRunRequest } from './protocol.js';
import { askHost, ensureBlobs, type BlobToSend } from './transfer.js';
import { syncDirSync, syncFileSync, writeFileDurableSync } from '../../store/durable.js';

/** `--executor ssh` options, stored with the experiment so resume and the background worker use them too. */
export const DEFAULT_HOST_TIMEOUT_MS = 15_000;

/** How often a runner looks for drained hosts in the store. */
const DRAIN_POLL_MS = 1000;

interface HostState {
  record: HostRecord;
  conn: SshConnection | null;
  connecting: Promise<SshConnection> | null;
  info: RemoteInfo;
  slots: number;
  busy: number;
  /** Until when a lost or unreachable host stays out of placement; 0: up. */
  downUntil: number;
  downWhy: string | null;
  /** The unit's blobs and base on this host, once per connection. */
  unitReady: Promise<void> | null;
  /** `vmwu hosts drain`: no jobs are placed here, and the running ones are stopped at a checkpoint and move. */
  drained: boolean;
  /** Our jobs running there now (remote job ids), and whether each was asked to stop at a checkpoint. */
  jobs: Map<string, { stopAsked: boolean }>;
  stats: { sentBytes: number; blobsSent: number; blobBytes: number; jobs: number; lost: number };
}

export interface SshStats {
  host: string;
  sentBytes: number;
  blobsSent: number;
  blobBytes: number;
  jobs: number;
  lost: number;
}

export interface PlacementPreview {
  hosts: { name: string; eligible: boolean; why: string | null; up: boolean; slots: number; holdsUnit: boolean; toSendBytes: number; rank: number | null }[];
  /** Where the first jobs would go, in order, if none finished meanwhile. */
  first: { job: number; host: string | null; sends: boolean }[];
}

export interface SshExecutor extends Executor {
  capacity(store: Store, e: Pick<Experiment, 'target' | 'resources'>): Promise<{ slots: number; explain: string }>;
  close(): Promise<void>;
  /** After capacity(): the hosts as placement sees them, for `--dry-run`. */
  preview(store: Store, jobs: number): PlacementPreview;
  stats(): SshStats[];
  /** Bytes of the unit a host needs: base and layer blobs. */
  unitBytes(): number;
}

const okSchema = z.object({}).passthrough();

/** A job as its host knows it: the id of its job dir, and the bytes of its staged inputs. */
interface RemoteJob {
  id: string;
  inputBytes: number;
}
const checkpointReplySchema = z.object({ id: z.string().regex(CHECKPOINT_ID) }).passthrough();

/** The blobs a host must hold to run a target: the base's kernel, initrd and root, and the unit's layers. */
export function unitBlobs(store: Store, base: Base, layers: string[]): BlobToSend[] {
  const digests = [base.kernel, base.initrd, base.root, ...layers].filter((d): d is NonNullable<typeof d> => Boolean(d));
  return [...new Set(digests)].map((d) => {
    const path = store.blobs.path(d as Base['root']);
    return { digest: d, path, size: statSync(path).size };
  });
}

/**
 * Runs a sweep's attempts on the pool of SSH hosts (`vmwu hosts`). Each attempt
 * is placed on the best host with a free slot (see placement.ts); the unit's
 * blobs go to a host once, before its first job, and only those it lacks; then
 * the job's inputs travel with `vmwu remote run`, the guest's output streams back
 * live, and the work dir comes back as an archive checked like any guest output.
 * A host that stops answering is taken out of placement for a while and its
 * attempts return `interrupted`, so the scheduler requeues them on another host
 * without counting a failure.
 */
export function sshExecutor(opts: SshOptions & { onEvent?: (ev: SweepEvent) => void; retryDownMs?: number } = {}): SshExecutor {
  const timeoutMs = opts.hostTimeoutMs ?? DEFAULT_HOST_TIMEOUT_MS;
  const retryDownMs = opts.retryDownMs ?? Math.max(30_000, 4 * timeoutMs);
  const sel: HostSelector = parseSelector(opts.hosts);
  const info = (message: string) => opts.onEvent?.({ type: 'info', message });
  const hosts = new Map<string, HostState>();
  const skipped = new Map<string, string>();
  let needs: JobNeeds | undefined;
  let blobs: BlobToSend[] = [];
  let base: Base | undefined;
  let closed = false;
  let allDrainedSaid = false;
  let drainWatch: NodeJS.Timeout | undefined;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
    waiters.clear();
  };

  const facts = (store: Store): HostFacts[] => {
    const now = Date.now();
    return [...hosts.values()].map((h) => {
      const held = hostBlobs(store.db, h.record.name);
      return {
        name: h.record.name, labels: h.record.labels, arch: h.info.arch, slots: h.slots, busy: h.busy, memMiB: h.info.memMiB, cpuFeatures: h.info.cpuFeatures,
        up: h.downUntil <= now && !h.drained, heldBytes: blobs.filter((b) => held.has(b.digest)).reduce((a, b) => a + b.size, 0),
      };
    });
  };

  const dropConnection = (h: HostState) => {
    if (h.conn) h.stats.sentBytes += h.conn.sentBytes;
    h.conn?.close();
    h.conn = null;
    h.unitReady = null;
  };

  const markDown = (h: HostState, why: string) => {
    dropConnection(h);
    h.downUntil = Date.now() + retryDownMs;
    h.downWhy = why;
    notify();
  };

  const connect = (store: Store, h: HostState): Promise<SshConnection> => {
    if (h.conn?.alive) return Promise.resolve(h.conn);
    h.connecting ??= (async () => {
      const conn = await SshConnection.open(h.record, { hostKey: h.record.hostKey, timeoutMs });
      try {
        const i = await conn.json(['info'], remoteInfoSchema);
        if (i.protocol !== REMOTE_PROTOCOL) throw new VmwuError('REMOTE_PROTOCOL', `host ${h.record.name} runs vmwu ${i.version} (protocol ${i.protocol}); this vmwu speaks ${REMOTE_PROTOCOL}`, 'install the same vmwu release on the host');
        if (!i.qemu) throw new VmwuError('NO_QEMU', `host ${h.record.name} has no QEMU`, 'install qemu-system-x86 there');
        updateHostInfo(store.db, h.record.name, i);
        h.info = i;
        // Job dirs a lost connection left there.
        await conn.json(['gc'], okSchema);
      } catch (e) {
        conn.close();
        throw e;
      }
      dropConnection(h);
      h.conn = conn;
      if (h.downUntil) info(`host ${h.record.name} is back`);
      h.downUntil = 0;
      h.downWhy = null;
      return conn;
    })().finally(() => {
      h.connecting = null;
    });
    return h.connecting;
  };

  const ensureUnit = (store: Store, h: HostState, conn: SshConnection): Promise<void> => {
    h.unitReady ??= (async () => {
      const report = await ensureBlobs(conn, store.db, blobs, (b, offset) =>
        info(`host ${h.record.name}: sending blob ${b.digest.slice(7, 19)} (${formatBytes(b.size - offset)}${offset ? `, resuming at ${formatBytes(offset)}` : ''})`));
      for (const s of report.sent) {
        h.stats.blobsSent++;
        h.stats.blobBytes += s.bytes;
      }
      await conn.json(['register-base'], okSchema, { stdin: Buffer.from(JSON.stringify(base)) });
    })().catch((e: unknown) => {
      h.unitReady = null;
      throw e;
    });
    return h.unitReady;
  };

  const waitForChange = (signal: AbortSignal, ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      waiters.delete(done);
      signal.removeEventListener('abort', done);
      resolve();
    }
    waiters.add(done);
    signal.addEventListener('abort', done);
  });

  const interrupted = (why: string): AttemptResult => ({ runId: null, status: 'interrupted', exitCode: null, phases: null, totalMs: null, error: { code: 'HOST_LOST', message: why } });

  /** A host for the attempt, with a slot taken on it: the best one with a free slot; lost hosts are tried again once their pause is over. */
  const place = async (store: Store, signal: AbortSignal): Promise<HostState | null> => {
    for (;;) {
      if (signal.aborted || closed) return null;
      const f = facts(store);
      const pick = placeJob(f, needs!, sel);
      if (pick) {
        // Taken now, before any await, so attempts started together spread over the hosts.
        const h = hosts.get(pick.name)!;
        h.busy++;
        return h;
      }
      const ranked = rankHosts(f, needs!, sel).filter((r) => !hosts.get(r.host.name)!.drained);
      if (!ranked.length) {
        // Every host is drained: wait for one to be put back (`vmwu hosts undrain`), or for the sweep to stop.
        if (!allDrainedSaid) info('every host of the sweep is drained: jobs wait for `vmwu hosts undrain NAME`');
        allDrainedSaid = true;
        await waitForChange(signal, 1000);
        continue;
      }
      allDrainedSaid = false;
      if (!ranked.some((r) => r.host.up)) {
        // Every host is down: try those whose pause is over, else give up on this attempt (it counts as a failure, with backoff).
        let back = false;
        for (const r of ranked) {
          const h = hosts.get(r.host.name)!;
          try {
            await connect(store, h);
            back = true;
          } catch (e) {
            markDown(h, (e as Error).message);
          }
        }
        if (!back) {
          throw new VmwuError('NO_HOSTS', `no host can run the job: ${[...hosts.values()].map((h) => `${h.record.name}: ${h.downWhy ?? 'busy'}`).join('; ')}`,
            'check the hosts with `vmwu hosts check`; the job is retried after a backoff');
        }
        continue;
      }
      await waitForChange(signal, 1000);
    }
  };

  const runOn = async (store: Store, h: HostState, ctx: AttemptContext): Promise<AttemptResult> => {
    const e = ctx.experiment;
    let conn: SshConnection;
    try {
      conn = await connect(store, h);
      await ensureUnit(store, h, conn);
    } catch (err) {
      // Unreachable, a changed host key, no QEMU there, a transfer cut off: the host's problem, not the job's.
      throw err instanceof HostLostError ? err : new HostLostError(h.record.name, (err as Error).message);
    }
    const launch = prepareLaunch(ctx);
    const id = `${e.name}.${ctx.job.index}.${ctx.attempt}.${randomBytes(3).toString('hex')}`;
    mkdirSync(ctx.outDir, { recursive: true });
    // A job stopped at a checkpoint elsewhere (a drained host) goes on from it here; its logs begin with what it had written.
    const resume = await sendResumable(store, conn, h, ctx, id);
    const request: RemoteRunRequest = {
      base: base!.digest, layers: e.target.layers, argv: launch.argv, params: launch.params, inputs: launch.inputs.map((i) => i.name),
      memoryMiB: e.resources.memoryMiB, cpus: e.resources.cpus, timeoutMs: e.resources.timeoutMs, maxOutputBytes: e.resources.maxOutputBytes,
      ...(e.resources.cold ? { cold: true } : {}), ...(e.resources.cpuNeeds ? { cpuNeeds: e.resources.cpuNeeds } : {}), ...(resume ? { checkpoint: resume.id } : {}),
      ...(e.resources.datasets ? { datasets: e.resources.datasets } : {}), ...(e.resources.scratchBytes ? { scratchBytes: e.resources.scratchBytes } : {}),
      ...(e.resources.rootBytes ? { rootBytes: e.resources.rootBytes } : {}),
      ...(e.resources.stdin ? { stdin: 'host' in e.resources.stdin ? { sent: true as const } : e.resources.stdin } : {}),
    };
    const pack = tar.pack();
    void (async () => {
      pack.entry({ name: 'request.json', mode: 0o644 }, JSON.stringify(request));
      if (e.resources.stdin && 'host' in e.resources.stdin) await addEntry(pack, 'stdin', e.resources.stdin.host);
      for (const i of launch.inputs) await addEntry(pack, `inputs/${i.name}`, i.path);
      pack.finalize();
    })().catch((err: unknown) => pack.destroy(err as Error));
    const onAbort = () => void conn.exec(['kill', id]).catch(() => undefined);
    ctx.signal.addEventListener('abort', onAbort);
    let run;
    h.jobs.set(id, { stopAsked: false });
    // What bounds a checkpoint of it coming back: its inputs are part of its disks.
    const remoteJob: RemoteJob = { id, inputBytes: launch.inputs.reduce((n, i) => n + treeBytes(i.path), 0) };
    const stopPeriodic = periodicCheckpoints(store, conn, h, ctx, remoteJob);
    try {
      const append = { append: Boolean(resume) };
      run = await conn.exec(['run', id], {
        stdin: Readable.from(pack), stdout: cappedFileWriter(join(ctx.outDir, 'stdout'), LOG_CAP, append), stderr: cappedFileWriter(join(ctx.outDir, 'stderr'), LOG_CAP, append),
      });
    } finally {
      stopPeriodic();
      h.jobs.delete(id);
      ctx.signal.removeEventListener('abort', onAbort);
    }
    try {
      if (run.code !== 0) {
        const f = remoteFailure(h.record.name, 'run', run);
        return { runId: null, status: 'error', exitCode: null, phases: null, totalMs: null, error: { code: f.code, message: f.message } };
      }
      // The host's archive is checked like a guest's: capped, confined, staged, only renamed into place whole.
      const archive = join(ctx.outDir, '.fetch.tar');
      const cap = e.resources.maxOutputBytes + 64 * 1024 ** 2;
      let got = 0;
      const limit = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          got += chunk.length;
          cb(got > cap ? new VmwuError('OUTPUT_TOO_LARGE', `host ${h.record.name} sent more than ${cap} bytes of results`) : null, chunk);
        },
      });
      limit.pipe(createWriteStream(archive));
      const fetched = await conn.exec(['fetch', id], { stdout: limit });
      if (fetched.code !== 0) throw remoteFailure(h.record.name, 'fetch', fetched);
      const collected = await collectOutputs({ source: archive, outDir: ctx.outDir, maxBytes: e.resources.maxOutputBytes });
      await rm(archive, { force: true });
      const parsed = remoteResultSchema.safeParse(JSON.parse(collected.meta['run.json'] ?? 'null'));
      if (!parsed.success) throw new VmwuError('REMOTE_PROTOCOL', `host ${h.record.name}: the result of job ${id} is not a run record`);
      const r = parsed.data;
      if (resume && r.start?.checkpoint !== resume.id) dropLogPrefix(ctx.outDir, resume.logPrefix);
      if (r.status === 'stopped') return await stoppedAt(store, conn, h, ctx, remoteJob, r);
      // As writeRunFiles does: everything else on the disk before run.json, which says the attempt is complete.
      for (const f of ['stdout', 'stderr']) if (existsSync(join(ctx.outDir, f))) syncFileSync(join(ctx.outDir, f));
      if (r.exitCode !== null) writeFileDurableSync(join(ctx.outDir, 'exit_code'), `${r.exitCode}\n`, { dirSync: false });
      syncDirSync(ctx.outDir);
      writeFileDurableSync(join(ctx.outDir, 'run.json'), JSON.stringify({ ...r, host: h.record.name, remoteJob: id }, null, 2) + '\n');
      h.stats.jobs++;
      return { runId: r.id, status: r.status, exitCode: r.exitCode, phases: (r.phases ?? null) as AttemptResult['phases'], totalMs: r.totalMs ?? null, error: r.error, usage: r.usage, start: r.start };
    } finally {
      await conn.exec(['clean', id]).catch(() => undefined);
    }
  };

  /** Sends the job's resumable checkpoint (src/sweep/executor.ts) to the host, if it has one; a checkpoint that cannot be sent is passed over. */
  const sendResumable = async (store: Store, conn: SshConnection, h: HostState, ctx: AttemptContext, id: string) => {
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
      if (!conn.alive) throw new HostLostError(h.record.name, (err as Error).message);
      info(`job ${ctx.job.index}: checkpoint ${ck.id} could not be sent to ${h.record.name} (${(err as Error).message}); the job starts over`);
      await conn.exec(['clean', id]).catch(() => undefined);
      return undefined;
    }
    const logPrefix = logsUpToCheckpoint(ctx.outDir, attemptDir(ctx.experiment, ctx.job.index, ck.attempt), rec.logged);
    return { id: ck.id, logPrefix };
  };

  /** What the job asked of its host (its request): a checkpoint of it coming back must agree (src/run/checkpoint-trust.ts). */
  const jobTermsFor = (store: Store, e: Experiment, job: RemoteJob): JobTerms => {
    const b = base!;
    if (!b.kernel || !b.initrd) throw new VmwuError('CHECKPOINT', `base ${b.name} boots by firmware: its jobs cannot be checkpointed`);
    return {
      memoryMiB: e.resources.memoryMiB, cpus: e.resources.cpus, network: false, timeoutMs: e.resources.timeoutMs, maxOutputBytes: e.resources.maxOutputBytes,
      image: { kernel: b.kernel, initrd: b.initrd, root: (e.target.layers[0] ?? b.root) as Digest, virtualSize: b.virtualSize, cmdline: b.cmdline },
      ...(e.resources.rootBytes ? { rootBytes: e.resources.rootBytes } : {}),
      datasets: (e.resources.datasets ?? []).map((d) => ({ digest: d.digest as Digest, diskBytes: dataDiskBytes(statSync(store.blobs.path(d.digest as Digest)).size) })),
      app: false, ...(e.resources.scratchBytes ? { scratchBytes: e.resources.scratchBytes } : {}), inputBytes: job.inputBytes,
    };
  };

  /** Brings a checkpoint the job's run took on its host into the store, recorded as the attempt's (src/executors/ssh/job-move.ts). */
  const bringCheckpoint = async (store: Store, conn: SshConnection, ctx: AttemptContext, job: RemoteJob, checkpoint: string) => {
    const e = ctx.experiment;
    await fetchCheckpoint(store, conn, {
      job: job.id, checkpoint, attemptOf: { experiment: e.name, job: ctx.job.index, attempt: ctx.attempt }, terms: jobTermsFor(store, e, job),
      // RAM, the root overlay and the template's under it, the output disk, the inputs: nothing a job of this sweep could not have made.
      maxBytes: stateCap(e.resources.memoryMiB) + 2 * base!.virtualSize + e.resources.maxOutputBytes + job.inputBytes + 64 * 1024 ** 2,
    });
  };

  /**
   * `--checkpoint-every` on the pool: the job's host takes the checkpoint and it
   * comes here at once, so a job whose host is lost goes on from it elsewhere.
   */
  const periodicCheckpoints = (store: Store, conn: SshConnection, h: HostState, ctx: AttemptContext, job: RemoteJob) => {
    const every = ctx.experiment.resources.checkpointEveryMs;
    if (!every) return () => undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || h.jobs.get(job.id)?.stopAsked) return;
      busy = true;
      void (async () => {
        const rec = await conn.json(['checkpoint', job.id], checkpointReplySchema);
        await bringCheckpoint(store, conn, ctx, job, rec.id);
      })().catch((err: unknown) => {
        if (!isVmwuError(err) || err.code !== 'NOT_RUNNING') info(`job ${ctx.job.index}: periodic checkpoint on ${h.record.name}: ${(err as Error).message}`);
      }).finally(() => {
        busy = false;
      });
    }, every);
    timer.unref();
    return () => clearInterval(timer);
  };

  /** A job that stopped at a checkpoint on its host (a drain): the checkpoint comes here, recorded as the job's, and the attempt ends interrupted. */
  const stoppedAt = async (store: Store, conn: SshConnection, h: HostState, ctx: AttemptContext, job: RemoteJob, r: RemoteResult): Promise<AttemptResult> => {
    const ended = { runId: r.id, status: 'stopped' as const, exitCode: null, phases: (r.phases ?? null) as AttemptResult['phases'], totalMs: r.totalMs ?? null, usage: r.usage, start: r.start };
    if (!r.checkpoint) return { ...ended, error: { code: 'STOPPED', message: `host ${h.record.name} stopped the job without a checkpoint` } };
    try {
      await bringCheckpoint(store, conn, ctx, job, r.checkpoint);
    } catch (err) {
      if (!conn.alive) throw new HostLostError(h.record.name, (err as Error).message);
      return { ...ended, error: { code: 'CHECKPOINT_TRANSFER', message: `checkpoint ${r.checkpoint} could not be fetched from ${h.record.name}: ${(err as Error).message}` } };
    }
    info(`job ${ctx.job.index}: stopped on ${h.record.name} at checkpoint ${r.checkpoint}, which moves with it`);
    return { ...ended, error: { code: 'MOVED', message: `stopped on ${h.record.name} at checkpoint ${r.checkpoint}${h.drained ? ' (host drained)' : ''}; the job goes on from it` } };
  };

  /** Asks every running job of a drained host to stop at a checkpoint; one that is still starting is asked again next time. */
  const stopJobsOn = async (store: Store, h: HostState) => {
    for (const [id, job] of h.jobs) {
      if (job.stopAsked) continue;
      job.stopAsked = true;
      try {
        const conn = await connect(store, h);
        const r = await conn.exec(['checkpoint', id, '--stop']);
        if (r.code !== 0) throw remoteFailure(h.record.name, 'checkpoint', r);
      } catch (err) {
        job.stopAsked = false;
        // Not started yet, or ending: asked again on the next look, or it finishes there.
        if (!isVmwuError(err) || err.code !== 'NOT_RUNNING') info(`host ${h.record.name} is drained, but job ${id} could not be checkpointed: ${(err as Error).message}`);
      }
    }
  };

  /** Watches the store for `vmwu hosts drain` and `undrain`, from whichever process: placement follows, running jobs move. */
  const watchDrains = (store: Store) => {
    let busy = false;
    drainWatch = setInterval(() => {
      if (busy || closed) return;
      busy = true;
      void (async () => {
        const drained = drainedHosts(store.db);
        for (const h of hosts.values()) {
          const now = drained.has(h.record.name);
          if (now !== h.drained) {
            h.drained = now;
            info(now ? `host ${h.record.name} is drained: its running jobs stop at a checkpoint and go on elsewhere` : `host ${h.record.name} is back in the pool`);
            notify();
          }
          if (now && h.jobs.size) await stopJobsOn(store, h);
        }
      })().finally(() => {
        busy = false;
      });
    }, DRAIN_POLL_MS);
    drainWatch.unref();
  };

  return {
    name: 'ssh',

    async capacity(store: Store, e: Pick<Experiment, 'target' | 'resources'>) {
      base = requireBase(store.db, e.target.base);
      // Datasets travel like layers: by digest, once per host.
      blobs = unitBlobs(store, base, [...e.target.layers, ...(e.resources.datasets ?? []).map((d) => d.digest)]);
      needs = { arch: base.arch, memoryMiB: e.resources.memoryMiB, needBytes: blobs.reduce((a, b) => a + b.size, 0), ...(e.resources.cpuNeeds ? { cpu: e.resources.cpuNeeds } : {}) };
      const all = listHosts(store.db);
      if (!all.length) throw new VmwuError('NO_HOSTS', 'the SSH pool has no hosts', 'add one with `vmwu hosts add user@host --key FILE`');
      for (const r of all) {
        const why = ineligible({ name: r.name, labels: r.labels, arch: r.info.arch, memMiB: r.info.memMiB, cpuFeatures: r.info.cpuFeatures }, needs, sel);
        if (why) skipped.set(r.name, why);
        else hosts.set(r.name, { record: r, conn: null, connecting: null, info: r.info, slots: 0, busy: 0, downUntil: 0, downWhy: null, unitReady: null, drained: r.drainedAt !== null, jobs: new Map(), stats: { sentBytes: 0, blobsSent: 0, blobBytes: 0, jobs: 0, lost: 0 } });
      }
      const skippedText = [...skipped].map(([n, why]) => `${n}: ${why}`).join('; ');
      if (!hosts.size) throw new VmwuError('NO_HOSTS', `no host in the pool can run this sweep: ${skippedText}`, 'add hosts, or change --hosts');
      await Promise.all([...hosts.values()].map(async (h) => {
        try {
          // What it holds of the unit, so placement ranks on facts.
          await askHost(await connect(store, h), store.db, blobs);
        } catch (err) {
          markDown(h, (err as Error).message);
          if (isVmwuError(err) && err.code === 'HOST_KEY_CHANGED') info(`warning: ${err.message}`);
        }
        const i = h.info;
        h.slots = h.record.slots ?? capacityRule({ cores: i.cores, availableMemMiB: i.availableMemMiB, jobMemoryMiB: e.resources.memoryMiB, jobCpus: e.resources.cpus }).slots;
      }));
      watchDrains(store);
      const up = [...hosts.values()].filter((h) => !h.downUntil);
      if (!up.length) throw new VmwuError('NO_HOSTS', `no host is reachable: ${[...hosts.values()].map((h) => `${h.record.name}: ${h.downWhy}`).join('; ')}`, 'check them with `vmwu hosts check`');
      const ranked = rankHosts(facts(store), needs, sel);
      const slots = up.reduce((a, h) => a + h.slots, 0);
      const parts = ranked.map((r) => {
        const h = hosts.get(r.host.name)!;
        if (h.downUntil) return `${r.host.name} down (${h.downWhy})`;
        return `${r.host.name} ${h.slots} slot${h.slots === 1 ? '' : 's'}${r.holdsUnit ? ', holds the unit' : `, ${formatBytes(needs!.needBytes - r.host.heldBytes)} to send`}`;
      });
      return { slots, explain: `SSH hosts: ${parts.join('; ')}${skipped.size ? `; skipped ${skippedText}` : ''}` };
    },

    preview(store, jobs) {
      const f = facts(store);
      const ranked = rankHosts(f, needs!, sel).filter((r) => r.host.up);
      const rows: PlacementPreview['hosts'] = f.map((x) => {
        const rank = ranked.findIndex((r) => r.host.name === x.name);
        return {
          name: x.name, eligible: true, why: hosts.get(x.name)!.downWhy, up: x.up, slots: x.slots, holdsUnit: x.heldBytes >= needs!.needBytes,
          toSendBytes: needs!.needBytes - x.heldBytes, rank: rank < 0 ? null : rank + 1,
        };
      });
      for (const [name, why] of skipped) rows.push({ name, eligible: false, why, up: false, slots: 0, holdsUnit: false, toSendBytes: 0, rank: null });
      rows.sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9) || a.name.localeCompare(b.name));
      return { hosts: rows, first: simulatePlacement(f, needs!, sel, jobs) };
    },

    async runAttempt(store, ctx) {
      const h = await place(store, ctx.signal);
      if (!h) return interrupted('stopped before it was placed');
      ctx.onPlaced?.(h.record.name);
      try {
        return await runOn(store, h, ctx);
      } catch (err) {
        if (err instanceof HostLostError) {
          h.stats.lost++;
          if (!h.downUntil) info(`${err.message}; its jobs go to the other hosts`);
          markDown(h, err.message);
          return interrupted(err.message);
        }
        throw err;
      } finally {
        h.busy--;
        notify();
      }
    },

    async close() {
      closed = true;
      clearInterval(drainWatch);
      notify();
      for (const h of hosts.values()) dropConnection(h);
    },

    stats() {
      return [...hosts.values()].map((h) => ({ host: h.record.name, ...h.stats, sentBytes: h.stats.sentBytes + (h.conn?.sentBytes ?? 0) }));
    },

    unitBytes() {
      return needs?.needBytes ?? 0;
    },
  };
}
