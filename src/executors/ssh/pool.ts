import { isVmwuError, VmwuError } from '../../errors.js';
import { capacityRule } from '../../sweep/capacity.js';
import type { AttemptResult } from '../../sweep/driver.js';
import { HostLostError, remoteFailure } from './connection.js';
import type { HostRecord } from './hosts.js';
import { placeJob, placeVms, rankHosts, spreadRefusal, type HostFacts, type HostSelector, type JobNeeds } from './placement.js';
import { poolHost, type Connector, type PoolConnection, type PoolHost, type SshStats } from './pool-host.js';

/** The SSH pool as one sweep's runner sees it: its hosts, their connections and slots, placement, lost and drained hosts, and what each host did. */

export interface PoolOptions<C> {
  /** The hosts that can take the sweep's jobs at all (placement.ts ineligible). */
  hosts: HostRecord[];
  connect: Connector<C>;
  needs: JobNeeds;
  selector: HostSelector;
  /** A job's vCPUs, for the slot rule of a host added without --slots. */
  jobCpus: number;
  /** How long a lost or unreachable host stays out of placement before it is tried again. */
  retryDownMs: number;
  /** Bytes of the unit's blobs the host holds, as the store recorded it. */
  heldBytes(host: string): number;
  onInfo(message: string): void;
  /** The clock (a fake one in unit tests). */
  now?: () => number;
}

const interrupted = (why: string): AttemptResult => ({ runId: null, status: 'interrupted', exitCode: null, phases: null, totalMs: null, error: { code: 'HOST_LOST', message: why } });

export class SshPool<C extends PoolConnection> {
  readonly hosts = new Map<string, PoolHost<C>>();
  private closed = false;
  private allDrainedSaid = false;
  private drainWatch: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly now: () => number;

  constructor(private readonly o: PoolOptions<C>) {
    this.now = o.now ?? Date.now;
    for (const r of o.hosts) this.hosts.set(r.name, poolHost<C>(r));
  }

  /**
   * Connects to every host at once and asks each, with `probe`, what it holds of
   * the unit; a host that fails is down for now. Each host's slots are its
   * `--slots`, else the capacity rule applied to its cores and free memory.
   */
  async open(probe: (conn: C) => Promise<void>): Promise<void> {
    await Promise.all([...this.hosts.values()].map(async (h) => {
      try {
        await probe(await this.connect(h));
      } catch (err) {
        this.markDown(h, (err as Error).message);
        if (isVmwuError(err) && err.code === 'HOST_KEY_CHANGED') this.o.onInfo(`warning: ${err.message}`);
      }
      const i = h.info;
      h.slots = h.record.slots ?? capacityRule({ cores: i.cores, availableMemMiB: i.availableMemMiB, jobMemoryMiB: this.o.needs.memoryMiB, jobCpus: this.o.jobCpus }).slots;
    }));
  }

  /** The hosts as placement sees them now. */
  facts(): HostFacts[] {
    const now = this.now();
    return [...this.hosts.values()].map((h) => ({
      name: h.record.name, labels: h.record.labels, arch: h.info.arch, slots: h.slots, busy: h.busy, memMiB: h.info.memMiB, cpuFeatures: h.info.cpuFeatures,
      up: h.downUntil <= now && !h.drained, heldBytes: this.o.heldBytes(h.record.name),
    }));
  }

  /** The connection to the host, opened (once, however many attempts ask at the same time) if it has none that is alive. */
  connect(h: PoolHost<C>): Promise<C> {
    if (h.conn?.alive) return Promise.resolve(h.conn);
    h.connecting ??= (async () => {
      const conn = await this.o.connect(h.record, (i) => {
        h.info = i;
      });
      this.dropConnection(h);
      h.conn = conn;
      if (h.downUntil) this.o.onInfo(`host ${h.record.name} is back`);
      h.downUntil = 0;
      h.downWhy = null;
      return conn;
    })().finally(() => {
      h.connecting = null;
    });
    return h.connecting;
  }

  /** The connection, with `prepare` (the unit's blobs and base) done once per connection; a failed one is done again by the next attempt. */
  async ready(h: PoolHost<C>, prepare: (conn: C) => Promise<void>): Promise<C> {
    const conn = await this.connect(h);
    h.unitReady ??= prepare(conn).catch((e: unknown) => {
      h.unitReady = null;
      throw e;
    });
    await h.unitReady;
    return conn;
  }

  /** Takes the host out of placement for a while (lost, unreachable); its connection is dropped. */
  markDown(h: PoolHost<C>, why: string): void {
    this.dropConnection(h);
    h.downUntil = this.now() + this.o.retryDownMs;
    h.downWhy = why;
    this.notify();
  }

  /**
   * Runs an attempt on a host of the pool: placed (a slot taken), run, the slot
   * given back. A host lost meanwhile is taken out of placement and the attempt
   * ends `interrupted`, so the runner requeues its job without counting a failure.
   */
  async runPlaced(signal: AbortSignal, run: (h: PoolHost<C>) => Promise<AttemptResult>): Promise<AttemptResult> {
    const h = await this.place(signal);
    if (!h) return interrupted('stopped before it was placed');
    try {
      return await run(h);
    } catch (err) {
      if (!(err instanceof HostLostError)) throw err;
      h.stats.lost++;
      if (!h.downUntil) this.o.onInfo(`${err.message}; its jobs go to the other hosts`);
      this.markDown(h, err.message);
      return interrupted(err.message);
    } finally {
      h.busy--;
      this.notify();
    }
  }

