import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { byDigest, formatImageRef } from '../oci/reference.js';
import type { RegistryOptions } from '../oci/registry-options.js';
import { copyToLayout, inspectRaw } from '../oci/skopeo.js';
import { digestFile, hexOf, type Digest } from '../store/blobs.js';
import { noSpaceError } from '../store/no-space.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { verifyPushed } from '../sign/image-signature.js';
import { checkArtifactLayers, readUnitArtifact } from './artifact.js';
import { checkTarget, installBundle, type ImportResult } from './import.js';
import { decodeManifest } from './manifest.js';
import { unitRef } from './registry-ref.js';

/**
 * `vmwu pull REF`: a unit pushed by `vmwu push` into this store. The manifest is read
 * first (and its signature checked, with `verify`), then only the blobs this store
 * lacks are fetched, each verified against its digest; the unit is registered as an
 * import is, all or nothing.
 */

export interface PullUnitOptions {
  registry?: RegistryOptions;
  /** A public key: the manifest must carry a signature by it, checked before any blob is fetched. */
  verify?: string;
  force?: boolean;
  onStep?(what: string): void;
}

export interface PullUnitResult extends ImportResult {
  ref: string;
  manifest: Digest;
  /** Blobs fetched, and those the store had. */
  fetched: number;
  signature?: string;
}

export async function pullUnit(store: Store, target: string, o: PullUnitOptions = {}): Promise<PullUnitResult> {
  const ref = unitRef(target);
  const label = formatImageRef(ref);
  const registry = o.registry ?? {};
  const work = makeWorkDir(store.paths, 'pull-');
  try {
    o.onStep?.(`resolving ${label}`);
    const raw = await inspectRaw(ref, registry, work);
    const { config, layers } = readUnitArtifact(raw, label);
    // The blobs are fetched by this digest: a tag moved meanwhile cannot swap the manifest checked here.
    const digest: Digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    let signature: string | undefined;
    if (o.verify) {
      o.onStep?.('verifying the signature');
      signature = (await verifyPushed(ref, digest, o.verify, registry, work)).signature;
    }
    // Blobs the store has are offered to skopeo where it looks first, so it fetches only the others.
    const blobs = join(work, 'blobs');
    mkdirSync(join(blobs, 'sha256'), { recursive: true });
    let present = 0;
    for (const l of layers) {
      if (!store.blobs.has(l.digest) || sizeOf(store.blobs.path(l.digest)) !== l.size) continue;
      symlinkSync(store.blobs.path(l.digest), join(blobs, 'sha256', hexOf(l.digest)));
      present++;
    }
    o.onStep?.(`fetching ${layers.length - present} of ${layers.length} blob(s)`);
    await copyToLayout(byDigest(ref, digest), registry, join(work, 'layout'), blobs, work);
    const at = (d: Digest) => join(blobs, 'sha256', hexOf(d));
    const m = decodeManifest(readFileSync(at(config.digest)));
    checkArtifactLayers(layers, m, label);
    checkTarget(store, m, Boolean(o.force));
    // skopeo checked each digest as it fetched; hashed again here, as every blob entering the store is.
    const staged = new Map<Digest, string>();
    for (const b of m.blobs) {
      if (lstatSync(at(b.digest)).isSymbolicLink()) continue;
      const actual = await digestFile(at(b.digest));
      if (actual !== b.digest) throw new VmwuError('IMAGE_DIGEST', `${b.role} blob ${b.digest} of ${label} hashes to ${actual}`, 'nothing was imported; pull again');
      staged.set(b.digest, at(b.digest));
    }
    o.onStep?.('registering');
    const bytes = [...staged.keys()].reduce((n, d) => n + (m.blobs.find((b) => b.digest === d)?.size ?? 0), 0);
    const r = await installBundle(store, m, staged, { force: Boolean(o.force), bytes });
    return { ...r, ref: label, manifest: digest, fetched: staged.size, ...(signature ? { signature } : {}) };
  } catch (e) {
    throw noSpaceError(e, { dir: store.paths.tmp, store: store.paths.root });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function sizeOf(path: string): number {
  try {
    return lstatSync(path).size;
  } catch {
    return -1;
  }
}
