import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestModules, ImageTools } from '../../guest/protocol.js';
import { VmwuError } from '../errors.js';
import { guestDir } from '../paths.js';
import { convertLayers, IMAGE_ROOT_BYTES, mirrorLayers, type ConvertedLayer } from '../oci/convert.js';
import { FsTree } from '../oci/fs-tree.js';
import { imageFacts, type ImageFacts } from '../oci/image-facts.js';
import { chooseAmd64, isIndex } from '../oci/image-manifest.js';
import type { LayerSource } from '../oci/layer-reader.js';
import { readPulledImage } from '../oci/layout.js';
import { defaultBaseName, formatImageRef, parseImageRef } from '../oci/reference.js';
import type { RegistryOptions } from '../oci/registry-options.js';
import { copyToLayout, inspectRaw } from '../oci/skopeo.js';
import { baseTop, findBase, listBases, registerBase, type Base } from '../store/bases.js';
import { digestString, hexOf, type Digest } from '../store/blobs.js';
import { getSetting, putSetting } from '../store/db.js';
import { imageLayerByKey, insertImageLayer } from '../store/image-layers.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { buildBootParts, defaultCmdline, type BaseBuildProgress } from './tiny.js';

/**
 * `vmwu base pull REF`: a container image made into a base. skopeo fetches it (any
 * transport, the user's credentials and registries), each layer becomes a vmwu blob
 * (src/oci/convert.ts), and vmwu's kernel, initramfs and agent boot it: the image needs
 * none of its own. The base is registered, with its layers, in one transaction.
 */

export interface PullOptions {
  name?: string;
  /**
   * For pulls a build makes for its spec's `base:`: the same image already here under
   * another name is that base (not an error), and a default name that another base
   * holds gets the image's digest appended rather than taking it over.
   */
  forBuild?: boolean;
  registry?: RegistryOptions;
  progress?: BaseBuildProgress;
}

export interface PullResult {
  base: Base;
  layers: ConvertedLayer[];
  /** Layers converted by this pull (the others were in the store). */
  converted: number;
}

/** Where pulled images' blobs are kept, so that a layer is fetched once per store. */
function imageBlobDir(store: Store): string {
  return join(store.paths.cache, 'oci-blobs');
}

/** The guest side every image base boots with; a change to it makes new boot parts. */
function guestDigest(): string {
  const h = createHash('sha256');
  for (const f of ['init', 'agent', 'run-as.c', 'clone-helper.c']) h.update(readFileSync(join(guestDir, f)));
  return h.update(JSON.stringify(GuestModules)).digest('hex');
}

/** The kernel and initramfs image bases boot with: made once per guest version, then reused. */
async function imageBootParts(store: Store, work: string): Promise<{ kernel: Digest; initrd: Digest; size: number; version: string }> {
  const key = `image-boot-parts:${guestDigest()}`;
  const cached = getSetting(store.db, key);
  if (cached) {
    const p = JSON.parse(cached) as { kernel: Digest; initrd: Digest; size: number; version: string };
    if (store.blobs.has(p.kernel) && store.blobs.has(p.initrd)) return p;
  }
  const parts = await buildBootParts(store, work);
  const p = { kernel: parts.kernel.digest, initrd: parts.initrd.digest, size: parts.kernel.size + parts.initrd.size, version: parts.version };
  putSetting(store.db, key, JSON.stringify(p));
  return p;
}

/** An image's facts, from the tree its conversion made, a base with the same top, or its layers' listings. */
async function factsOf(store: Store, tree: FsTree | undefined, top: Digest, sources: LayerSource[]): Promise<ImageFacts> {
  if (tree) return imageFacts(tree);
  const same = listBases(store.db).find((b) => b.image && baseTop(b) === top);
  if (same?.image) return { shell: same.image.shell, packageManager: same.packageManager, ...(same.image.otherPackageManager ? { otherPackageManager: same.image.otherPackageManager } : {}) };
  return imageFacts(await mirrorLayers(new FsTree(), sources));
}

export async function pullImageBase(store: Store, refText: string, o: PullOptions = {}): Promise<PullResult> {
  const ref = parseImageRef(refText);
  const label = formatImageRef(ref);
  const registry = o.registry ?? {};
  const work = makeWorkDir(store.paths, 'base-');
  try {
    o.progress?.(`resolving ${label}`, 0, 4);
    const top = await inspectRaw(ref, registry, work);
    // Refused here, with the platforms it has; skopeo would only say it found none.
    if (isIndex(top)) chooseAmd64(top, label);
    o.progress?.('fetching (skopeo copy)', 1, 4);
    const blobDir = imageBlobDir(store);
    mkdirSync(blobDir, { recursive: true, mode: 0o700 });
    const layout = join(work, 'layout');
    await copyToLayout(ref, registry, layout, blobDir, work);
    const img = readPulledImage(layout, blobDir);
    if (img.manifest.layers.length === 0) throw new VmwuError('BAD_IMAGE', `${label} has no layers`);
    const sources: LayerSource[] = img.manifest.layers.map((l, i) => ({
      blob: img.layerBlobs[i]!, digest: l.digest, diffId: img.config.diffIds[i]!, compression: l.compression,
      label: `${label}: layer ${i + 1} of ${img.manifest.layers.length} (${l.digest.slice(0, 19)})`,
    }));
    o.progress?.('converting layers', 2, 4);
    const { layers, tree } = await convertLayers(store, sources, { work, find: (k) => imageLayerByKey(store.db, k)?.digest });
    const facts = await factsOf(store, tree, layers[layers.length - 1]!.digest, sources);
    o.progress?.('kernel, initramfs and register', 3, 4);
    const boot = await imageBootParts(store, work);
    const root = layers[0]!.digest;
    const above = layers.slice(1).map((l) => l.digest).reverse();
    const cmdline = `${defaultCmdline} ${ImageTools.cmdline}`;
    const image = { ref: label, manifest: img.manifestDigest, process: img.config.process, layers: above, shell: facts.shell, ...(facts.otherPackageManager ? { otherPackageManager: facts.otherPackageManager } : {}) };
    const manifest = { arch: 'x86_64', os: 'linux', boot: 'kernel', kernel: boot.kernel, initrd: boot.initrd, root, cmdline, image: { manifest: image.manifest, process: image.process, layers: above } };
    const digest = digestString(JSON.stringify(manifest));
    const same = findBase(store.db, digest);
    let name = o.name ?? defaultBaseName(ref);
    if (o.forBuild && same) return { base: same, layers, converted: layers.filter((l) => l.fresh).length };
    if (o.forBuild && findBase(store.db, name)) name = `${name}-${hexOf(img.manifestDigest).slice(0, 12)}`;
    if (same && same.name !== name) throw new VmwuError('BASE_EXISTS', `${label} is already in the store as base ${same.name}`, `use --base ${same.name}, or remove it first (vmwu base rm ${same.name})`);
    const base = store.db.transaction(() => {
      for (const l of layers) if (l.fresh) insertImageLayer(store.db, l);
      return registerBase(store.db, {
        name, digest, arch: 'x86_64', os: 'linux',
        description: `${label} on kernel ${boot.version}`, boot: 'kernel', kernel: boot.kernel, initrd: boot.initrd, root, cmdline,
        size: boot.size + layers.reduce((n, l) => n + l.size, 0), virtualSize: IMAGE_ROOT_BYTES, packageManager: facts.packageManager, image,
      });
    })();
    o.progress?.('done', 4, 4);
    return { base, layers, converted: layers.filter((l) => l.fresh).length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
