import type { SshOptions } from '../../request/executor.js';
import { formatBytes } from '../../quantities.js';
import { VmwuError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import type { Executor } from '../../sweep/driver.js';
import type { SweepEvent } from '../../sweep/outcome.js';
import type { Experiment } from '../../sweep/records/types.js';
import { DEFAULT_HOST_TIMEOUT_MS, HostLostError, type SshConnection } from './connection.js';
import { hostConnector } from './connect-host.js';
import { drainedHosts, hostBlobs, listHosts } from './hosts.js';
import { ineligible, parseSelector, rankHosts, simulatePlacement, spreadRefusal, type HostSelector } from './placement.js';
import { SshPool } from './pool.js';
import type { SshStats } from './pool-host.js';
import { runRemoteAttempt } from './remote-attempt.js';
import { runSshMultiVm } from './multi-vm-attempt.js';
import { jobNodes } from '../../sweep/job-nodes.js';
import { sendUnit, unitCargo, type UnitCargo } from './unit-cargo.js';
import { askHost } from './transfer.js';

/** The SSH executor: a sweep's attempts placed on the pool of SSH hosts (`vmwu hosts`), each run there with `vmwu remote`. */

/** How often a runner looks for drained hosts in the store. */
const DRAIN_POLL_MS = 1000;

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

/**
 * Runs a sweep's attempts on the pool of SSH hosts (`vmwu hosts`). Each attempt
 * is placed on the best host with a free slot (see placement.ts, pool.ts); the
 * unit's blobs go to a host once, before its first job, and only those it lacks;
 * then the job's inputs travel with `vmwu remote run`, the guest's output streams
 * back live, and the work dir comes back as an archive checked like any guest
 * output (remote-attempt.ts). A host that stops answering is taken out of
 * placement for a while and its attempts return `interrupted`, so the scheduler
 * requeues them on another host without counting a failure.
 */
export function sshExecutor(opts: SshOptions & { onEvent?: (ev: SweepEvent) => void; retryDownMs?: number } = {}): SshExecutor {
  const timeoutMs = opts.hostTimeoutMs ?? DEFAULT_HOST_TIMEOUT_MS;
  const sel: HostSelector = parseSelector(opts.hosts);
  const info = (message: string) => opts.onEvent?.({ type: 'info', message });
  const skipped = new Map<string, string>();
  let cargo: UnitCargo | undefined;
  let pool: SshPool<SshConnection> | undefined;

  return {
    name: 'ssh',

    async capacity(store, e) {
      const c = (cargo = unitCargo(store, e));
      const all = listHosts(store.db);
      if (!all.length) throw new VmwuError('NO_HOSTS', 'the SSH pool has no hosts', 'add one with `vmwu hosts add user@host --key FILE`');
      const eligible = all.filter((r) => {
        const why = ineligible({ name: r.name, labels: r.labels, arch: r.info.arch, memMiB: r.info.memMiB, cpuFeatures: r.info.cpuFeatures }, c.needs, sel);
        if (why) skipped.set(r.name, why);
        return !why;
      });
      const skippedText = [...skipped].map(([n, why]) => `${n}: ${why}`).join('; ');
      if (!eligible.length) throw new VmwuError('NO_HOSTS', `no host in the pool can run this sweep: ${skippedText}`, 'add hosts, or change --hosts');
      const never = opts.spread ? spreadRefusal(e.resources.nodes ?? 1, eligible.map((h) => h.name)) : undefined;
      if (never) throw never;
      const p = (pool = new SshPool({
        hosts: eligible, connect: hostConnector(store.db, timeoutMs), needs: c.needs, selector: sel, jobCpus: e.resources.cpus,
        retryDownMs: opts.retryDownMs ?? Math.max(30_000, 4 * timeoutMs), onInfo: info,
        heldBytes: (host) => {
          const held = hostBlobs(store.db, host);
          return c.blobs.filter((b) => held.has(b.digest)).reduce((a, b) => a + b.size, 0);
        },
      }));
      // What each holds of the unit, so placement ranks on facts.
      await p.open((conn) => askHost(conn, store.db, c.blobs).then(() => undefined));
      p.watchDrains(() => drainedHosts(store.db), DRAIN_POLL_MS);
      const hosts = [...p.hosts.values()];
      const up = hosts.filter((h) => !h.downUntil);
      if (!up.length) throw new VmwuError('NO_HOSTS', `no host is reachable: ${hosts.map((h) => `${h.record.name}: ${h.downWhy}`).join('; ')}`, 'check them with `vmwu hosts check`');
      const slots = up.reduce((a, h) => a + h.slots, 0);
      const parts = rankHosts(p.facts(), c.needs, sel).map((r) => {
        const h = p.hosts.get(r.host.name)!;
        if (h.downUntil) return `${r.host.name} down (${h.downWhy})`;
        return `${r.host.name} ${h.slots} slot${h.slots === 1 ? '' : 's'}${r.holdsUnit ? ', holds the unit' : `, ${formatBytes(c.needs.needBytes - r.host.heldBytes)} to send`}`;
      });
      return { slots, explain: `SSH hosts: ${parts.join('; ')}${skipped.size ? `; skipped ${skippedText}` : ''}` };
    },

    preview(_store, jobs) {
      const p = pool!;
      const needs = cargo!.needs;
      const f = p.facts();
      const ranked = rankHosts(f, needs, sel).filter((r) => r.host.up);
      const rows: PlacementPreview['hosts'] = f.map((x) => {
        const rank = ranked.findIndex((r) => r.host.name === x.name);
        return {
          name: x.name, eligible: true, why: p.hosts.get(x.name)!.downWhy, up: x.up, slots: x.slots, holdsUnit: x.heldBytes >= needs.needBytes,
          toSendBytes: needs.needBytes - x.heldBytes, rank: rank < 0 ? null : rank + 1,
        };
      });
      for (const [name, why] of skipped) rows.push({ name, eligible: false, why, up: false, slots: 0, holdsUnit: false, toSendBytes: 0, rank: null });
      rows.sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9) || a.name.localeCompare(b.name));
      return { hosts: rows, first: simulatePlacement(f, needs, sel, jobs) };
    },

    runAttempt(store, ctx) {
      const c = cargo!;
      const nodes = jobNodes(ctx.experiment.resources, ctx.job.params);
      if (nodes > 1) {
        return runSshMultiVm({ store, ctx, pool: pool!, cargo: c, nodes, apart: Boolean(opts.spread), outputsAll: Boolean(ctx.experiment.resources.outputsAll), info });
      }
      return pool!.runPlaced(ctx.signal, async (h) => {
        ctx.onPlaced?.(h.record.name);
        let conn: SshConnection;
        try {
          conn = await pool!.ready(h, (x) => sendUnit(store, c, x, h.stats, info));
        } catch (err) {
          // Unreachable, a changed host key, no QEMU there, a transfer cut off: the host's problem, not the job's.
          throw err instanceof HostLostError ? err : new HostLostError(h.record.name, (err as Error).message);
        }
        return runRemoteAttempt({ store, ctx, host: h, conn, base: c.base, info });
      });
    },

    async close() {
      pool?.close();
    },

    stats: () => pool?.stats() ?? [],

    unitBytes: () => cargo?.needs.needBytes ?? 0,
  };
}
