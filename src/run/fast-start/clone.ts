import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { PortName } from '../../../guest/protocol.js';
import type { HypervisorDriver } from '../../vm/driver.js';
import { guestCpuModel } from '../../vm/cpu.js';
import { qemuIdentity } from '../../vm/host.js';
import type { QemuUser } from '../../vm/qemu-user.js';
import { loadVmState } from '../../vm/vm-state.js';
import type { PhaseClock } from '../phase-clock.js';
import { handInstanceTo, type InstancePaths } from '../instance.js';
import { prepareInstance, type PrepareRequest } from '../prepare.js';
import { makeOwnMemory } from '../own-memory.js';
import { attachStreams, type Started, type StreamHooks } from '../streams.js';
import { obtainTemplate, TemplateDiskBytes, templateVmSpec, TemplateUnavailable, type TemplateCache, type TemplateShape } from './template.js';

/** A job started as a clone of this host's template for its shape (docs/architecture.md, "Fast start"), or the reason it boots instead. */

/** How an instance started: restored from a template, or booted; for a boot that was meant to be a restore, why it was not. */
export interface StartRecord {
  mode: 'restore' | 'boot';
  /** The template's key, when restored from one. */
  template?: string;
  /** Restored in a clone that was kept warm for it (src/run/fast-start/warm-pool.ts). */
  warm?: true;
  /** The checkpoint's id, when the job went on from one. */
  checkpoint?: string;
  fallback?: string;
  /** What the node cache could not do for the job (src/run/node-cache.ts): blobs read from the store instead, and why. */
  cache?: string;
  /** The guest's CPU model (src/vm/cpu.ts). */
  cpu?: string;
}

/** What decides whether and from which template a job can start. */
export interface FastStartRequest {
  cold?: boolean;
  keepRoot?: string;
  memoryMiB: number;
  cpus: number;
  /** The job's app directory, or (to warm a template) whether jobs will have one. */
  app?: string | boolean;
  network?: boolean;
  scratchBytes?: number;
  rootBytes?: number;
  tty?: unknown;
  segment?: unknown;
}

/**
 * The template shape a job would restore from; or, when it boots cold, the
 * reason worth recording ('' when cold is simply what was asked: `--cold`, a
 * build, or no template cache). Pure but for the QEMU identity (a stat).
 */
export function fastStartShape(
  ctx: { accel: { accel: 'kvm' | 'tcg' }; image: { boot: TemplateShape['boot'] | { kind: 'bios' }; root: string; virtualSize: number }; templates?: TemplateCache; data?: { virtualSize: number }[] },
  req: FastStartRequest, tscKhz: number | undefined,
): TemplateShape | string {
  // A build keeps its root overlay as a layer: it must sit on the unit's image, not on a template's.
  if (req.cold || req.keepRoot || !ctx.templates) return '';
  const boot = ctx.image.boot;
  if (boot.kind !== 'kernel') return 'firmware-booted images always boot';
  // Both are disks a template's guest would have to see at their final size before it mounts them: such long jobs boot.
  if (req.scratchBytes) return 'a job with a scratch disk boots';
  if (req.tty) return 'an interactive shell boots';
  if (req.rootBytes && req.rootBytes > ctx.image.virtualSize) return 'a job with a larger root disk boots';
  return {
    accel: ctx.accel.accel, memoryMiB: req.memoryMiB, cpus: req.cpus, boot, root: ctx.image.root, virtualSize: ctx.image.virtualSize,
    app: Boolean(req.app), data: (ctx.data ?? []).map((d) => d.virtualSize), network: Boolean(req.network), tscKhz, cpuModel: guestCpuModel(ctx.accel.accel), qemu: qemuIdentity(),
    // A VM of a multi-VM job: its template has a segment NIC too (absent otherwise, so other templates keep their keys).
    ...(req.segment ? { segment: true } : {}),
  };
}

/**
 * The line that wakes a clone (guest/agent): the host's clock (ns), a fresh seed
 * for its RNG, its output disk's size in sectors (the guest waits to see it), and
 * the length of the archive on its padded input disk.
 */
export function goLine(nowMs: number, seed: Buffer, outputSectors: number, inputBytes: number): string {
  return `go ${BigInt(nowMs) * 1_000_000n} ${seed.toString('hex')} ${outputSectors} ${inputBytes}\n`;
}

