import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, open, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createServer, type Socket } from 'node:net';
import { PortName } from '../../../guest/protocol.js';
import { VmwuError } from '../../errors.js';
import { createImage, createOverlay } from '../../image/qemu-img.js';
import { digestFile } from '../../store/blobs.js';
import { writeFileDurableSync } from '../../store/durable.js';
import { diskBytes } from '../../store/temp-files.js';
import { qemuDriver, type HypervisorDriver } from '../../vm/driver.js';
import type { RunningVm } from '../../vm/launch.js';
import { chmodDirNoFollow } from '../../store/private-dir.js';
import { openWayTo, type QemuUser } from '../../vm/qemu-user.js';
import type { Accel, VmSpec } from '../../vm/spec.js';
import { SEGMENT_TEMPLATE_MAC } from '../../vm/job-segment.js';
import { saveVmState, stateCap } from '../../vm/vm-state.js';
import { ControlPort } from '../control-port.js';
import { dataDiskPath, handInstanceTo, instancePaths, instanceWiring, makeInstanceDirs, removeInstanceFiles, type InstancePaths } from '../instance.js';
import { CONSOLE_CAP, sinkToFile } from '../logsink.js';
import { instanceDisks, outputDiskBytes } from '../prepare.js';
import { builtinDefaults } from '../../config.js';
import type { NodeDirs } from '../node-dirs.js';
import { withNodeLock, NodeLockTimeout } from '../node-lock.js';
import { recordTemplateStore, templateUnneeded } from './template-stores.js';
import { writeBootStub } from './boot-stub.js';
import { isNoSpace } from '../../store/no-space.js';
import { storePaths } from '../../store/home.js';
import { CacheFull, processCacheUse, type CacheUse } from '../node-cache.js';

/**
 * Fast start (docs/architecture.md, "Fast start"): a VM booted once until its
 * agent is idle and waiting, before it has seen any job disk, then saved: its
 * RAM stays in a file, its device state is a few KB, its root filesystem is an
 * overlay the guest has mounted. A job restores a clone of it with its own disks,
 * RAM mapped copy-on-write from the template's file, instead of booting.
 *
 * Templates are node-local (beside the blob cache): RAM is mapped from the file,
 * and a template is only good for the QEMU that saved it.
 */

/** What a template's guest saw of the job disks: a clone's read-only disks are padded to these sizes (a read-only disk cannot be resized). */
export const TemplateDiskBytes = {
  input: 64 * 1024 ** 3,
  app: 64 * 1024 ** 3,
  /** Writable: a clone whose job has another output cap resizes it after loading; most have the default. */
  output: outputDiskBytes(builtinDefaults.maxOutputBytes),
} as const;

/** Bumped when what a template holds or how it is made changes: older ones are then never matched. */
const TEMPLATE_FORMAT = 3;

/** Everything a template depends on. Paths of blobs name their digests. */
export interface TemplateShape {
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  boot: { kind: 'kernel'; kernel: string; initrd: string; cmdline: string };
  /** The image the guest's root overlay sits on (a base's root or a unit's top layer). */
  root: string;
  virtualSize: number;
  app: boolean;
  /** The virtual sizes of its dataset disks (src/run/prepare.ts dataDiskBytes): placeholders in the template, overlays of the job's datasets in a clone. */
  data: number[];
  network: boolean;
  /** A VM of a multi-VM job: a segment NIC (src/vm/job-segment.ts), its MAC the template's until the clone sets its own. */
  segment?: true;
  tscKhz?: number;
  /** The guest's CPU model (src/vm/cpu.ts): a saved state loads only into the same one. */
  cpuModel: string;
  /** The QEMU build (src/vm/host.ts qemuIdentity). */
  qemu: string;
}

/** A template's name: a digest of its shape. Any change of input is another template; a stale one is never matched. Pure. */
export function templateKey(shape: TemplateShape): string {
  return createHash('sha256').update(JSON.stringify({ format: TEMPLATE_FORMAT, ...shape })).digest('hex').slice(0, 32);
}

/** The kernel argument that makes the agent wait for the host's go (guest/agent). */
export const WAIT_ARG = 'vmwu.wait=1';

/**
 * The VM of a template (RAM shared into its file) or of one of its clones (RAM
 * mapped privately from it, or shared into a copy of its own, waiting for the saved state). Both come from here:
 * devices, their order and the memory backend must match exactly. Pure.
 */
