import { VmwuError } from '../errors.js';

/**
 * `docker run`'s command line, the subset workflow engines use (cwltool, Toil,
 * Nextflow; docs/docker.md): parsed as docker parses it (`--opt=value`, `--opt value`,
 * short flags, grouped `-it`, options end at the image), every other option refused
 * by name. Pure.
 */

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
  /** `--volume` makes a missing source a directory, as docker does; `--mount` refuses it. */
  makeMissing: boolean;
}

export interface DockerRun {
  image: string;
  command: string[];
  interactive: boolean;
  remove: boolean;
  mounts: BindMount[];
  workdir?: string;
  /** `NAME=VALUE`, or `NAME` alone: taken from the caller's environment, as docker does. */
  env: string[];
  envFiles: string[];
  user?: string;
  readOnly: boolean;
  network: 'none' | 'host' | 'default';
  memory?: string;
  cpus?: string;
  /** docker's relative CPU weight; engines write 1024 per CPU (Nextflow), so vmwu gives that many vCPUs unless --cpus says. */
  cpuShares?: number;
  entrypoint?: string;
  cidfile?: string;
  name?: string;
  logDriver?: string;
}

type Kind = 'flag' | 'value';
/** Long names, with their short forms. */
const OPTIONS: Record<string, { kind: Kind; short?: string }> = {
  interactive: { kind: 'flag', short: 'i' },
  rm: { kind: 'flag' },
  'read-only': { kind: 'flag' },
  volume: { kind: 'value', short: 'v' },
  mount: { kind: 'value' },
  workdir: { kind: 'value', short: 'w' },
  env: { kind: 'value', short: 'e' },
  'env-file': { kind: 'value' },
  user: { kind: 'value', short: 'u' },
  net: { kind: 'value' },
  network: { kind: 'value' },
  memory: { kind: 'value', short: 'm' },
  cpus: { kind: 'value' },
  'cpu-shares': { kind: 'value', short: 'c' },
  entrypoint: { kind: 'value' },
  cidfile: { kind: 'value' },
  name: { kind: 'value' },
  'log-driver': { kind: 'value' },
};
const BY_SHORT = new Map(Object.entries(OPTIONS).filter(([, o]) => o.short).map(([long, o]) => [o.short!, long]));

const bad = (message: string, hint?: string) => new VmwuError('DOCKER_OPTION', `docker run: ${message}`, hint);
const unsupported = (opt: string) => bad(`${opt} is not supported by vmwu`,
  'vmwu runs each container as a VM and takes the options workflow engines use: -i, --rm, -v/--volume, --mount type=bind, -w, -e, --env-file, -u, --read-only, --net none|host, -m, --cpus, -c/--cpu-shares, --entrypoint, --cidfile, --name, --log-driver');

function parseBool(opt: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw bad(`${opt}=${v}: expected true or false`);
}

/** `SRC:DST[:ro|rw]` (a named volume, without a `/`, is refused: vmwu binds host paths only). */
export function parseVolume(v: string): BindMount {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw bad(`--volume ${v}: expected SRC:DST[:ro|rw]`);
  const [source, target, mode = 'rw'] = parts as [string, string, string?];
  if (!source.startsWith('/')) throw bad(`--volume ${v}: "${source}" is a named volume; vmwu binds host directories and files only`, 'give an absolute host path');
  if (!target.startsWith('/')) throw bad(`--volume ${v}: the target "${target}" is not an absolute path`);
  const modes = mode.split(',');
  for (const m of modes) if (!['ro', 'rw', 'z', 'Z'].includes(m)) throw bad(`--volume ${v}: unknown mode "${m}"`, 'use ro or rw');
  return { source, target, readOnly: modes.includes('ro'), makeMissing: true };
}