export const READY_TIMEOUT_MS = 60_000;

/** Pads a read-only disk to what the template's guest saw; its own length before. */
async function padTo(path: string, bytes: number, what: string): Promise<number> {
  const size = statSync(path).size;
  if (size > bytes) throw new TemplateUnavailable(`the ${what} (${size} bytes) is larger than a template's (${bytes})`);
  await truncate(path, bytes);
  return size;
}

export interface RestoreContext {
  id: string;
  paths: InstancePaths;
  clock: PhaseClock;
  templates?: TemplateCache;
}

/**
 * Starts a job as a clone of its template: the job's disks (its root overlay on
 * the template's), RAM mapped copy-on-write from the template (a checkpointable
 * job's: a copy of it, its own), the saved state
 * loaded, the output disk grown to the job's size, then go. Resolves once the
 * agent is ready; any failure rejects with the VM gone, for a cold boot instead.
 */
export async function restoreInstance(ctx: RestoreContext, job: PrepareRequest & { checkpointable?: boolean }, shape: TemplateShape, o: { driver: HypervisorDriver; user?: QemuUser; hooks: StreamHooks; segmentSocket?: string }): Promise<Started> {
  ctx.clock.mark('templating');
  const t = await obtainTemplate(ctx.templates!, shape);
  ctx.clock.mark('templated');
  const p = ctx.paths;
  await prepareInstance({ root: t.root, virtualSize: shape.virtualSize }, job, p);
  const sizes = await fitCloneDisks(p, shape);
  // A checkpointable job's RAM starts as a copy of the template's, shared into a file of its own.
  const ownMemory = job.checkpointable ? await makeOwnMemory(p, shape.memoryMiB, t.memory) : undefined;
  if (o.user) await handInstanceTo(p, o.user);
  ctx.clock.mark('prepared');
  const spec = templateVmSpec(shape, 'clone', { name: ctx.id, paths: p, memory: ownMemory ?? t.memory, ownMemory: Boolean(ownMemory), template: t, user: o.user, segmentSocket: o.segmentSocket });
  const vm = await o.driver.launch(spec);
  let started: Started | undefined;
  try {
    started = { ...attachStreams(vm, spec, p, ctx.clock, o.hooks), parent: t.root };
    await loadVmState(vm.qmp, { ignoreShared: true, timeoutMs: READY_TIMEOUT_MS });
    return await wakeClone(started, t.key, sizes);
  } catch (e) {
    await vm.stop(500);
    await started?.sinks;
    throw e;
  }
}

/** A clone's job disks made to fit what its template saw: read-only ones padded, the output a whole number of sectors. Their sizes before. */
export async function fitCloneDisks(p: Pick<InstancePaths, 'input' | 'app' | 'output'>, shape: Pick<TemplateShape, 'app'>): Promise<{ inputBytes: number; outBytes: number }> {
  const inputBytes = await padTo(p.input, TemplateDiskBytes.input, 'input disk');
  if (shape.app) await padTo(p.app, TemplateDiskBytes.app, 'app disk');
  const outBytes = Math.floor(statSync(p.output).size / 512) * 512;
  await truncate(p.output, outBytes);
  return { inputBytes, outBytes };
}

/**
 * Lets a clone whose state is loaded (paused) run its job: its output disk
 * grown to the job's, go, and the agent ready. On failure the caller stops it.
 */
export async function wakeClone(started: Started, key: string, sizes: { inputBytes: number; outBytes: number }): Promise<Started> {
  const { vm } = started;
  // A resize costs the guest an interrupt, a uevent and a kernel message: only for a job whose cap is not the default.
  if (sizes.outBytes !== TemplateDiskBytes.output) await vm.qmp.execute('block_resize', { device: 'out', size: sizes.outBytes });
  await vm.qmp.execute('cont');
  vm.ports.get(PortName.ctl)!.write(goLine(Date.now(), randomBytes(32), sizes.outBytes / 512, sizes.inputBytes));
  let timer: NodeJS.Timeout | undefined;
  const ok = await Promise.race([started.ready, new Promise<boolean>((r) => { timer = setTimeout(() => r(false), READY_TIMEOUT_MS); })]);
  clearTimeout(timer);
  if (!ok) throw new TemplateUnavailable(`the guest restored from template ${key} did not become ready${vm.stderrTail() ? `: ${vm.stderrTail()}` : ''}`);
  return started;
}