export function templateVmSpec(shape: TemplateShape, role: 'template' | 'clone',
  f: { name: string; paths: InstancePaths; memory: string; ownMemory?: boolean; template: Pick<Template, 'state' | 'bootStub'>; user?: QemuUser; segmentSocket?: string }): VmSpec {
  const p = f.paths;
  if (shape.segment && !f.segmentSocket) throw new Error('a segment template or clone needs its segment socket');
  return {
    name: f.name, accel: shape.accel, memoryMiB: shape.memoryMiB, cpus: shape.cpus,
    boot: { ...shape.boot, cmdline: `${shape.boot.cmdline} ${WAIT_ARG}`.trim() },
    disks: instanceDisks(p, shape.app, false, shape.data.length), ...instanceWiring(p),
    network: shape.network, tscKhz: shape.tscKhz, cpuModel: shape.cpuModel, user: f.user,
    memoryFile: { path: f.memory, shared: role === 'template' || Boolean(f.ownMemory) },
    ...(shape.segment ? { segment: { socket: f.segmentSocket!, mac: SEGMENT_TEMPLATE_MAC } } : {}),
    ...(role === 'clone' ? { incoming: { state: f.template.state }, holdOnShutdown: true, bootStub: f.template.bootStub } : {}),
  };
}

/** A template's files. */
export interface Template {
  key: string;
  dir: string;
  /** The device state (QEMU's migration stream, RAM left out). */
  state: string;
  /** The guest's RAM. */
  memory: string;
  /** The root overlay the template's guest has mounted; clones' overlays sit on it. */
  root: string;
  /** A clone's `-kernel` and `-initrd`: the kernel's boot header and an empty file (src/run/fast-start/boot-stub.ts). */
  bootStub: { kernel: string; initrd: string };
}

interface TemplateMeta {
  format: number;
  key: string;
  shape: TemplateShape;
  createdAt: string;
  bootMs: number;
  state: { digest: string; bytes: number };
  /** A clone never writes the file (it maps it privately); a change time that moved means something did. */
  memory: { bytes: number; ctimeMs: number };
}

function templateAt(dir: string, key: string): Template {
  return { key, dir, state: join(dir, 'state'), memory: join(dir, 'memory'), root: join(dir, 'root.qcow2'), bootStub: { kernel: join(dir, 'kernel-header'), initrd: join(dir, 'initrd-empty') } };
}

/** Why no template could be had: the job boots cold, and its record says why. */
export class TemplateUnavailable extends Error {}

/** Where this host's templates live, and how to make one. */
export interface TemplateCache {
  /** <node cache>/templates */
  dir: string;
  /** Where a template's boot puts its scratch disks and sockets. */
  instances: string;
  /** The store whose jobs use it (recorded in each template: src/run/fast-start/template-stores.ts). */
  store: string;
  user?: QemuUser;
  driver: HypervisorDriver;
  /** The job's use of the node cache (src/run/node-cache.ts): holds the template while the job runs; without it, the process's own. */
  use?: CacheUse;
}

/** This host's template cache, beside its blob cache. */
export function templateCache(dirs: NodeDirs, store: string, user: QemuUser | undefined, driver: HypervisorDriver = qemuDriver, use?: CacheUse): TemplateCache {
  return { dir: join(dirs.cache, 'templates'), instances: dirs.instances, store, user, driver, use: use ?? processCacheUse(dirs.cache, store) };
}

/**
 * The room a template of `shape` is given in the node cache before it is made:
 * its memory file at most the guest's RAM, plus its root overlay and state. Pure.
 */
export function templateBytesBound(shape: Pick<TemplateShape, 'memoryMiB'>): number {
  return (shape.memoryMiB + 16) * 1024 ** 2;
}

/** A template that failed to be made is not tried again for this long: a base whose agent cannot wait would cost every job a boot, and a passing failure (a host too busy to boot in time) should not cost fast start for long. */
const FAILED_RETRY_MS = 10 * 60 * 1000;
/** How long a job waits for another process making the same template before it boots cold. */
const MAKING_WAIT_MS = 180_000;
const IDLE_TIMEOUT_MS = 180_000;

function readTemplateMeta(t: Template): TemplateMeta {
  return JSON.parse(readFileSync(join(t.dir, 'template.json'), 'utf8')) as TemplateMeta;
}

