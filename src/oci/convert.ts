import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { convertImage } from '../image/qemu-img.js';
import { digestString, hexOf, type Digest } from '../store/blobs.js';
import { closeMemoryStage, openMemoryStage } from '../store/memory-stage.js';
import type { Store } from '../store/store.js';
import { makeEmptyExt4, runDebugfs, settleExt4 } from './debugfs.js';
import { FsTree } from './fs-tree.js';
import { readLayer, type LayerLimits, type LayerSource } from './layer-reader.js';
import { layerScript } from './layer-script.js';
import { changedClusters, hashClusters, writeOverlay, type ClusterHashes } from './overlay-diff.js';

/**
 * An image's layers made into vmwu's: the first an ext4 root on its own, each
 * further one a qcow2 overlay holding only the clusters it changed, each keyed by its
 * diff_id and everything below it, so images that share lower layers share these.
 * Layers already in the store are not converted again.
 */

/** The size of every image's root filesystem: sparse, so it costs only what is written. */
export const IMAGE_ROOT_BYTES = 16 * 1024 ** 3;
/** Changes whenever a layer would be written differently: it is part of every key. */
const CONVERTER = 'vmwu-oci-ext4/3';
const MAX_ENTRIES = 2_000_000;

/** Each layer's key: its diff_id on the key of the layer below. Pure. */
export function layerKeys(diffIds: string[], rootBytes: number): string[] {
  const keys: string[] = [];
  for (const d of diffIds) keys.push(digestString(JSON.stringify({ converter: CONVERTER, rootBytes, below: keys[keys.length - 1] ?? null, diffId: d })));
  return keys;
}

/** A filesystem UUID made from a key, so a layer's bytes depend on nothing else. */
function uuidOf(key: string): string {
  const h = hexOf(key);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Mirrors into `tree` what layers already converted hold, from the image's own
 * blobs (skopeo has them all): their listings, nothing written.
 */
export async function mirrorLayers(tree: FsTree, sources: LayerSource[], rootBytes = IMAGE_ROOT_BYTES): Promise<FsTree> {
  if (tree.children([]).length === 0) tree.add(['lost+found'], 'dir');
  for (const s of sources) layerScript(tree, { entries: await readLayer(s, { maxBytes: rootBytes, maxEntries: MAX_ENTRIES }), layer: s.label, valueFile: () => '' });
  return tree;
}

export interface ConvertedLayer {
  key: string;
  digest: Digest;
  /** The layer below (null for the first, which is the root). */
  parent: Digest | null;
  diffId: string;
  size: number;
  /** Converted now, rather than found in the store. */
  fresh: boolean;
}

export interface ConvertOptions {
  /** The blob of a layer already converted under this key, if the store has it. */
  find(key: string): Digest | undefined;
  work: string;
  rootBytes?: number;
  progress?(step: string, done: number, total: number): void;
}

/** The layers, bottom first, and the filesystem they make when any was converted now. */
export async function convertLayers(store: Store, sources: LayerSource[], o: ConvertOptions): Promise<{ layers: ConvertedLayer[]; tree?: FsTree }> {
  const rootBytes = o.rootBytes ?? IMAGE_ROOT_BYTES;
  const keys = layerKeys(sources.map((s) => s.diffId), rootBytes);
  const found = keys.map((k) => { const d = o.find(k); return d && store.blobs.has(d) ? d : undefined; });
  const out: ConvertedLayer[] = [];
  const first = found.findIndex((d) => !d);
  for (let i = 0; i < (first === -1 ? sources.length : first); i++) {
    out.push({ key: keys[i]!, digest: found[i]!, parent: out[i - 1]?.digest ?? null, diffId: sources[i]!.diffId, size: statSync(store.blobs.path(found[i]!)).size, fresh: false });
  }
  if (first === -1) return { layers: out };

  const limits: LayerLimits = { maxBytes: rootBytes, maxEntries: MAX_ENTRIES };
  const raw = join(o.work, 'root.raw');
  const tree = new FsTree();
  if (first === 0) {
    await makeEmptyExt4(raw, rootBytes, uuidOf(keys[0]!));
    tree.add(['lost+found'], 'dir');
  } else {
    o.progress?.('reading the layers below', 0, sources.length);
    await convertImage(store.blobs.path(out[first - 1]!.digest), 'qcow2', raw, 'raw');
    await mirrorLayers(tree, sources.slice(0, first), rootBytes);
  }
  // A layer's files wait for debugfs in memory when the host has room for several times its blob:
  // that saves the disk the writing and its writeback stalls.
  const memory = openMemoryStage(8 * Math.max(...sources.slice(first).map((s) => statSync(s.blob).size)));
  const ctx: LayerWork = { store, work: o.work, raw, tree, limits, rootBytes, stages: memory ?? o.work };
  try {
    let before = first === 0 ? undefined : await hashClusters(raw);
    for (let i = first; i < sources.length; i++) {
      o.progress?.(sources[i]!.label, i, sources.length);
      const parent = out[i - 1]?.digest ?? null;
      const made = await convertLayer(ctx, sources[i]!, i, parent, before, i + 1 < sources.length);
      out.push({ key: keys[i]!, digest: made.digest, parent, diffId: sources[i]!.diffId, size: made.size, fresh: true });
      before = made.hashes;
    }
  } finally {
    if (memory) closeMemoryStage(memory);
    await rm(raw, { force: true });
    await rm(join(o.work, 'changed.raw'), { force: true });
  }
  return { layers: out, tree };
}

interface LayerWork {
  store: Store;
  work: string;
  /** The root filesystem as it stands, raw: debugfs writes it. */
  raw: string;
  tree: FsTree;
  limits: LayerLimits;
  rootBytes: number;
  stages: string;
}

/**
 * Applies one layer to the raw root and stores what changed as a blob: the
 * whole filesystem for the first layer, an overlay on `parent` for the others.
 * Returns the root's cluster hashes when a layer above will need them.
 */
async function convertLayer(c: LayerWork, src: LayerSource, i: number, parent: Digest | null, before: ClusterHashes | undefined, more: boolean): Promise<{ digest: Digest; size: number; hashes?: ClusterHashes }> {
  const stage = join(c.stages, `stage-${i}`);
  mkdirSync(stage);
  let values = 0;
  const lines = layerScript(c.tree, {
    entries: await readLayer(src, c.limits, stage), layer: src.label,
    valueFile: (v) => { const f = join(stage, `xattr-${++values}`); writeFileSync(f, v, { mode: 0o600 }); return f; },
  });
  const script = join(c.work, `layer-${i}.debugfs`);
  writeFileSync(script, lines.join('\n') + '\n', { mode: 0o600 });
  await runDebugfs(c.raw, script, src.label);
  await settleExt4(c.raw, src.label);
  await rm(stage, { recursive: true, force: true });
  await rm(script, { force: true });
  const hashes = parent || more ? await hashClusters(c.raw) : undefined;
  const qcow = join(c.work, `layer-${i}.qcow2`);
  if (!parent || !before || !hashes) await convertImage(c.raw, 'raw', qcow, 'qcow2', { stored: true });
  else await writeOverlay(c.raw, c.rootBytes, changedClusters(before, hashes), c.store.blobs.path(parent), hexOf(parent), qcow, join(c.work, 'changed.raw'));
  const blob = await c.store.blobs.putFile(qcow, { move: true });
  return { ...blob, hashes };
}
