import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import tar from 'tar-stream';
import { VmwuError } from '../../errors.js';
import { collectOutputs } from '../../run/collect.js';
import { addEntry } from '../../run/input-disk.js';
import { outputDiskBytes } from '../../run/prepare.js';
import { cappedFileWriter, LOG_CAP } from '../../run/logsink.js';
import { syncDirSync, syncFileSync, writeFileDurableSync } from '../../store/durable.js';
import { treeBytes } from '../../store/temp-files.js';
import type { AttemptResult } from '../../sweep/driver.js';
import { prepareLaunch, type JobLaunch } from '../../sweep/job-launch.js';
import type { Experiment } from '../../sweep/records/types.js';
import { remoteFailure, type SshConnection } from './connection.js';
import { dropLogPrefix } from './job-move.js';
import { remoteResultSchema, type RemoteRunRequest } from './protocol.js';
import { periodicRemoteCheckpoints, sendResumable, stoppedAt, type PlacedAttempt, type RemoteJob } from './remote-checkpoints.js';

/** One attempt on the pool host it was placed on: the job's request and inputs sent as a tar to `vmwu remote run`, its logs streamed back, its work dir fetched and checked like any guest output. */

/** What `vmwu remote run` is asked to do: the unit by digest, the job's launch and resources, and the checkpoint it goes on from, if any. */
function runRequest(e: Experiment, base: string, launch: JobLaunch, checkpoint: string | undefined): RemoteRunRequest {
  return {
    base, layers: e.target.layers, argv: launch.argv, params: launch.params, ...(launch.script !== undefined ? { script: launch.script } : {}), inputs: launch.inputs.map((i) => i.name),
    process: e.target.process,
    memoryMiB: e.resources.memoryMiB, cpus: e.resources.cpus, timeoutMs: e.resources.timeoutMs, maxOutputBytes: e.resources.maxOutputBytes,
    ...(e.resources.cold ? { cold: true } : {}), ...(e.resources.checkpointable ? { checkpointable: true } : {}), ...(e.resources.cpuNeeds ? { cpuNeeds: e.resources.cpuNeeds } : {}), ...(checkpoint ? { checkpoint } : {}),
    ...(e.resources.datasets ? { datasets: e.resources.datasets } : {}), ...(e.resources.scratchBytes ? { scratchBytes: e.resources.scratchBytes } : {}),
    ...(e.resources.rootBytes ? { rootBytes: e.resources.rootBytes } : {}),
    ...(e.resources.stdin ? { stdin: 'host' in e.resources.stdin ? { sent: true as const } : e.resources.stdin } : {}),
  };
}

/** One VM of a multi-VM job (multi-vm-attempt.ts): what it runs, where its outputs go, and its place on the job's segment. */
export interface RemoteVm {
  launch: JobLaunch;
  outDir: string;
  segment: NonNullable<RemoteRunRequest['segment']>;
}

/** Runs the attempt (or one VM of it) on its host and brings its outputs back into its outDir; the host's job dir is removed whatever happened. */
export async function runRemoteAttempt(a: PlacedAttempt & { vm?: RemoteVm }): Promise<AttemptResult> {
  const { ctx, conn, host: h } = a;
  const e = ctx.experiment;
  const launch = a.vm?.launch ?? prepareLaunch(ctx);
  const outDir = a.vm?.outDir ?? ctx.outDir;
  const id = `${e.name}.${ctx.job.index}.${ctx.attempt}${a.vm ? `.vm${a.vm.segment.index}` : ''}.${randomBytes(3).toString('hex')}`;
  mkdirSync(outDir, { recursive: true });
  // A job stopped at a checkpoint elsewhere (a drained host) goes on from it here; its logs begin with what it had written. A multi-VM job has none.
  const resume = a.vm ? undefined : await sendResumable(a, id);
  const request = { ...runRequest(e, a.base.digest, launch, resume?.id), ...(a.vm ? { segment: a.vm.segment } : {}) };
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
  const stopPeriodic = a.vm ? () => undefined : periodicRemoteCheckpoints(a, remoteJob);
  try {
    const append = { append: Boolean(resume) };
    run = await conn.exec(['run', id], {
      stdin: Readable.from(pack), stdout: cappedFileWriter(join(outDir, 'stdout'), LOG_CAP, append), stderr: cappedFileWriter(join(outDir, 'stderr'), LOG_CAP, append),
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
    await fetchWorkDir(conn, id, outDir, e.resources.maxOutputBytes);
    const collected = await collectOutputs({ source: join(outDir, '.fetch.tar'), outDir, maxBytes: e.resources.maxOutputBytes });
    await rm(join(outDir, '.fetch.tar'), { force: true });
    const parsed = remoteResultSchema.safeParse(JSON.parse(collected.meta['run.json'] ?? 'null'));
    if (!parsed.success) throw new VmwuError('REMOTE_PROTOCOL', `host ${h.record.name}: the result of job ${id} is not a run record`);
    const r = parsed.data;
    if (resume && r.start?.checkpoint !== resume.id) dropLogPrefix(outDir, resume.logPrefix);
    if (r.status === 'stopped') return await stoppedAt(a, remoteJob, r);
    // As writeRunFiles does: everything else on the disk before run.json, which says the attempt is complete.
    for (const f of ['stdout', 'stderr']) if (existsSync(join(outDir, f))) syncFileSync(join(outDir, f));
    if (r.exitCode !== null) writeFileDurableSync(join(outDir, 'exit_code'), `${r.exitCode}\n`, { dirSync: false });
    syncDirSync(outDir);
    writeFileDurableSync(join(outDir, 'run.json'), JSON.stringify({ ...r, host: h.record.name, remoteJob: id }, null, 2) + '\n');
    h.stats.jobs++;
    return { runId: r.id, status: r.status, exitCode: r.exitCode, phases: (r.phases ?? null) as AttemptResult['phases'], totalMs: r.totalMs ?? null, error: r.error, usage: r.usage, start: r.start };
  } finally {
    await conn.exec(['clean', id]).catch(() => undefined);
  }
}

/** The job's work dir as the host archived it, into `<outDir>/.fetch.tar`: the host's archive is checked like a guest's (capped here, then confined, staged, only renamed into place whole). */
async function fetchWorkDir(conn: SshConnection, id: string, outDir: string, maxOutputBytes: number): Promise<void> {
  const host = conn.target.name;
  const cap = outputDiskBytes(maxOutputBytes);
  let got = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      got += chunk.length;
      cb(got > cap ? new VmwuError('OUTPUT_TOO_LARGE', `host ${host} sent more than ${cap} bytes of results`) : null, chunk);
    },
  });
  limit.pipe(createWriteStream(join(outDir, '.fetch.tar')));
  const fetched = await conn.exec(['fetch', id], { stdout: limit });
  if (fetched.code !== 0) throw remoteFailure(host, 'fetch', fetched);
}