/** Checks a template's files against its record (read already, or here); the reason it cannot be used, or undefined. */
export async function checkTemplate(t: Template, read?: TemplateMeta): Promise<string | undefined> {
  let meta: TemplateMeta;
  try {
    meta = read ?? readTemplateMeta(t);
  } catch (e) {
    return `its record is unreadable (${(e as Error).message})`;
  }
  if (meta.format !== TEMPLATE_FORMAT || meta.key !== t.key) return 'its record is of another template';
  try {
    const st = statSync(t.memory);
    if (st.size !== meta.memory.bytes || st.ctimeMs !== meta.memory.ctimeMs) return 'its memory file was changed after it was saved';
    if (!existsSync(t.root)) return 'its root overlay is missing';
    if (!existsSync(t.bootStub.kernel) || !existsSync(t.bootStub.initrd)) return 'its clones\' kernel stub is missing';
    const size = statSync(t.state).size;
    // The state is a few KB: hashing it costs less than a guest that wakes from a damaged one.
    if (size !== meta.state.bytes || (await digestFile(t.state)) !== meta.state.digest) return 'its device state does not match its digest';
  } catch (e) {
    return `a file is missing (${(e as Error).message})`;
  }
  return undefined;
}

/**
 * The template for `shape`: this host's, checked, or made now (one process
 * makes it while the others wait). Throws TemplateUnavailable with the reason
 * when there is none to use; a damaged one is removed, so the next job makes it anew.
 */
export async function obtainTemplate(cache: TemplateCache, shape: TemplateShape): Promise<Template> {
  try {
    return await obtainHeld(cache, shape);
  } catch (e) {
    // A full cache is not the job's failure: it boots, and says why.
    if (isNoSpace(e)) throw new TemplateUnavailable(`the node cache's filesystem (${cache.dir}) is full: ${(e as Error).message}`);
    if (e instanceof CacheFull) throw new TemplateUnavailable(e.message);
    throw e;
  }
}

async function obtainHeld(cache: TemplateCache, shape: TemplateShape): Promise<Template> {
  const key = templateKey(shape);
  const t = templateAt(join(cache.dir, key), key);
  const use = cache.use ?? processCacheUse(dirname(cache.dir), cache.store);
  const name = `templates/${key}`;
  // Held before it is looked for: no eviction takes it from under this job (src/run/node-cache.ts).
  await use.hold(name);
  await mkdir(cache.dir, { recursive: true, mode: 0o700 });
  if (cache.user) openWayTo(join(cache.dir, '..', '..'), cache.dir);
  if (existsSync(join(t.dir, 'template.json'))) {
    const bad = await checkTemplate(t);
    if (!bad) {
      await markUsed(t);
      recordTemplateStore(t.dir, cache.store);
      return t;
    }
    await removeTemplate(t.dir);
    throw new TemplateUnavailable(`template ${key} is damaged: ${bad}; it was removed and will be made again`);
  }
  // Blobs linked beside one job (src/run/blob-source.ts, a full cache) are gone after it: no template may sit on them.
  const blobDirs = [join(dirname(cache.dir), 'blobs'), storePaths(cache.store).blobs];
  if (![shape.root, shape.boot.kernel, shape.boot.initrd].every((p) => blobDirs.includes(dirname(p)))) {
    throw new TemplateUnavailable(`template ${key} was not made: the job's blobs are neither in the node cache nor in the store (${dirname(shape.root)})`);
  }
  const failed = `${t.dir}.failed`;
  try {
    const st = statSync(failed);
    if (Date.now() - st.mtimeMs < FAILED_RETRY_MS) throw new TemplateUnavailable(`making template ${key} failed lately: ${readFileSync(failed, 'utf8').trim()}`);
  } catch (e) {
    if (e instanceof TemplateUnavailable) throw e;
  }
  try {
    const made = await withNodeLock(`${t.dir}.lock`, () => (existsSync(join(t.dir, 'template.json')) ? t : undefined), async () => {
      const noRoom = await use.makeRoom(name, templateBytesBound(shape));
      if (noRoom) throw new TemplateUnavailable(`template ${key} was not made: ${noRoom}`);
      try {
        await makeTemplate(cache, shape, t);
        return t;
      } catch (e) {
        const why = (e as Error).message;
        // Not a failure of the template's: the next job with room makes it.
        if (isNoSpace(e)) throw new TemplateUnavailable(`making template ${key} ran out of space in the node cache (${cache.dir}): ${why}`);
        await writeFile(failed, `${why}\n`).catch(() => undefined);
        throw new TemplateUnavailable(`making template ${key} failed: ${why}`);
      } finally {
        use.made(name);
      }
    }, { waitMs: MAKING_WAIT_MS });
    recordTemplateStore(made.dir, cache.store);
    return made;
  } catch (e) {
    if (e instanceof NodeLockTimeout) throw new TemplateUnavailable(`template ${key} is still being made by ${e.owner}`);
    throw e;
  }
}

async function markUsed(t: Template): Promise<void> {
  const now = new Date();
  await utimes(join(t.dir, 'template.json'), now, now).catch(() => undefined);
}