/** `type=bind,source=…,target=…[,readonly]` (src/dst and destination are docker's aliases). */
export function parseMount(v: string): BindMount {
  let type: string | undefined;
  let source: string | undefined;
  let target: string | undefined;
  let readOnly = false;
  for (const field of v.split(',')) {
    const eq = field.indexOf('=');
    const k = eq < 0 ? field : field.slice(0, eq);
    const val = eq < 0 ? undefined : field.slice(eq + 1);
    switch (k) {
      case 'type': type = val; break;
      case 'source': case 'src': source = val; break;
      case 'target': case 'destination': case 'dst': target = val; break;
      case 'readonly': case 'ro': readOnly = val === undefined ? true : parseBool(`--mount ${k}`, val); break;
      default: throw bad(`--mount ${v}: field "${k}" is not supported`, 'vmwu takes type=bind,source=…,target=…[,readonly]');
    }
  }
  if (type !== 'bind') throw bad(`--mount ${v}: type ${type ?? '(none)'} is not supported`, 'vmwu takes bind mounts of host paths: type=bind');
  if (!source?.startsWith('/') || !target?.startsWith('/')) throw bad(`--mount ${v}: source and target must be absolute paths`);
  return { source, target, readOnly, makeMissing: false };
}

/** Parses `docker run`'s arguments (what follows `run`). */
export function parseDockerRun(args: string[]): DockerRun {
  const r: DockerRun = { image: '', command: [], interactive: false, remove: false, mounts: [], env: [], envFiles: [], readOnly: false, network: 'default' };
  const set = (long: string, value: string | undefined, shown: string): void => {
    switch (long) {
      case 'interactive': r.interactive = value === undefined ? true : parseBool(shown, value); break;
      case 'rm': r.remove = value === undefined ? true : parseBool(shown, value); break;
      case 'read-only': r.readOnly = value === undefined ? true : parseBool(shown, value); break;
      case 'volume': r.mounts.push(parseVolume(value!)); break;
      case 'mount': r.mounts.push(parseMount(value!)); break;
      case 'workdir': r.workdir = value; break;
      case 'env': r.env.push(value!); break;
      case 'env-file': r.envFiles.push(value!); break;
      case 'user': r.user = value; break;
      case 'net': case 'network':
        if (value !== 'none' && value !== 'host' && value !== 'default' && value !== 'bridge') throw bad(`${shown} ${value}: vmwu gives a job no network (none) or one that reaches outside but not the host's services (host, bridge)`);
        r.network = value === 'bridge' ? 'host' : value;
        break;
      case 'memory': r.memory = value; break;
      case 'cpus': r.cpus = value; break;
      case 'cpu-shares':
        if (!/^\d+$/.test(value!)) throw bad(`${shown} ${value}: expected a whole number`);
        r.cpuShares = Number(value);
        break;
      case 'entrypoint': r.entrypoint = value; break;
      case 'cidfile': r.cidfile = value; break;
      case 'name': r.name = value; break;
      case 'log-driver': r.logDriver = value; break;
    }
  };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { i++; break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const long = a.slice(2, eq < 0 ? undefined : eq);
      const o = OPTIONS[long];
      if (!o) throw unsupported(`--${long}`);
      let value = eq < 0 ? undefined : a.slice(eq + 1);
      if (o.kind === 'value' && value === undefined) {
        if (i + 1 >= args.length) throw bad(`--${long} needs a value`);
        value = args[++i];
      }
      set(long, value, `--${long}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // Grouped short flags (-it); a value option takes the rest of the group or the next argument.
      for (let j = 1; j < a.length; j++) {
        const long = BY_SHORT.get(a[j]!);
        if (!long) throw unsupported(`-${a[j]}`);
        if (OPTIONS[long]!.kind === 'flag') {
          set(long, undefined, `-${a[j]}`);
          continue;
        }
        let value = a.slice(j + 1).replace(/^=/, '');
        if (!value) {
          if (i + 1 >= args.length) throw bad(`-${a[j]} needs a value`);
          value = args[++i]!;
        }
        set(long, value, `-${a[j]}`);
        break;
      }
      continue;
    }
    break;
  }
  if (i >= args.length) throw bad('no image given', 'docker run [OPTIONS] IMAGE [COMMAND] [ARG...]');
  r.image = args[i]!;
  r.command = args.slice(i + 1);
  return r;
}
