import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { displayValue, escapeControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { bootId, describeOwner, identityState, selfIdentity } from './process-identity.js';

/**
 * The store lease: one machine at a time uses a store's database. SQLite keeps a
 * database consistent only among processes that share one kernel's locks, page
 * cache and shared memory; two hosts on one store over NFS or sshfs share none of
 * them and lose writes without an error. So every process that opens the store
 * takes the lease for its *sharing domain* (boot id + device of the store's
 * filesystem: one kernel and one mount of it), and a process of another domain is
 * refused with the holder's name, until the holder's last process has closed the
 * store or its heartbeat is older than the TTL.
 *
 * Files, all in the store root:
 * - `vmwu.db.lease`: the holder (domain, host, since, heartbeat); replaced by rename.
 * - `vmwu.db.lease.lock/`: a short-lived mutex around every change of the lease;
 *   `mkdir` is atomic on local and network filesystems alike.
 * - `vmwu.db.lease.d/`: one entry per process of the holding domain, so the last
 *   one to close releases the lease at once instead of after the TTL.
 *
 * The TTL compares wall clocks of different hosts: the cluster's clocks are
 * assumed to agree within a few seconds (NTP); a heartbeat dated far ahead is no
 * live holder's (heartbeatLive). What the lease file says (host, since) another
 * host wrote: messages show it escaped.
 *
 * The holder never writes once it may have lost the lease: every write through
 * the store's database asks `assertWritable()` first, which within a window of
 * half a TTL after the last heartbeat (by this process's own clocks) only compares
 * times, and past it renews the lease before the write, or refuses it with
 * STORE_LOST if another host has had the store meanwhile.
 *
 * A machine that died holding the lease holds it until the TTL has passed; one
 * whose clock or lease file is wrong could hold it longer: `vmwu doctor
 * --break-lease` ends it (breakLease).
 */

export interface LeaseRecord {
  domain: string;
  host: string;
  since: string;
  /** Epoch ms of the holder's last heartbeat. */
  heartbeat: number;
}

export interface LeaseOptions {
  ttlMs?: number;
  /** Test seams: the domain and host this process claims to be, the identity it registers as (`pid:start@host/boot`), its clocks (wall, monotonic). */
  domain?: string;
  host?: string;
  identity?: string;
  now?: () => number;
  monotonic?: () => number;
}

export interface StoreLease {
  readonly record: LeaseRecord;
  readonly ttlMs: number;
  /**
   * Renews the heartbeat. Returns null, or the host that took the lease over ('' when
   * not known: it has been given back or broken since); then nothing may be written any more.
   */
  renew(): string | null;
  /**
   * Before every write: returns if this process may write. Within the write window it
   * only compares clocks; past it, it renews the lease; once the lease is lost it
   * throws STORE_LOST, then and on every later call.
   */
  assertWritable(): void;
  /** Removes this process's registry entry; the last process of the holding domain gives the lease back. */
  release(): void;
}

export const DEFAULT_LEASE_TTL_MS = 30_000;
const LEASE_FILE = 'vmwu.db.lease';
const REGISTRY = 'vmwu.db.lease.d';
const MUTEX = 'vmwu.db.lease.lock';
const MUTEX_STALE_MS = 10_000;
const MUTEX_WAIT_MS = 15_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export function leaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.VMWU_STORE_LEASE_TTL_MS);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_LEASE_TTL_MS;
}

/** The sharing domain of a store: this kernel and the mount the store is seen through. */
export function sharingDomain(root: string): string {
  return `${bootId()}:${statSync(root).dev}`;
}

function withMutex<T>(root: string, fn: () => T, now: () => number): T {
  const dir = join(root, MUTEX);
  const start = now();
  let broken = false;
  for (;;) {
    try {
      mkdirSync(dir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new VmwuError('STORE', `cannot lock the store lease in ${root}: ${(e as Error).message}`, 'check that VMWU_HOME points at a writable directory', { cause: e });
      }
      // Held for milliseconds by whoever holds it: one still there after this long died
      // holding it. Judged by this process's own wait, not by the directory's time,
      // which a client cache may report from long ago.
      if (!broken && now() - start > MUTEX_STALE_MS) {
        broken = true;
        try {
          rmdirSync(dir);
        } catch {
          // another process broke it first
        }
        continue;
      }
      if (now() - start > MUTEX_WAIT_MS) throw new VmwuError('STORE_BUSY', `the store lease in ${root} stayed locked for ${MUTEX_WAIT_MS / 1000} s`, `remove ${dir} if no vmwu is running anywhere`);
      sleepSync(20);
    }
  }
  try {
    return fn();
  } finally {
    try {
      rmdirSync(dir);
    } catch {
      // broken as stale by another process: it holds it now
    }
  }
}

