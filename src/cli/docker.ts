import { createWriteStream, fstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isVmwuError, VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { table } from './output.js';
import { findContainer, removeContainer, stopContainer } from '../docker/containers.js';
import { findDockerImage, inspectDockerImage, listDockerImages, resolveDockerImage } from '../docker/images.js';
import { dockerLoad } from '../docker/load.js';
import { dockerRun } from '../docker/run.js';
import { makeWorkDir } from '../store/temp-files.js';

/**
 * `vmwu docker …` and the `vmwu-docker` executable: docker's command line, the
 * subset workflow engines call (docs/docker.md), with docker's output formats and
 * exit codes (1 for a failed command, 125 when `run` could not start the job).
 */

export const DOCKER_VERSION = '24.0.0-vmwu';

const SUBCOMMANDS = 'version, info, images, image inspect, inspect, pull, load, run, kill, stop, rm';

async function images(args: string[]): Promise<number> {
  for (const a of args) if (!['--no-trunc', '--all', '-a', '-q', '--quiet'].includes(a)) return refuse(`images ${a}`);
  const full = args.includes('--no-trunc');
  const quiet = args.includes('-q') || args.includes('--quiet');
  return withStore(async (store) => {
    const rows = listDockerImages(store);
    const id = (d: string) => (full ? d : d.slice(7, 19));
    if (quiet) {
      process.stdout.write([...new Set(rows.map((r) => id(r.id)))].map((x) => `${x}\n`).join(''));
      return 0;
    }
    process.stdout.write(table([['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.repository, r.tag, id(r.id), r.created.slice(0, 19).replace('T', ' '), formatBytes(r.size)])]));
    return 0;
  });
}

async function inspect(names: string[]): Promise<number> {
  if (!names.length) return refuse('inspect needs an image name');
  return withStore(async (store) => {
    const rows = listDockerImages(store);
    const docs: Record<string, unknown>[] = [];
    let code = 0;
    for (const name of names) {
      const row = findDockerImage(rows, name);
      if (row) docs.push(inspectDockerImage(row));
      else {
        process.stderr.write(`Error: No such image: ${name}\n`);
        code = 1;
      }
    }
    process.stdout.write(`${JSON.stringify(docs, null, 4)}\n`);
    return code;
  });
}

async function pull(args: string[]): Promise<number> {
  const names = args.filter((a) => a !== '-q' && a !== '--quiet');
  if (names.length !== 1 || names.length !== args.filter((a) => !a.startsWith('-')).length) return refuse(`pull ${args.join(' ')}`);
  return withStore(async (store) => {
    const target = await resolveDockerImage(store, names[0]!, { pull: true });
    process.stdout.write(`${names[0]}: pulled as vmwu ${target.unit ? `unit ${target.unit}` : `base ${target.base}`}\n`);
    return 0;
  });
}

/** `load [-i FILE] [-q]`: a docker-archive from a file or standard input (spooled into the store's tmp first: skopeo reads a file). */
async function load(args: string[]): Promise<number> {
  let input: string | undefined;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === '-i' || a === '--input') && i + 1 < args.length) input = args[++i];
    else if (a.startsWith('--input=')) input = a.slice('--input='.length);
    else if (a === '-q' || a === '--quiet') quiet = true;
    else return refuse(`load ${a}`);
  }
  if (!input && process.stdin.isTTY) {
    process.stderr.write('requested load from stdin, but stdin is empty\n');
    return 1;
  }
  return withStore(async (store) => {
    const work = makeWorkDir(store.paths, 'docker-');
    try {
      let file = input;
      if (!file) {
        file = join(work, 'image.tar');
        await pipeline(process.stdin, createWriteStream(file));
      }
      const r = await dockerLoad(store, file);
      if (!quiet) process.stderr.write(`vmwu-docker: loaded as vmwu base ${r.base}\n`);
      process.stdout.write(r.names.length ? r.names.map((n) => `Loaded image: ${n}\n`).join('') : `Loaded image ID: ${r.id}\n`);
      return 0;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

/**
 * `kill`, `stop` and `rm` by name, id or the id a `--cidfile` holds. kill and stop
 * both stop the VM cleanly (vmwu stops a VM one way only: src/docker/containers.ts);
 * their signal and timeout options are taken and have nothing to change.
 */
async function containers(cmd: 'kill' | 'stop' | 'rm', args: string[]): Promise<number> {
  const refs: string[] = [];
  let force = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (cmd === 'rm' && (a === '-f' || a === '--force')) force = true;
    else if (cmd === 'kill' && (a === '-s' || a === '--signal') && i + 1 < args.length) i++;
    else if (cmd === 'kill' && /^(-s|--signal=)\w+$/.test(a)) continue;
    else if (cmd === 'stop' && (a === '-t' || a === '--time') && i + 1 < args.length) i++;
    else if (cmd === 'stop' && /^--time=\d+$/.test(a)) continue;
    else if (a.startsWith('-')) return refuse(`${cmd} ${a}`);
    else refs.push(a);
  }
  if (!refs.length) return refuse(`${cmd} needs a container name or id`);
  return withStore(async (store) => {
    let code = 0;
    for (const ref of refs) {
      try {
        if (cmd === 'rm') await removeContainer(store, ref, { force });
        else {
          const { run } = findContainer(store, ref);
          if (!stopContainer(run) && cmd === 'kill') throw new VmwuError('DOCKER_NOT_RUNNING', `Error response from daemon: Container ${run.id} is not running`);
        }
        process.stdout.write(`${ref}\n`);
      } catch (e) {
        if (!isVmwuError(e)) throw e;
        process.stderr.write(`${e.message}\n`);
        code = 1;
      }
    }
    return code;
  });
}

function refuse(what: string): number {
  process.stderr.write(`vmwu-docker: "${what}" is not supported; vmwu takes ${SUBCOMMANDS} (docs/docker.md)\n`);
  return 1;
}

export async function dockerMain(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  // Engines point TMPDIR at a directory of one step (Toil's is private to its worker):
  // vmwu's instances and node cache stay where every step finds them (src/run/node-dirs.ts),
  // so steps share templates and blobs, and QEMU's user can reach them. `-e TMPDIR` still sees the caller's.
  const callerEnv = { ...process.env };
  delete process.env.TMPDIR;
  try {
    switch (cmd) {
      case 'version':
      case '--version':
        process.stdout.write(`Docker version ${DOCKER_VERSION} (vmwu: every container is a virtual machine)\n`);
        return 0;
      case 'info':
        process.stdout.write(`Server Version: ${DOCKER_VERSION}\nRuntime: vmwu (QEMU)\nOperating System: vmwu\n`);
        return 0;
      case 'images': return await images(rest);
      case 'image':
        if (rest[0] === 'inspect') return await inspect(rest.slice(1).filter((a) => !a.startsWith('-')));
        if (rest[0] === 'ls') return await images(rest.slice(1));
        if (rest[0] === 'load') return await load(rest.slice(1));
        return refuse(`image ${rest[0] ?? ''}`);
      case 'inspect': return await inspect(rest.filter((a) => !a.startsWith('-')));
      case 'pull': return await pull(rest);
      case 'load': return await load(rest);
      case 'kill':
      case 'stop':
      case 'rm':
        return await containers(cmd, rest);
      case 'run': {
        const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
        try {
          return await withStore((store) => dockerRun(store, rest, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: callerEnv, stdinIsFile: fstatSync(0).isFile(), signal: interrupt.signal }));
        } finally {
          interrupt.dispose();
        }
      }
      default:
        return refuse(cmd ?? '(nothing)');
    }
  } catch (e) {
    if (!isVmwuError(e)) throw e;
    process.stderr.write(`vmwu-docker: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
    return cmd === 'run' ? 125 : 1;
  }
}