  /** A host for an attempt, with a slot taken on it: the best one with a free slot; lost hosts are tried again once their pause is over. */
  async place(signal: AbortSignal): Promise<PoolHost<C> | null> {
    for (;;) {
      if (signal.aborted || this.closed) return null;
      const f = this.facts();
      const pick = placeJob(f, this.o.needs, this.o.selector);
      if (pick) {
        // Taken now, before any await, so attempts started together spread over the hosts.
        const h = this.hosts.get(pick.name)!;
        h.busy++;
        return h;
      }
      const ranked = rankHosts(f, this.o.needs, this.o.selector).filter((r) => !this.hosts.get(r.host.name)!.drained);
      if (!ranked.length) {
        // Every host is drained: wait for one to be put back (`vmwu hosts undrain`), or for the sweep to stop.
        if (!this.allDrainedSaid) this.o.onInfo('every host of the sweep is drained: jobs wait for `vmwu hosts undrain NAME`');
        this.allDrainedSaid = true;
        await this.waitForChange(signal, 1000);
        continue;
      }
      this.allDrainedSaid = false;
      if (!ranked.some((r) => r.host.up)) {
        // Every host is down: try those whose pause is over, else give up on this attempt (it counts as a failure, with backoff).
        let back = false;
        for (const r of ranked) {
          const h = this.hosts.get(r.host.name)!;
          try {
            await this.connect(h);
            back = true;
          } catch (e) {
            this.markDown(h, (e as Error).message);
          }
        }
        if (!back) {
          throw new VmwuError('NO_HOSTS', `no host can run the job: ${[...this.hosts.values()].map((h) => `${h.record.name}: ${h.downWhy ?? 'busy'}`).join('; ')}`,
            'check the hosts with `vmwu hosts check`; the job is retried after a backoff');
        }
        continue;
      }
      await this.waitForChange(signal, 1000);
    }
  }

  /**
   * Hosts for the VMs of one multi-VM job, a slot taken on each for each VM it
   * holds (placement.ts placeVms): waits until the pool has them free. Refused
   * when the pool can never have them (fewer eligible hosts than VMs with `apart`).
   */
  async placeVms(signal: AbortSignal, n: number, apart: boolean): Promise<PoolHost<C>[] | null> {
    for (;;) {
      if (signal.aborted || this.closed) return null;
      const f = this.facts();
      const eligible = rankHosts(f, this.o.needs, this.o.selector);
      const never = apart ? spreadRefusal(n, eligible.map((r) => r.host.name)) : undefined;
      if (never) throw never;
      const pick = placeVms(f, this.o.needs, this.o.selector, n, apart);
      if (pick) {
        const hs = pick.map((x) => this.hosts.get(x.name)!);
        for (const h of hs) h.busy++;
        return hs;
      }
      await this.waitForChange(signal, 1000);
    }
  }

  /** Gives back the slots placeVms took. */
  releaseVms(hosts: PoolHost<C>[]): void {
    for (const h of hosts) h.busy--;
    this.notify();
  }

  /** Follows `vmwu hosts drain` and `undrain` (the names drained now): placement skips a drained host, and its running jobs are asked to stop at a checkpoint. */
  async applyDrains(drained: Set<string>): Promise<void> {
    for (const h of this.hosts.values()) {
      const now = drained.has(h.record.name);
      if (now !== h.drained) {
        h.drained = now;
        this.o.onInfo(now ? `host ${h.record.name} is drained: its running jobs stop at a checkpoint and go on elsewhere` : `host ${h.record.name} is back in the pool`);
        this.notify();
      }
      if (now && h.jobs.size) await this.stopJobsOn(h);
    }
  }

  /** Looks at the drained hosts every `everyMs` (a drain may come from any process): see applyDrains. */
  watchDrains(drained: () => Set<string>, everyMs: number): void {
    let busy = false;
    this.drainWatch = setInterval(() => {
      if (busy || this.closed) return;
      busy = true;
      void this.applyDrains(drained()).finally(() => {
        busy = false;
      });
    }, everyMs);
    this.drainWatch.unref();
  }

  stats(): SshStats[] {
    return [...this.hosts.values()].map((h) => ({ host: h.record.name, ...h.stats, sentBytes: h.stats.sentBytes + (h.conn?.sentBytes ?? 0) }));
  }

  /** Stops placing and watching, and closes every connection. */
  close(): void {
    this.closed = true;
    clearInterval(this.drainWatch);
    this.notify();
    for (const h of this.hosts.values()) this.dropConnection(h);
  }

  /** Asks every running job of a drained host to stop at a checkpoint; one that is still starting is asked again next time. */
  private async stopJobsOn(h: PoolHost<C>): Promise<void> {
    for (const [id, job] of h.jobs) {
      if (job.stopAsked) continue;
      job.stopAsked = true;
      try {
        const conn = await this.connect(h);
        const r = await conn.exec(['checkpoint', id, '--stop']);
        if (r.code !== 0) throw remoteFailure(h.record.name, 'checkpoint', r);
      } catch (err) {
        job.stopAsked = false;
        // Not started yet, or ending: asked again on the next look, or it finishes there.
        if (!isVmwuError(err) || err.code !== 'NOT_RUNNING') this.o.onInfo(`host ${h.record.name} is drained, but job ${id} could not be checkpointed: ${(err as Error).message}`);
      }
    }
  }

  private dropConnection(h: PoolHost<C>): void {
    if (h.conn) h.stats.sentBytes += h.conn.sentBytes;
    h.conn?.close();
    h.conn = null;
    h.unitReady = null;
  }

  private notify(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private waitForChange(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done);
    });
  }
}