/** The lease as read here; `absent` may be a stale view of a client cache, `garbled` a crash's half-written file. */
function readLease(file: string): LeaseRecord | 'absent' | 'garbled' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  try {
    const r = JSON.parse(text) as Partial<LeaseRecord>;
    if (typeof r.domain === 'string' && typeof r.host === 'string' && typeof r.since === 'string' && Number.isFinite(r.heartbeat)) {
      return { domain: r.domain, host: r.host, since: r.since, heartbeat: r.heartbeat! };
    }
  } catch {
    // garbled
  }
  return 'garbled';
}

/** How long an existing lease may stay unreadable here (a client's cache still says it is absent) before acquiring gives up. */
const UNREADABLE_WAIT_MS = 5000;

function writeLease(file: string, r: LeaseRecord): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(r) + '\n');
  renameSync(tmp, file);
}

/** A registry entry's file name: the opener's identity (`pid:start@host/boot`, encoded) and a tag, since one process may open a store twice. */
const entryName = (identity: string) => `${encodeURIComponent(identity)}.${randomBytes(4).toString('hex')}`;

/** The identity an entry names, or null for a name vmwu did not write. */
function entryIdentity(name: string): string | null {
  try {
    return decodeURIComponent(name.replace(/\.[0-9a-f]+$/, ''));
  } catch {
    return null;
  }
}

/**
 * Whether a heartbeat, read by this host's clock, may be a live holder's: younger
 * than the TTL, and dated at most a TTL ahead. Without that bound a heartbeat far
 * ahead (a clock that was wrong and has been corrected, a forged or damaged file)
 * would lock the store until this clock passed it; with it, it locks the store for
 * at most two TTLs. The bound is the TTL because the lease already trusts clocks
 * to that scale: a live holder whose clock runs less than a TTL ahead is still
 * seen alive, while clocks that agree within seconds (as assumed) never put a live
 * holder's heartbeat that far ahead.
 */
export function heartbeatLive(heartbeat: number, now: number, ttlMs: number): boolean {
  const age = now - heartbeat;
  return age < ttlMs && age > -ttlMs;
}

