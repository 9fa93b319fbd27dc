import { VmwuError } from '../../errors.js';
import { missingCpuFeatures } from '../../vm/cpu.js';

/**
 * Where the next job of a sweep goes (VMM's placement with GridWay's
 * requirements and rank): first filter the hosts that can take it at all, then
 * rank the rest: a host that already holds the unit's blobs first (nothing to
 * send), then the one with the most free slots, then by name for a stable order.
 * Pure: the executor and `--dry-run` feed it the same facts.
 */

export interface HostFacts {
  name: string;
  labels: Record<string, string>;
  arch: string;
  /** Jobs it may run at once. */
  slots: number;
  /** Jobs of ours running there now. */
  busy: number;
  memMiB: number;
  /** False while the host is unreachable or was lost; placement skips it. */
  up: boolean;
  /** Bytes of the unit's blobs it holds, of `needBytes`. */
  heldBytes: number;
  /** CPU features its guests get, as the host reported them; absent: unknown (an older vmwu). */
  cpuFeatures?: string[];
}

export interface JobNeeds {
  arch: string;
  memoryMiB: number;
  /** Total bytes of the unit's blobs (base and layers). */
  needBytes: number;
  /** CPU features the unit needs (src/vm/cpu.ts). */
  cpu?: string[];
}

/** `--hosts`: label=value pairs every host must have, and/or host names of which it must be one. */
export interface HostSelector {
  labels: Record<string, string>;
  names: string[];
}

export function parseSelector(text: string | undefined): HostSelector {
  const sel: HostSelector = { labels: {}, names: [] };
  for (const part of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i > 0) sel.labels[part.slice(0, i)] = part.slice(i + 1);
    else sel.names.push(part);
  }
  return sel;
}

/** Why a host can never take this sweep's jobs (selector, architecture, memory), or null. */
export function ineligible(h: Pick<HostFacts, 'name' | 'labels' | 'arch' | 'memMiB' | 'cpuFeatures'>, needs: JobNeeds, sel: HostSelector): string | null {
  if (sel.names.length && !sel.names.includes(h.name)) return 'not among the hosts named in --hosts';
  for (const [k, v] of Object.entries(sel.labels)) {
    if (h.labels[k] !== v) return `label ${k}=${v} wanted, host has ${k in h.labels ? `${k}=${h.labels[k]}` : `no ${k}`}`;
  }
  if (h.arch !== needs.arch) return `the unit is ${needs.arch}, the host is ${h.arch}`;
  if (h.memMiB < needs.memoryMiB) return `a job needs ${needs.memoryMiB} MiB, the host has ${h.memMiB} MiB`;
  const missing = needs.cpu?.length && h.cpuFeatures ? missingCpuFeatures(needs.cpu, h.cpuFeatures) : [];
  if (missing.length) return `the unit needs CPU features its guests lack: ${missing.join(', ')}`;
  return null;
}

export interface Ranked {
  host: HostFacts;
  holdsUnit: boolean;
  free: number;
}

/** Eligible hosts, best first; the caller takes the first with a free slot that is up. */
export function rankHosts(hosts: HostFacts[], needs: JobNeeds, sel: HostSelector): Ranked[] {
  return hosts
    .filter((h) => ineligible(h, needs, sel) === null)
    .map((h) => ({ host: h, holdsUnit: h.heldBytes >= needs.needBytes, free: h.slots - h.busy }))
    .sort((a, b) => Number(b.holdsUnit) - Number(a.holdsUnit) || b.host.heldBytes - a.host.heldBytes || b.free - a.free || a.host.name.localeCompare(b.host.name));
}

/** The host for the next job, or null when every eligible host is full or down. */
export function placeJob(hosts: HostFacts[], needs: JobNeeds, sel: HostSelector): HostFacts | null {
  return rankHosts(hosts, needs, sel).find((r) => r.host.up && r.free > 0)?.host ?? null;
}

/** A job of `n` VMs spread (`--spread`) over fewer eligible hosts than that can never be placed. */
export function spreadRefusal(n: number, eligible: string[]): VmwuError | undefined {
  if (n <= eligible.length) return undefined;
  return new VmwuError('NO_HOSTS', `a job of ${n} VMs spread over the hosts (--spread) needs ${n} hosts; the sweep can use ${eligible.length} (${eligible.join(', ') || 'none'})`,
    'add hosts to the pool, widen --hosts, or drop --spread to put several VMs on one host');
}

/**
 * Hosts for the `n` VMs of one multi-VM job, all at once (so two jobs never each
 * hold half of what they need): each the best with a free slot left, on `n`
 * different hosts with `apart` (`--spread`). Null when the pool has not that
 * much free now.
 */
export function placeVms(hosts: HostFacts[], needs: JobNeeds, sel: HostSelector, n: number, apart: boolean): HostFacts[] | null {
  const free = new Map(rankHosts(hosts, needs, sel).filter((r) => r.host.up).map((r) => [r.host, r.free]));
  const picked: HostFacts[] = [];
  for (let k = 0; k < n; k++) {
    const h = [...free].find(([x, f]) => f > 0 && !(apart && picked.includes(x)))?.[0];
    if (!h) return null;
    picked.push(h);
    free.set(h, free.get(h)! - 1);
  }
  return picked;
}

/**
 * Where the first `jobs` jobs would go if none finished meanwhile, for `--dry-run`.
 * A host starts holding the unit once a job is placed there (its blobs are sent then).
 */
export function simulatePlacement(hosts: HostFacts[], needs: JobNeeds, sel: HostSelector, jobs: number): { job: number; host: string | null; sends: boolean }[] {
  const state = hosts.map((h) => ({ ...h }));
  const out: { job: number; host: string | null; sends: boolean }[] = [];
  for (let j = 1; j <= jobs; j++) {
    const h = placeJob(state, needs, sel);
    if (!h) {
      out.push({ job: j, host: null, sends: false });
      continue;
    }
    out.push({ job: j, host: h.name, sends: h.heldBytes < needs.needBytes });
    h.busy++;
    h.heldBytes = needs.needBytes;
  }
  return out;
}
