import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { PortName } from '../../../guest/protocol.js';
import { createOverlay } from '../../image/qemu-img.js';
import type { RunningVm } from '../../vm/launch.js';
import type { VmSpec } from '../../vm/spec.js';
import { loadVmState } from '../../vm/vm-state.js';
import { handInstanceTo, instancePaths, makeInstanceDirs, removeInstanceFiles, type InstancePaths } from '../instance.js';
import { cacheUse, type CacheUse } from '../node-cache.js';
import { ownedDirIn } from '../owned-dirs.js';
import type { PhaseClock } from '../phase-clock.js';
import { writeJobDisks, type PrepareRequest } from '../prepare.js';
import { attachStreams, type Started, type StreamHooks } from '../streams.js';
import { fitCloneDisks, READY_TIMEOUT_MS, wakeClone } from './clone.js';
import { obtainTemplate, TemplateDiskBytes, templateKey, templateVmSpec, type Template, type TemplateCache, type TemplateShape } from './template.js';

/**
 * Clones kept warm (docs/architecture.md, "Warm pools"): QEMUs started from a
 * template ahead of their jobs, their saved state loaded and their vCPUs
 * paused, their disks made and empty. A job takes one, writes its input into
 * the clone's open input disk, and says go: no QEMU start and no state load on
 * its way. A clone serves one job and is gone; jobs never share a guest.
 */

export interface WarmClone {
  key: string;
  shape: TemplateShape;
  template: Template;
  /** Its instance's disks and sockets; its logs are the job's, given when it is taken. */
  paths: InstancePaths;
  spec: VmSpec;
  vm: RunningVm;
  /** Holds its template in the node cache while it waits. */
  use: CacheUse;
}

/**
 * Whether jobs of a shape can take a warm clone: only the input and output
 * disks differ from job to job (an app or dataset disk is made per job before
 * QEMU opens it), and no network of its own to start. Pure.
 */
export function warmable(shape: TemplateShape): boolean {
  return !shape.app && shape.data.length === 0 && !shape.network && !shape.segment;
}

/** Starts a clone of `shape`'s template with empty job disks and loads its state; it waits paused. */
export async function startWarmClone(cache: TemplateCache, shape: TemplateShape): Promise<WarmClone> {
  const use = cacheUse(dirname(cache.dir), cache.store);
  try {
    const template = await obtainTemplate({ ...cache, use }, shape);
    const scratch = ownedDirIn(cache.instances, 'warm');
    const id = basename(scratch).slice(1);
    const paths = instancePaths(scratch, { stdout: '/dev/null', stderr: '/dev/null', console: '/dev/null' }, id);
    makeInstanceDirs(paths);
    try {
      // What the template's guest saw: the job's own sizes come when it is taken.
      writeFileSync(paths.input, '');
      writeFileSync(paths.output, '');
      await Promise.all([
        createOverlay(paths.overlay, template.root, 'qcow2', shape.virtualSize),
        truncate(paths.input, TemplateDiskBytes.input), truncate(paths.output, TemplateDiskBytes.output),
      ]);
      if (cache.user) await handInstanceTo(paths, cache.user);
      const spec = templateVmSpec(shape, 'clone', { name: id, paths, memory: template.memory, template, user: cache.user });
      const vm = await cache.driver.launch(spec);
      try {
        await loadVmState(vm.qmp, { ignoreShared: true, timeoutMs: READY_TIMEOUT_MS });
        await primeClone(vm);
      } catch (e) {
        await vm.stop(500);
        throw e;
      }
      return { key: template.key, shape, template, paths, spec, vm, use };
    } catch (e) {
      await removeInstanceFiles(paths);
      throw e;
    }
  } catch (e) {
    use.release();
    throw e;
  }
}

/**
 * Runs a clone's guest through a job's start with no job (guest/agent:
 * `prime`), then pauses it again: the emulator's translations of that code
 * are made now, on no job's time. Its control port is left paused until a job
 * takes the clone.
 */