/** Text from a lease file or the registry, which another host may have written: control characters escaped, length bounded. */
function shown(s: string): string {
  return displayValue(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}

/** "host login1" (escaped), or "another host" for one that is not known (''). */
export const describeLeaseHost = (host: string) => (host === '' ? 'another host' : `host ${shown(host)}`);

const seconds = (ms: number) => Math.round(Math.abs(ms) / 1000);

/** "3 s ago"; a heartbeat dated ahead of this clock says so. */
function seenText(ageMs: number): string {
  return ageMs >= 0 ? `${seconds(ageMs)} s ago` : `${seconds(ageMs)} s in the future by this host's clock`;
}

function lostError(root: string, taker: string, ttlMs: number): VmwuError {
  const by = taker === '' ? 'another host (its lease has been given back or broken since)' : describeLeaseHost(taker);
  return new VmwuError('STORE_LOST',
    `the store ${root} was taken over by ${by} while this process's lease had lapsed (it was stopped, suspended or cut off from the store for more than ${seconds(ttlMs)} s): this write and every later one are refused`,
    `what this command wrote before is in the store, the refused write is not; run it again once vmwu on ${taker === '' ? 'the other host' : shown(taker)} has stopped`);
}

/**
 * Takes (or joins) the store's lease for this process's domain. Refused with
 * STORE_IN_USE when another domain holds a live lease.
 */
export function acquireLease(root: string, opts: LeaseOptions = {}): StoreLease {
  const now = opts.now ?? Date.now;
  const monotonic = opts.monotonic ?? (() => performance.now());
  const ttl = opts.ttlMs ?? leaseTtlMs();
  const domain = opts.domain ?? sharingDomain(root);
  const host = opts.host ?? hostname();
  const file = join(root, LEASE_FILE);
  const registry = join(root, REGISTRY);
  const entry = entryName(opts.identity ?? selfIdentity());
  let record: LeaseRecord = { domain, host, since: new Date(now()).toISOString(), heartbeat: now() };
  // The write window, by both clocks: the monotonic one does not count a suspended
  // machine's sleep, the wall clock may be set back; the window ends when either says so.
  let monoUntil = 0;
  let wallUntil = 0;
  // Measured from before the heartbeat is written, so the window never outlasts what
  // the heartbeat promises: another host takes over a TTL after it by its clock, so
  // ending the window half a TTL after it leaves half a TTL for clock skew and for a
  // write checked at the window's last moment to finish.
  const openWindow = (mono: number, wall: number) => {
    monoUntil = mono + ttl / 2;
    wallUntil = wall + ttl / 2;
  };
  const [mono0, wall0] = [monotonic(), now()];

  withMutex(root, () => {
    // Whether a lease exists is asked of the server, by an exclusive create: a
    // client's cache (NFS's lookup cache, sshfs's) may still say it is absent.
    const end = now() + UNREADABLE_WAIT_MS;
    for (;;) {
      try {
        writeFileSync(file, JSON.stringify(record) + '\n', { flag: 'wx' });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const cur = readLease(file);
      if (cur === 'absent') {
        if (now() < end) {
          sleepSync(50);
          continue;
        }
        throw new VmwuError('STORE_IN_USE', `the store ${root} is leased by another host, whose lease this host cannot read yet`, 'try again in a minute');
      }
      if (cur !== 'garbled' && cur.domain !== domain && heartbeatLive(cur.heartbeat, now(), ttl)) {
        throw new VmwuError('STORE_IN_USE',
          `the store ${root} is in use by ${describeLeaseHost(cur.host)} (since ${shown(cur.since)}, last seen ${seenText(now() - cur.heartbeat)}): one machine at a time uses a store, so that no write is lost over a shared filesystem`,
          `run vmwu on ${shown(cur.host)}, or wait until vmwu there has stopped (the store is free at once when its last vmwu exits, or ${seconds(ttl)} s after it was last seen); another host can use a VMWU_HOME of its own`);
      }
      // Ours already (another process of this machine), or another machine's that went silent, or a crash's leftover.
      if (cur !== 'garbled' && cur.domain === domain) record = { ...record, since: cur.since };
      else rmSync(registry, { recursive: true, force: true });
      writeLease(file, record);
      break;
    }
    mkdirSync(registry, { recursive: true });
    closeSync(openSync(join(registry, entry), 'w'));
  }, now);
  openWindow(mono0, wall0);

  // Still this process's lease: this domain's, and the same one (a lease this domain
  // took again after it had lapsed and been given back is another one: others may have written between).
  const held = (cur: ReturnType<typeof readLease>) => typeof cur === 'object' && cur.domain === domain && cur.since === record.since;
  let released = false;
  /** The host that took the lease over ('' when not known), once it has. */
  let lostTo: string | null = null;

  const renew = (): string | null => {
    if (released || lostTo !== null) return lostTo;
    const [mono, wall] = [monotonic(), now()];
    return withMutex(root, () => {
      const cur = readLease(file);
      if (!held(cur)) {
        lostTo = typeof cur === 'object' && cur.domain !== domain ? cur.host : '';
        return lostTo;
      }
      record = { ...record, heartbeat: now() };
      writeLease(file, record);
      openWindow(mono, wall);
      return null;
    }, now);
  };

  return {
    get record() {
      return record;
    },
    ttlMs: ttl,
    renew,
    assertWritable() {
      // All a write costs while the window is open: no file is read.
      if (lostTo === null && monotonic() < monoUntil && now() < wallUntil) return;
      if (lostTo === null && !released) renew();
      if (lostTo !== null) throw lostError(root, lostTo, ttl);
    },
    release() {
      if (released) return;
      released = true;
      withMutex(root, () => {
        rmSync(join(registry, entry), { force: true });
        // A process whose lease was taken over judges nothing else: the registry is
        // the new holder's now, and so is the lease.
        if (lostTo !== null || !held(readLease(file))) return;
        if (pruneRegistry(registry) === 0) rmSync(file, { force: true });
      }, now);
    },
  };
}

/**
 * Removes the registry entries of this host's processes that died (kill -9), which
 * would keep the lease for ever, and returns how many entries remain. Only this
 * host and boot can tell that a process of its own died: the entries of any other
 * (a namespace of this kernel, another machine) stay.
 */
function pruneRegistry(registry: string): number {
  let left = 0;
  for (const name of safeList(registry)) {
    const id = entryIdentity(name);
    if (id !== null && identityState(id) === 'dead') rmSync(join(registry, name), { force: true });
    else left++;
  }
  return left;
}

/** The lease's holder, as `vmwu doctor --break-lease` shows it. */
export interface LeaseHolder extends LeaseRecord {
  /** Since its last heartbeat, by this host's clock; negative when dated ahead. */
  lastSeenMs: number;
  /** Whether its heartbeat may be a live holder's (younger than the TTL, not too far ahead). */
  recent: boolean;
  /** Whether it is this machine: this kernel and mount of the store. */
  thisMachine: boolean;
  /** Its registered processes that this host sees running, or cannot rule out (another namespace sharing this mount). */
  liveProcesses: string[];
}

/** Who holds the store's lease, read without opening the store; null when nobody does (no lease, or a half-written one that the next opener takes over). */
export function readLeaseHolder(root: string, opts: LeaseOptions = {}): LeaseHolder | null {
  const cur = readLease(join(root, LEASE_FILE));
  if (typeof cur !== 'object') return null;
  const now = (opts.now ?? Date.now)();
  const thisMachine = cur.domain === (opts.domain ?? sharingDomain(root));
  const liveProcesses = safeList(join(root, REGISTRY)).map(entryIdentity).filter((id): id is string => {
    if (id === null) return false;
    const state = identityState(id);
    return state === 'alive' || (thisMachine && state === 'foreign');
  });
  return { ...cur, lastSeenMs: now - cur.heartbeat, recent: heartbeatLive(cur.heartbeat, now, opts.ttlMs ?? leaseTtlMs()), thisMachine, liveProcesses };
}

/** "host login1 (domain …, since …, last seen 40 s ago)", escaped for a terminal. */
export function describeHolder(h: LeaseHolder): string {
  return `${describeLeaseHost(h.host)} (domain ${shown(h.domain)}, since ${shown(h.since)}, last seen ${seenText(h.lastSeenMs)})`;
}

/** Refuses to break a lease whose holder has processes running here: it is not dead. */
export function refuseLiveHolder(root: string, h: LeaseHolder): void {
  if (!h.liveProcesses.length) return;
  const who = h.liveProcesses.map((id) => escapeControlChars(describeOwner(id))).join(', ');
  throw new VmwuError('STORE_LEASE_LIVE', `the store ${root} is leased by ${describeLeaseHost(h.host)}, which is not dead: ${who} ${h.liveProcesses.length > 1 ? 'are' : 'is'} running with the store open`,
    'let it finish or stop it: the lease is given back when the last vmwu there closes the store');
}

/**
 * Ends the lease of a machine that died holding it (`vmwu doctor --break-lease`):
 * under the mutex, removes the lease file and the registry. Refused when one of the
 * holder's processes runs here, and when the lease is not `expected` any more: the
 * holder renewed its heartbeat while the user confirmed (it lives), or the lease
 * changed hands. Returns the holder whose lease it ended, or null when there was none.
 */
export function breakLease(root: string, expected?: LeaseRecord, opts: LeaseOptions = {}): LeaseHolder | null {
  return withMutex(root, () => {
    const h = readLeaseHolder(root, opts);
    if (!h) return null;
    if (expected && (h.domain !== expected.domain || h.since !== expected.since)) {
      throw new VmwuError('STORE_LEASE_CHANGED', `the store lease of ${root} changed hands meanwhile: it is held by ${describeHolder(h)} now`,
        'run vmwu doctor --break-lease again if that machine is dead too');
    }
    if (expected && h.heartbeat !== expected.heartbeat) {
      throw new VmwuError('STORE_LEASE_LIVE', `${describeLeaseHost(h.host)} renewed its lease on the store ${root} meanwhile: it is not dead`,
        `run vmwu on ${shown(h.host)}, or wait until vmwu there has stopped`);
    }
    refuseLiveHolder(root, h);
    rmSync(join(root, LEASE_FILE), { force: true });
    rmSync(join(root, REGISTRY), { recursive: true, force: true });
    return h;
  }, opts.now ?? Date.now);
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
