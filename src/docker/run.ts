import { createWriteStream, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { escapeControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { resolveRequest, runRequestOf } from '../request/resolve.js';
import { commandScript, shellQuote, type GuestProcess } from '../run/command.js';
import { runJob } from '../run/run.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { resolveDockerImage } from './images.js';
import { claimContainerName, releaseContainerName } from './containers.js';
import { copyBack, snapshotMount, type MountSnapshot } from './copy-back.js';
import { planMounts, volumeDatasetName, type ImagedMounts } from './mount-plan.js';
import { volumeImage, volumeImageMin } from './volume-images.js';
import type { Digest } from '../store/blobs.js';
import { parseDockerRun, type DockerRun } from './run-options.js';

/**
 * `docker run` as a vmwu job: the image's base or unit boots, the bind mounts' sources
 * travel in as inputs and are mounted (src/docker/mount-plan.ts), the command runs as docker would run it,
 * its output streams as it comes, read-write mounts get the job's writes back, and
 * the exit code is the job's (125 when vmwu itself failed, as docker's daemon errors).
 */

export interface DockerIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Standard input is a regular file (a redirect), not a pipe or terminal. */
  stdinIsFile?: boolean;
  signal?: AbortSignal;
}

const OUTER = '.vmwu-docker.sh';
const INNER = '.vmwu-docker-cmd.sh';

/** `-e NAME=VALUE`, `-e NAME` (from the caller's environment, dropped when unset, as docker does) and `--env-file` lines. */
export function dockerEnv(d: DockerRun, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const add = (e: string, where: string) => {
    const i = e.indexOf('=');
    const name = i < 0 ? e : e.slice(0, i);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new VmwuError('DOCKER_OPTION', `docker run: ${where}: "${name}" is not a variable name`);
    if (i >= 0) out.push(e);
    else if (env[name] !== undefined) out.push(`${name}=${env[name]}`);
  };
  for (const f of d.envFiles) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new VmwuError('DOCKER_OPTION', `docker run: --env-file ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    text.split('\n').forEach((line, n) => {
      const l = line.replace(/\r$/, '');
      if (l.trim() && !l.trimStart().startsWith('#')) add(l, `--env-file ${f}:${n + 1}`);
    });
  }
  for (const e of d.env) add(e, `--env ${e}`);
  return out;
}

/** The job's scripts: the outer one mounts as root and unmounts after; the inner one is the command, as the user it runs as; the command's status is the job's. */
export function dockerScripts(d: DockerRun, argv: string[], process: GuestProcess | undefined, env: string[], mounts: ReturnType<typeof planMounts>): { outer: string; inner: string } {
  let inner: string;
  if (process) {
    inner = commandScript(argv, {}, { process: { ...process, env: [...process.env, ...env], workingDir: d.workdir ?? process.workingDir, user: d.user ?? process.user } });
  } else {
    const lines = d.workdir ? [`mkdir -p ${shellQuote(d.workdir)} && cd ${shellQuote(d.workdir)} || exit 125`] : [];
    for (const e of env) lines.push(`export ${e.slice(0, e.indexOf('='))}=${shellQuote(e.slice(e.indexOf('=') + 1))}`);
    inner = [...lines, ...asUser(d, argv)].join('\n') + '\n';
  }
  // --read-only: the root's own mount, not the filesystem, so the bind mounts keep their
  // modes; the work dir becomes a mount of its own first, so it stays writable for the
  // job's user to be handed it (guest/run-as.c) and for vmwu.
  const ro = d.readOnly
    ? { on: ['mount --bind /job/work /job/work && mount -o remount,bind,ro / || exit 125'], off: ['mount -o remount,bind,rw /', 'umount /job/work'] }
    : { on: [], off: [] };
  const outer = ['set -u', ...mounts.setup, ...ro.on, `sh /job/work/${INNER}`, 'status=$?', ...ro.off, ...mounts.teardown, 'exit $status', ''].join('\n');
  return { outer, inner };
}

/**
 * The command's last lines on a vmwu unit or base, whose jobs run as root: `--user
 * UID[:GID]` (cwltool passes the caller's own) switches with the base's run-as
 * helper (the tiny base has it), or util-linux's setpriv (Debian bases), after
 * handing the user the work dir, where the mounts' contents were staged as root.
 */
function asUser(d: DockerRun, argv: string[]): string[] {
  const words = argv.map(shellQuote).join(' ');
  if (!d.user || /^(0|root)(:(0|root))?$/.test(d.user)) return [`exec ${words}`];
  const id = /^(\d+)(?::(\d+))?$/.exec(d.user);
  if (!id) throw new VmwuError('DOCKER_OPTION', `docker run --user ${d.user}: ${d.image} is a vmwu unit or base, which knows users by number only`, 'give --user UID[:GID], or pull a container image that names its users');
  const [uid, gid = '0'] = [id[1]!, id[2]];
  return [
    `if [ -x /vmwu/run-as ]; then exec /vmwu/run-as ${uid}:${gid} /job/work ${words}; fi`,
    `command -v setpriv >/dev/null || { echo "vmwu-docker: --user ${uid}:${gid}: this unit has neither /vmwu/run-as nor setpriv (util-linux)" >&2; exit 125; }`,
    `chown -R ${uid}:${gid} /job/work || exit 125`,
    `exec setpriv --reuid=${uid} --regid=${gid} --clear-groups ${words}`,
  ];
}

export async function dockerRun(store: Store, args: string[], io: DockerIo): Promise<number> {
  const d = parseDockerRun(args);
  if (d.cidfile && existsSync(d.cidfile)) {
    throw new VmwuError('DOCKER_CIDFILE', `docker run: container ID file found, make sure the other container isn't running or delete ${d.cidfile}`);
  }
  for (const m of d.mounts) {
    if (!existsSync(m.source)) {
      // docker makes a missing --volume source a directory; a --mount source must exist.
      if (!m.makeMissing) throw new VmwuError('DOCKER_OPTION', `docker run: bind source path does not exist: ${m.source}`);
      mkdirSync(m.source, { recursive: true });
    }
  }
  const target = await resolveDockerImage(store, d.image, { pull: true });
  const cpus = dockerCpus(d);
  const r = await resolveRequest(store, {
    ...(target.unit ? { unit: target.unit } : { base: target.base }), command: d.command,
    ...(d.entrypoint !== undefined ? { entrypoint: d.entrypoint } : {}),
    ...(d.memory ? { memory: dockerMemory(d.memory) } : {}), ...(cpus ? { cpus } : {}),
    network: d.network !== 'none',
  }, 'run');
  const { imaged, datasets } = await imageReadOnlyMounts(store, d, volumeImageMin(io.env));
  const mounts = planMounts(d.mounts, imaged);
  const { outer, inner } = dockerScripts(d, r.argv, r.target.process, dockerEnv(d, io.env), mounts);
  if (d.name) claimContainerName(store, d.name, 'starting');
  const work = makeWorkDir(store.paths, 'docker-');
  let started = false;
  try {
    writeFileSync(join(work, OUTER), outer);
    writeFileSync(join(work, INNER), inner);
    let stdin: { host: string } | undefined;
    // docker without -i gives the job no input; a file redirected in is taken anyway, as
    // udocker does, for engines that run a user-space docker so (cwltool --user-space-docker-cmd).
    if ((d.interactive || io.stdinIsFile) && !io.stdin.isTTY) {
      // The job reads its standard input from a file: what the engine pipes in is spooled first.
      const file = join(work, 'stdin');
      await pipeline(io.stdin, createWriteStream(file));
      stdin = { host: file };
    }
    const before = new Map<string, MountSnapshot>();
    for (const c of mounts.copyBack) before.set(c.name, await snapshotMount(c.source));
    const req = runRequestOf(r);
    const result = await runJob(store, {
      ...req, argv: ['sh', OUTER], process: undefined, datasets: [...(req.datasets ?? []), ...datasets],
      inputs: [...mounts.inputs, { path: join(work, OUTER), name: OUTER }, { path: join(work, INNER), name: INNER }],
      keep: mounts.copyBack.flatMap((c) => [c.name, `${c.name}/**`]),
      // Trees from the host come back with their links to anywhere (Nextflow links task inputs by absolute path): left out, as copy-back would.
      dropUnsafeLinks: true,
      ...(stdin ? { stdin } : {}),
    }, {
      signal: io.signal,
      onStart: ({ id }) => {
        started = true;
        if (d.name) claimContainerName(store, d.name, id, { replace: true });
        if (d.cidfile) writeFileSync(d.cidfile, id, { flag: 'wx' });
      },
      onOutput: (stream, chunk) => { (stream === 'stdout' ? io.stdout : io.stderr).write(chunk); },
    });
    if (result.status === 'succeeded' || result.status === 'failed') {
      for (const c of mounts.copyBack) {
        const from = join(result.outDir, 'work', c.name);
        if (!existsSync(from)) continue;
        const back = await copyBack(from, c.source, before.get(c.name)!);
        for (const l of back.skippedLinks) io.stderr.write(`vmwu-docker: ${c.source}: link ${escapeControlChars(l)} points out of the mount; not written back\n`);
      }
    }
    if (d.remove) rmSync(result.outDir, { recursive: true, force: true });
    if (result.status === 'succeeded' || result.status === 'failed') return result.exitCode ?? 125;
    // docker's code for a container ended by SIGTERM (docker stop, or this process interrupted).
    if (io.signal?.aborted) return 143;
    if (result.error) io.stderr.write(`vmwu-docker: ${result.error.message}\n`);
    return 125;
  } finally {
    rmSync(work, { recursive: true, force: true });
    if (d.name && (d.remove || !started)) releaseContainerName(store, d.name);
  }
}

/** The read-only mounts whose sources come as images (src/docker/volume-images.ts), and the datasets that bring them. */
async function imageReadOnlyMounts(store: Store, d: DockerRun, min: number | undefined): Promise<{ imaged: ImagedMounts; datasets: { name: string; digest: Digest }[] }> {
  const imaged: ImagedMounts = new Map();
  const datasets: { name: string; digest: Digest }[] = [];
  for (const [i, m] of d.mounts.entries()) {
    if (!m.readOnly) continue;
    // A bind mount follows a link to its source, as docker's does.
    const source = realpathSync(m.source);
    const image = await volumeImage(store, source, min);
    if (!image) continue;
    imaged.set(i, statSync(source).isDirectory() ? {} : { file: basename(source) });
    datasets.push({ name: volumeDatasetName(i), digest: image.digest });
  }
  return { imaged, datasets };
}

/** vCPUs for `--cpus` (rounded up: a VM has whole ones), else for `--cpu-shares` at 1024 a CPU. */
function dockerCpus(d: DockerRun): string | undefined {
  if (d.cpus) {
    const n = Number(d.cpus);
    if (!(n > 0)) throw new VmwuError('DOCKER_OPTION', `docker run --cpus ${d.cpus}: expected a positive number`);
    return String(Math.ceil(n));
  }
  return d.cpuShares ? String(Math.max(1, Math.round(d.cpuShares / 1024))) : undefined;
}

/** docker's memory sizes (`512m`, `2g`, bytes) in vmwu's words. */
function dockerMemory(m: string): string {
  const x = /^(\d+)([bkmg]?)$/i.exec(m);
  if (!x) throw new VmwuError('DOCKER_OPTION', `docker run --memory ${m}: expected a number with an optional b, k, m or g`);
  const unit = x[2]!.toLowerCase();
  return unit === '' || unit === 'b' ? `${x[1]}` : `${x[1]}${unit.toUpperCase()}`;
}