/** A unix socket that takes a connection and reads (and drops) whatever comes: a segment template's NIC's other end. */
async function nowhereSocket(path: string, user: QemuUser | undefined): Promise<{ path: string; close(): void }> {
  const peers: Socket[] = [];
  const server = createServer((s) => {
    peers.push(s);
    s.on('error', () => s.destroy()).resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  if (user) await chown(path, user.uid, user.gid);
  return { path, close: () => { server.close(); for (const s of peers) s.destroy(); } };
}

/** Removes a template directory; renamed away first, so no reader ever sees half of one. */
export async function removeTemplate(dir: string): Promise<void> {
  const trash = `${dir}.trash-${randomBytes(4).toString('hex')}`;
  try {
    await rename(dir, trash);
  } catch {
    return;
  }
  await rm(trash, { recursive: true, force: true });
}

/** Boots the template's VM until its agent says idle, saves it, and moves it into place. */
async function makeTemplate(cache: TemplateCache, shape: TemplateShape, final: Template): Promise<void> {
  const started = performance.now();
  const tmpDir = `${final.dir}.tmp-${randomBytes(4).toString('hex')}`;
  const t = templateAt(tmpDir, final.key);
  const id = `template-${randomBytes(4).toString('hex')}`;
  const p = instancePaths(join(cache.instances, id), { stdout: '/dev/null', stderr: '/dev/null', console: '' }, id);
  const consoleLog = join(p.scratch, 'console.log');
  let vm: RunningVm | undefined;
  let segmentSink: { path: string; close(): void } | undefined;
  try {
    await mkdir(tmpDir, { mode: 0o700 });
    // Clones run as QEMU's user, which passes through to the root overlay and the memory file (never lists them).
    if (cache.user) chmodDirNoFollow(tmpDir, 0o711);
    makeInstanceDirs(p);
    await createOverlay(t.root, shape.root, 'qcow2', shape.virtualSize);
    await sparseFile(t.memory, shape.memoryMiB * 1024 ** 2);
    await Promise.all([
      sparseFile(p.input, TemplateDiskBytes.input),
      sparseFile(p.output, TemplateDiskBytes.output),
      shape.app ? sparseFile(p.app, TemplateDiskBytes.app) : undefined,
      ...shape.data.map((bytes, n) => createImage(dataDiskPath(p, n), 'qcow2', bytes)),
    ]);
    if (cache.user) {
      await handInstanceTo(p, cache.user);
      for (const f of [t.root, t.memory]) await chown(f, cache.user.uid, cache.user.gid);
    }
    // A segment template's NIC is wired to nothing that answers: its guest never brings the link up.
    if (shape.segment) segmentSink = await nowhereSocket(join(p.sockDir, 'segment.sock'), cache.user);
    vm = await cache.driver.launch(templateVmSpec(shape, 'template', { name: id, paths: { ...p, overlay: t.root }, memory: t.memory, template: t, user: cache.user, segmentSocket: segmentSink?.path }));
    const running = vm;
    const sinks = Promise.all([
      sinkToFile(vm.console, consoleLog, CONSOLE_CAP),
      ...[PortName.stdout, PortName.stderr].map((n) => new Promise((r) => running.ports.get(n)!.resume().once('close', r))),
    ]);
    const idle = new Promise<void>((resolve, reject) => {
      const ctl = new ControlPort((msg) => {
        if (msg.event === 'idle') resolve();
        if (msg.event === 'fail') reject(new VmwuError('TEMPLATE', `the guest failed before it was idle: ${msg.args.join(' ')}`));
      });
      running.ports.get(PortName.ctl)!.setEncoding('utf8').on('data', (d: string) => ctl.push(d));
      void running.exited.then((x) => reject(new VmwuError('TEMPLATE',
        `the guest ended (${x.signal ?? `exit ${x.code}`}) without waiting for a job: its base's agent may predate fast start (rebuild the base)`)));
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new VmwuError('TEMPLATE', `the guest was not idle after ${IDLE_TIMEOUT_MS} ms`)), IDLE_TIMEOUT_MS);
    })]).finally(() => clearTimeout(timer));
    const saved = await saveVmState(vm.qmp, t.state, { socket: join(p.sockDir, 'state.sock'), user: cache.user, ignoreShared: true, maxBytes: stateCap(shape.memoryMiB) });
    await vm.stop(2000);
    await sinks;
    vm = undefined;
    await writeBootStub(shape.boot.kernel, t.bootStub);
    // Clones only read the root overlay and the kernel stub (QEMU's user by its group); only QEMU's user may open the memory file read-write (QEMU 7.2 asks that of a private mapping).
    for (const f of [t.root, t.bootStub.kernel, t.bootStub.initrd]) {
      if (cache.user) await chown(f, process.getuid!(), cache.user.gid);
      await chmod(f, cache.user ? 0o440 : 0o400);
    }
    const mem = await stat(t.memory);
    const meta: TemplateMeta = {
      format: TEMPLATE_FORMAT, key: final.key, shape, createdAt: new Date().toISOString(), bootMs: Math.round(performance.now() - started),
      state: { digest: await digestFile(t.state), bytes: saved.bytes },
      memory: { bytes: mem.size, ctimeMs: mem.ctimeMs },
    };
    writeFileDurableSync(join(tmpDir, 'template.json'), JSON.stringify(meta, null, 2) + '\n');
    // Recorded before it appears: another store's gc never sees it without its store.
    recordTemplateStore(tmpDir, cache.store);
    await rename(tmpDir, final.dir);
  } catch (e) {
    const tail = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
    if (tail && e instanceof Error) e.message += ` (console: ${tail})`;
    throw e;
  } finally {
    if (vm) await vm.stop(500);
    segmentSink?.close();
    await removeInstanceFiles(p);
    await rm(tmpDir, { recursive: true, force: true });
  }
}

