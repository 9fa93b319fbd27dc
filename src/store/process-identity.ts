import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who owns a run, an attempt, an experiment or a slot: a process, named by its pid
 * and start time (field 22 of /proc/PID/stat, so a recycled pid is never mistaken
 * for the process that once had it), on a host, named by its host name and its
 * kernel's boot id. Written `pid:start@host/boot`; stores from before hosts were
 * recorded hold `pid:start`, which was always this host.
 *
 * Only the host that made an identity can tell whether its process lives: another
 * host (another node of the cluster, another UTS or PID namespace on this kernel)
 * sees other processes under those pids, and must not judge them.
 */

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parens: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

let ownStart: string | undefined;
/** This process's start time (read once: it never changes), '0' where /proc cannot say. */
export function selfStartTime(): string {
  ownStart ??= processStartTime(process.pid) ?? '0';
  return ownStart;
}

export function processCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

let boot: string | undefined;
/** This kernel's boot id: two machines, or one machine before and after a reboot, never share it. */
export function bootId(): string {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      boot = 'unknown';
    }
  }
  return boot;
}

/** Where identities are judged from: this process's host. */
export interface Here {
  host: string;
  boot: string;
}

export function here(): Here {
  return { host: hostname(), boot: bootId() };
}

export interface Identity {
  pid: number;
  start: string;
  /** Null in identities written before hosts were recorded. */
  host: string | null;
  boot: string | null;
}

export function parseIdentity(s: string): Identity {
  const at = s.indexOf('@');
  const proc = at < 0 ? s : s.slice(0, at);
  const [pid, start] = proc.split(':');
  if (at < 0) return { pid: Number(pid), start: start ?? '', host: null, boot: null };
  const where = s.slice(at + 1);
  const slash = where.lastIndexOf('/');
  return { pid: Number(pid), start: start ?? '', host: slash < 0 ? where : where.slice(0, slash), boot: slash < 0 ? null : where.slice(slash + 1) };
}

export function formatIdentity(i: Identity): string {
  return `${i.pid}:${i.start}${i.host === null ? '' : `@${i.host}/${i.boot ?? ''}`}`;
}

/** "pid:start@host/boot" of this process, as stored in owner columns. */
export function selfIdentity(): string {
  const h = here();
  return formatIdentity({ pid: process.pid, start: selfStartTime(), host: h.host, boot: h.boot });
}

/**
 * - `alive`, `dead`: a process of this host, judged by its pid and start time;
 *   also `dead` for a process of an earlier boot of this host.
 * - `foreign`: another host name on this kernel (a container, a UTS namespace):
 *   its processes may well live, but its pids are not ours to read.
 * - `elsewhere`: another machine.
 */
export type Liveness = 'alive' | 'dead' | 'foreign' | 'elsewhere';

export function identityState(identity: string, h: Here = here()): Liveness {
  const i = parseIdentity(identity);
  if (i.host !== null && i.host !== h.host) return i.boot === h.boot ? 'foreign' : 'elsewhere';
  if (i.boot !== null && i.boot !== h.boot) return 'dead';
  const s = processStartTime(i.pid);
  return s !== undefined && s === i.start ? 'alive' : 'dead';
}

/** Whether the identity's process is alive on this host (false for other hosts' processes: they cannot be judged here). */
export function identityAlive(identity: string): boolean {
  return identityState(identity) === 'alive';
}

/**
 * Whether the identity's process may be using the store right now. A process of
 * another machine cannot: the store lease (src/store/lease.ts) admits one kernel
 * and mount at a time, and this process holds it. A process in another namespace
 * of this kernel shares the lease, so it may.
 */
export function mayBeActive(identity: string): boolean {
  const s = identityState(identity);
  return s === 'alive' || s === 'foreign';
}

/** "process 123 on host n1", for messages. */
export function describeOwner(identity: string): string {
  const i = parseIdentity(identity);
  return `process ${i.pid}${i.host === null ? '' : ` on host ${i.host}`}`;
}

export function ownerHost(identity: string): string | null {
  return parseIdentity(identity).host;
}