async function primeClone(vm: RunningVm): Promise<void> {
  const ctl = vm.ports.get(PortName.ctl)!;
  let text = '';
  let onData: (d: Buffer) => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const primed = new Promise<void>((resolve, reject) => {
    onData = (d) => {
      text += d.toString('latin1');
      if (/(^|\n)vmwu primed /.test(text)) resolve();
      else if (text.length > 64 * 1024) reject(new Error('the clone said too much on its control port while it was primed'));
    };
    ctl.on('data', onData);
    void vm.exited.then(() => reject(new Error('the clone\'s QEMU ended while it was primed')));
    timer = setTimeout(() => reject(new Error(`the clone was not primed within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
  });
  try {
    await vm.qmp.execute('cont');
    ctl.write('prime\n');
    await primed;
    await vm.qmp.execute('stop');
  } finally {
    clearTimeout(timer);
    ctl.off('data', onData);
    ctl.pause();
  }
}

/** A clone no job will take: stopped, its disks gone, its template let go. */
export async function discardWarmClone(w: WarmClone): Promise<void> {
  await w.vm.stop(500);
  await removeInstanceFiles(w.paths);
  w.use.release();
}

/**
 * A job in a warm clone: its input and output written into the clone's disks
 * (the job's `paths` are the clone's, with the job's logs), its streams wired,
 * and go. The job's own use of the cache holds the template from here on. On
 * failure the clone is stopped; the caller boots instead.
 */
export async function adoptWarmClone(ctx: { paths: InstancePaths; clock: PhaseClock; use?: CacheUse }, job: PrepareRequest, w: WarmClone, hooks: StreamHooks): Promise<Started> {
  let started: Started | undefined;
  try {
    await ctx.use?.hold(`templates/${w.key}`);
    await writeJobDisks({ virtualSize: w.shape.virtualSize }, job, ctx.paths);
    const sizes = await fitCloneDisks(ctx.paths, w.shape);
    ctx.clock.mark('prepared');
    started = { ...attachStreams(w.vm, w.spec, ctx.paths, ctx.clock, hooks), parent: w.template.root };
    // Paused since it was primed: the job's events come on it now.
    w.vm.ports.get(PortName.ctl)!.resume();
    return await wakeClone(started, w.key, sizes);
  } catch (e) {
    await w.vm.stop(500);
    await started?.sinks;
    throw e;
  } finally {
    w.use.release();
  }
}

/** Why a shape's clones are not started again for a while: making them failed. */
const RETRY_AFTER_MS = 60_000;

/**
 * How many clones a pool serving jobs may hold by default: one per job it is
 * serving (so they count against the slots those jobs hold), and only while
 * the host has cores those jobs leave idle. Starting and priming a clone costs
 * CPU a saturated host would take from running jobs (measured: a 2-slot sweep
 * on 2 cores went from 3.6 s to 4.8 s with a clone per slot), so there the
 * pool waits for the sweep's tail. Pure.
 */
export function servingLimit(jobs: number, busyCpus: number, cores: number): number {
  return Math.max(0, Math.min(jobs, cores - busyCpus));
}

/**
 * The vCPUs a pool's jobs hold, counting a runner's slots as busy from its first
 * job to its last: a sweep whose slots fill the cores starts its jobs one after
 * another, and a clone started in the moment between two of them (or while its
 * last job runs) would only take CPU from them. Pure.
 */
export function busyCpusOf(running: { cpus: number; slots: number }[]): number {
  const now = running.reduce((n, r) => n + r.cpus, 0);
  return Math.max(now, ...running.map((r) => r.cpus * r.slots));
}

/**
 * A process's warm clones: at most `limit()` ready or starting, over all
 * shapes. A shape asked for when the pool is full takes the place of the clone
 * of another shape that waited longest: a pool whose template went stale (a
 * rebuilt unit, another QEMU) drains so.
 */
export class WarmPool {
  private readonly ready: WarmClone[] = [];
  private starting = 0;
  private readonly running: { cpus: number; slots: number }[] = [];
  private readonly failed = new Map<string, number>();
  private closed = false;

  /**
   * `limit`: how many clones it may hold (by default servingLimit of the jobs
   * it serves on this host's cores); `only`: the one template key it keeps
   * clones of (a pool kept for one shape of job).
   */
  constructor(private readonly limit: () => number = () => servingLimit(this.running.length, busyCpusOf(this.running), availableParallelism()), private readonly only?: string) {
    // A pool's QEMUs die with the process (setpriv --pdeathsig); their disks go too.
    process.once('exit', () => {
      for (const w of this.ready.splice(0)) rmSync(w.paths.scratch, { recursive: true, force: true });
    });
  }

  /**
   * Runs a job of `cpus` vCPUs that may take a clone: while it runs, the pool may
   * hold one more, cores allowing. `slots`: how many such jobs its caller keeps
   * going at once (busyCpusOf).
   */
  async serving<T>(cpus: number, job: () => Promise<T>, slots = 1): Promise<T> {
    const r = { cpus, slots };
    this.running.push(r);
    try {
      return await job();
    } finally {
      this.running.splice(this.running.indexOf(r), 1);
    }
  }

  get size(): number {
    return this.ready.length + this.starting;
  }

  /** A ready clone of `shape`, now the caller's to run a job in or to discard; undefined when none waits. */
  take(shape: TemplateShape): WarmClone | undefined {
    const key = templateKey(shape);
    const i = this.ready.findIndex((w) => w.key === key);
    return i < 0 ? undefined : this.ready.splice(i, 1)[0];
  }

  /** Starts a clone of `shape` in the background, when the pool has room for it (or can make some). */
  keepWarm(cache: TemplateCache, shape: TemplateShape): void {
    const key = templateKey(shape);
    if (this.closed || !warmable(shape) || (this.only && key !== this.only) || (this.failed.get(key) ?? 0) > Date.now()) return;
    const limit = this.limit();
    if (limit <= 0) return;
    if (this.size >= limit) {
      const other = this.ready.findIndex((w) => w.key !== key);
      if (other < 0) return;
      void discardWarmClone(this.ready.splice(other, 1)[0]!);
    }
    this.starting++;
    startWarmClone(cache, shape).then((w) => {
      this.starting--;
      if (this.closed || this.ready.length >= this.limit()) {
        void discardWarmClone(w);
        return;
      }
      this.ready.push(w);
      // A clone whose QEMU went while it waited is no use to anyone.
      void w.vm.exited.then(() => {
        const i = this.ready.indexOf(w);
        if (i >= 0) void discardWarmClone(this.ready.splice(i, 1)[0]!);
      });
    }, () => {
      this.starting--;
      this.failed.set(key, Date.now() + RETRY_AFTER_MS);
    });
  }

  /** Stops every waiting clone; clones being started are stopped once they are. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.ready.splice(0).map(discardWarmClone));
  }
}