/** A template `vmwu gc` removes, and why. */
export interface StaleTemplate {
  key: string;
  bytes: number;
  why: string;
}

/** Templates not used for this long are removed by gc; the next job that wants one makes it again in one boot. */
export const TEMPLATE_UNUSED_MS = 14 * 24 * 3600 * 1000;

/**
 * This host's templates that can no longer be used, or have not been: made for
 * another QEMU build, needed by no store (a removed unit or base, a removed store),
 * damaged, unused for TEMPLATE_UNUSED_MS; and leftovers of makers that died.
 * Removes them unless `dryRun`.
 */
export async function pruneTemplates(dir: string, o: PruneOptions): Promise<StaleTemplate[]> {
  if (!existsSync(dir)) return [];
  const now = o.nowMs ?? Date.now();
  const stale: StaleTemplate[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const leftover = /\.(tmp|trash)-[0-9a-f]{8}$/.test(name) || name.endsWith('.failed');
    let why: string | undefined;
    const key = name.replace(/\.(tmp|trash)-[0-9a-f]{8}$|\.failed$|\.lock$/, '');
    // A job restores from it, or is making it, now (src/run/node-cache.ts).
    if (o.held?.has(`templates/${key}`)) continue;
    if (leftover) {
      // A maker still at work has its lock; a failure marker ages out like its retry delay.
      if (name.endsWith('.failed') ? now - statSync(path).mtimeMs > FAILED_RETRY_MS : !existsSync(join(dir, `${key}.lock`))) why = 'left over';
    } else if (/^[0-9a-f]{32}$/.test(name)) {
      why = await templateStaleness(templateAt(path, name), o, now);
    }
    if (!why) continue;
    stale.push({ key: name, bytes: diskBytes(path), why });
    if (!o.dryRun) await removeTemplate(path);
  }
  return stale;
}

interface PruneOptions {
  /** The store gc runs for: templates of other stores are only removed when those are gone (template-stores.ts). */
  store: string;
  hasBlob(hex: string): boolean;
  qemu: string;
  nowMs?: number;
  dryRun?: boolean;
  /** Cache entries live processes hold (src/run/node-cache.ts): never removed. */
  held?: ReadonlySet<string>;
}

async function templateStaleness(t: Template, o: PruneOptions, now: number): Promise<string | undefined> {
  let meta: TemplateMeta;
  try {
    meta = readTemplateMeta(t);
  } catch {
    return 'damaged (no record)';
  }
  if (meta.format !== TEMPLATE_FORMAT || !meta.shape) return 'of an older format';
  if (meta.shape.qemu !== o.qemu) return 'made by another QEMU build';
  const blobs = [meta.shape.root, meta.shape.boot.kernel, meta.shape.boot.initrd].map((p) => basename(p)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  const unneeded = templateUnneeded(t.dir, o.store, blobs.every((b) => o.hasBlob(b)), { dryRun: o.dryRun });
  if (unneeded) return unneeded;
  const bad = await checkTemplate(t, meta);
  if (bad) return `damaged: ${bad}`;
  if (now - statSync(join(t.dir, 'template.json')).mtimeMs > TEMPLATE_UNUSED_MS) return 'unused for 14 days';
  return undefined;
}

async function sparseFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}
