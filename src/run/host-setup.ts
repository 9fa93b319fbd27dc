import { rmSync, statSync } from 'node:fs';
import { loadConfig } from '../config.js';
import { listBases, type Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import { settingsCache } from '../store/db.js';
import type { Store } from '../store/store.js';
import { decideAccel, type ProbeKernel } from '../vm/accel.js';
import { guestCpuModel } from '../vm/cpu.js';
import { canReach, qemuUser } from '../vm/qemu-user.js';
import type { Accel, VmSpec } from '../vm/spec.js';
import { ownedDirIn } from './owned-dirs.js';
import { nodeBlobCache, storeBlobSource, type BlobSource } from './blob-source.js';
import { digestOfBlobPath } from './checkpoint/format.js';
import type { JobTerms, RestoringHost } from './checkpoint/trust.js';
import { resumableHere, type ResumeFrom } from './checkpoint/resume.js';
import { openNodeDirs, type NodeDirs } from './node-dirs.js';
import { cacheUse, type CacheUse } from './node-cache.js';
import { dataDiskBytes, type DataDisk } from './prepare.js';
import { JobRequest } from './job-request.js';

/** How this host runs a job of the store: its node directories, the verified blobs it boots, its datasets, the accelerator, and what a checkpoint of it must agree with. */

/** The parts of a base an instance boots with. */
export type BootBase = Pick<Base, 'boot' | 'kernel' | 'initrd' | 'root' | 'cmdline' | 'virtualSize'>;

/** What an instance boots: verified files, all in one directory of their source. */
export interface BootImage {
  boot: VmSpec['boot'];
  /** The image the instance's overlay sits on: the base's root, or a unit's top layer. */
  root: string;
  virtualSize: number;
}

/** Resolves a base and a layer chain to verified files (the whole chain: each layer names its parent by file name). */
export async function resolveImage(source: BlobSource, base: BootBase, layers: Digest[] = []): Promise<BootImage> {
  // From the base up (layers are listed top first): a layer names its parent by file name, so a
  // node cache that gives up on a blob half way (src/run/blob-source.ts) has every parent of what it already gave.
  const root = await source.path(base.root);
  const chain: string[] = [];
  for (const l of [...layers].reverse()) chain.unshift(await source.path(l));
  const kernel = base.boot === 'kernel' && base.kernel && base.initrd ? { kernel: await source.path(base.kernel), initrd: await source.path(base.initrd) } : undefined;
  return {
    boot: kernel ? { kind: 'kernel', ...kernel, cmdline: base.cmdline } : { kind: 'bios' },
    root: chain[0] ?? root,
    virtualSize: base.virtualSize,
  };
}

/**
 * The job's own record of what it runs (src/run/checkpoint/trust.ts): what any
 * checkpoint of it must agree with to be restored as it. Undefined for
 * firmware-booted images, which cannot be checkpointed.
 */
export function jobTermsOf(image: BootImage, req: JobRequest, data: DataDisk[]): JobTerms | undefined {
  if (image.boot.kind !== 'kernel') return undefined;
  return {
    memoryMiB: req.memoryMiB, cpus: req.cpus, network: req.network ?? false, timeoutMs: req.timeoutMs, maxOutputBytes: req.maxOutputBytes,
    image: {
      kernel: digestOfBlobPath(image.boot.kernel), initrd: digestOfBlobPath(image.boot.initrd), root: digestOfBlobPath(image.root),
      virtualSize: image.virtualSize, cmdline: image.boot.cmdline,
    },
    ...(req.rootBytes ? { rootBytes: req.rootBytes } : {}),
    datasets: data.map((d) => ({ digest: digestOfBlobPath(d.path), diskBytes: d.virtualSize })),
    app: Boolean(req.app), ...(req.scratchBytes ? { scratchBytes: req.scratchBytes } : {}),
  };
}

/** What this host decides about a restore: its accelerator's CPU model. */
export function restoringHost(accel: Accel): RestoringHost {
  return { accel, cpuModel: guestCpuModel(accel) };
}

/**
 * Whether this host can go on from the checkpoint in `dir` as this job; else
 * why not (it then starts over, and its start record says why).
 */
export async function resumeHere(dir: string, terms: JobTerms | undefined, accel: Accel, source: BlobSource, logsFrom?: ResumeFrom['logsFrom']) {
  if (!terms) return { resumeRefused: 'a firmware-booted job cannot go on from a checkpoint; the job started over' };
  return resumableHere(dir, terms, restoringHost(accel), source, logsFrom);
}

/** A dataset's disk on this host: its blob, and the size the disk shows. */
export function dataDiskOf(name: string, path: string): DataDisk {
  return { name, path, virtualSize: dataDiskBytes(statSync(path).size) };
}

/** A job's datasets as this host's verified blobs. */
export async function resolveDatasets(source: BlobSource, datasets: JobRequest['datasets'] = []): Promise<DataDisk[]> {
  const out: DataDisk[] = [];
  for (const d of datasets) out.push(dataDiskOf(d.name, await source.path(d.digest)));
  return out;
}

/**
 * Where this host reads blobs from: the store itself when it is on a local disk;
 * a verified node-local copy when it is on a network filesystem, so that guests
 * do not read their disks over the network.
 */
export function blobSourceFor(store: Store, dirs: NodeDirs, use?: CacheUse): BlobSource {
  const user = qemuUser();
  if (store.fs.network) return nodeBlobCache(store.blobs.dir, dirs.cache, { user, use });
  // A QEMU user that cannot get into the store (root's home) reads hard links in the node cache; when its
  // filesystem is full, hard links beside the job's instances (removed with the job's use of the cache).
  if (user && !canReach(store.blobs.dir, user)) {
    const linkDir = use ? ownedDirIn(dirs.instances, 'blobs') : undefined;
    if (linkDir) use!.atRelease(() => rmSync(linkDir, { recursive: true, force: true }));
    return nodeBlobCache(store.blobs.dir, dirs.cache, { user, verified: storeBlobSource(store), use, linkDir });
  }
  return storeBlobSource(store);
}

/** The kernel the accelerator probe boots: the base's own, or any kernel base's for firmware-booted images. */
function probeKernel(store: Store, base: Base, image: BootImage): ProbeKernel | undefined {
  if (image.boot.kind === 'kernel') return { kernel: image.boot.kernel, initrd: image.boot.initrd, cmdline: base.cmdline, digest: base.kernel! };
  const k = listBases(store.db).find((b) => b.kernel && b.initrd);
  return k && { kernel: store.blobs.path(k.kernel!), initrd: store.blobs.path(k.initrd!), cmdline: k.cmdline, digest: k.kernel! };
}

/**
 * How this host runs a job of the store: its settings and node directories, the image's verified files, the accelerator,
 * and the job's use of the node cache (src/run/node-cache.ts), which holds what it took: release it when the job is over.
 */
export async function hostSetup(store: Store, base: Base, layers?: Digest[]) {
  const config = await loadConfig(store.paths.root);
  const dirs = openNodeDirs(config.scratch, store.paths.root);
  const cache = cacheUse(dirs.cache, store.paths.root);
  try {
    const image = await resolveImage(blobSourceFor(store, dirs, cache), base, layers);
    const accel = await decideAccel(settingsCache(store.db), probeKernel(store, base, image));
    return { config, dirs, image, accel, cache };
  } catch (e) {
    cache.release();
    throw e;
  }
}
