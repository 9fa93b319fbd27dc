import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { builtinDefaults } from '../config.js';
import { VmwuError } from '../errors.js';
import { findUnit, layerByDigest, listUnits, type Layer } from '../unit/records.js';
import { findBase } from '../store/bases.js';
import { digestString, type Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { writeBundle, type BundleBlobSource } from './archive.js';
import { checkErofsImage } from '../data/erofs-image.js';
import { requireDataset, type Dataset } from '../data/records.js';
import { formatDatasetRef, parseDatasetRef } from '../data/ref.js';
import { BUNDLE_FORMAT, checkManifest, DATASETS_SINCE, encodeManifest, type BundleBlob, type BundleManifestBody } from './manifest.js';
import { renderOvf, type OvfBootFile, type OvfDisk } from './ovf.js';
import { checkChainLink, qcow2Info } from './qcow.js';
import { signBundle } from '../sign/bundle-signature.js';

/** Writing a unit to a `.vmwu` bundle file (`vmwu export`), with its layers and, on request, its base and datasets, so another store can import it. */

export const PRODUCER = 'vmwu 0.1.0';

export interface ExportOptions {
  out?: string;
  withBase?: boolean;
  /** Carry the datasets the unit's `data:` names, so a store without them can run it. */
  withData?: boolean;
  /** A private key (`vmwu key generate`): the bundle is signed, in `FILE.sig`, as `cosign sign-blob` signs. */
  sign?: string;
  /** Called once with the total, then with each chunk's size. */
  onStart?(totalBytes: number, blobs: number): void;
  onProgress?(bytes: number): void;
  signal?: AbortSignal;
}

export interface ExportResult {
  file: string;
  bytes: number;
  blobs: number;
  withBase: boolean;
  /** The signature file written beside the bundle, with `sign`. */
  signature?: string;
  /** The datasets carried (NAME:VERSION), or, without withData, the ones the importing store must have. */
  datasets: { carried: string[]; needed: string[] };
}

/** What a unit ships as, in a bundle file or a registry: its manifest, OVF descriptor and blobs, in manifest order. */
export interface UnitContents {
  body: BundleManifestBody;
  manifest: string;
  ovf: string;
  blobs: BundleBlobSource[];
  createdAt: Date;
  /** The datasets its `data:` names, as NAME:VERSION. */
  dataRefs: string[];
}

/**
 * A unit's contents, checked by the same rules the importer applies, so that nothing
 * is shipped that would be refused: its layers (and, with `withBase`, the base's
 * kernel, initrd and root; with `withData`, its datasets).
 */
export async function unitContents(store: Store, ref: string, o: { withBase?: boolean; withData?: boolean; unitTime?: boolean } = {}): Promise<UnitContents> {
  const unit = findUnit(store.db, ref);
  if (!unit) {
    const names = listUnits(store.db).map((u) => `${u.name}:${u.version}`);
    throw new VmwuError('NO_UNIT', `no unit "${ref}"`, names.length ? `known units: ${names.join(', ')}` : 'build one with `vmwu build DIR`');
  }
  const base = findBase(store.db, unit.baseDigest);
  if (!base) throw new VmwuError('NO_BASE', `unit ${unit.name}:${unit.version} needs base ${unit.base} (${unit.baseDigest}), which is no longer in the store`, 'rebuild the base, or remove the unit');
  const withBase = Boolean(o.withBase);

  const layers: Layer[] = unit.chain.map((d) => {
    const l = layerByDigest(store.db, d);
    if (!l) throw new VmwuError('BROKEN_UNIT', `unit ${unit.name}:${unit.version} names layer ${d}, which has no record in the store`, 'rebuild the unit with `vmwu build`');
    return l;
  });
  const need = (digest: Digest, what: string): BundleBlobSource => {
    const path = store.blobs.path(digest);
    if (!existsSync(path)) throw new VmwuError('BLOB_MISSING', `${what} ${digest} is missing from the store`, 'rebuild the unit (and its base) and export again');
    return { digest, size: statSync(path).size, path };
  };
  const layerBlobs = layers.map((l) => need(l.digest, 'layer'));
  const rootBlob = need(base.root, `root disk of base ${base.name}`);
  const bootBlobs: (BundleBlobSource & { role: 'kernel' | 'initrd' })[] = [];
  if (base.kernel) bootBlobs.push({ ...need(base.kernel, `kernel of base ${base.name}`), role: 'kernel' });
  if (base.initrd) bootBlobs.push({ ...need(base.initrd, `initrd of base ${base.name}`), role: 'initrd' });
  const dataRefs = (unit.data ?? []).map((t) => parseDatasetRef(t, `unit ${unit.name}:${unit.version} data`));
  const datasets: Dataset[] = o.withData ? dataRefs.map((r) => requireDataset(store.db, r)) : [];
  const dataBlobs = datasets.map((d) => {
    const b = need(d.digest, `image of dataset ${d.name}:${d.version}`);
    checkErofsImage(b.path, `the image of dataset ${d.name}:${d.version}`, 'BROKEN_DATASET');
    return b;
  });

  // The same checks the importer makes, on the source: fail here rather than ship a bundle nobody can import.
  const disks: OvfDisk[] = [];
  for (const [i, l] of layers.entries()) {
    const info = await qcow2Info(layerBlobs[i]!.path, `layer ${l.digest}`, 'BROKEN_UNIT');
    checkChainLink(info, `layer ${l.digest}`, l.parent, 'BROKEN_UNIT');
    disks.push({ digest: l.digest, size: layerBlobs[i]!.size, virtualSize: info.virtualSize, role: 'layer', kind: l.kind, packages: l.packages, included: true });
  }
  const rootInfo = await qcow2Info(rootBlob.path, `root disk of base ${base.name}`, 'BROKEN_UNIT');
  checkChainLink(rootInfo, `root disk of base ${base.name}`, null, 'BROKEN_UNIT');
  disks.push({ digest: base.root, size: rootBlob.size, virtualSize: rootInfo.virtualSize, role: 'root', included: withBase });

  const boot: OvfBootFile[] = bootBlobs.map((b) => ({ role: b.role, digest: b.digest, size: b.size, included: withBase }));
  const ovf = renderOvf({
    unit, base, disks, bootFiles: boot, producer: PRODUCER,
    memoryMiB: unit.resources.memoryMiB ?? builtinDefaults.memoryMiB, cpus: unit.resources.cpus ?? builtinDefaults.cpus,
  });
  const shipped: BundleBlobSource[] = [...layerBlobs, ...(withBase ? [...bootBlobs, rootBlob] : []), ...dataBlobs];
  const roles: BundleBlob['role'][] = [
    ...layerBlobs.map(() => 'layer' as const), ...(withBase ? [...bootBlobs.map((b) => b.role), 'root' as const] : []), ...dataBlobs.map(() => 'dataset' as const),
  ];
  // `unitTime`: the unit's own time, so the same unit always ships as the same bytes (a push again is a no-op).
  const createdAt = o.unitTime ? new Date(unit.createdAt) : new Date();
  const body: BundleManifestBody = {
    // The lowest version that holds it: a bundle without datasets stays readable by a vmwu that knows only version 1.
    format: BUNDLE_FORMAT, formatVersion: datasets.length ? DATASETS_SINCE : 1, createdAt: createdAt.toISOString(), producer: PRODUCER, withBase,
    unit, layers, base, ...(datasets.length ? { datasets } : {}),
    ovf: { digest: digestString(ovf), size: Buffer.byteLength(ovf) },
    blobs: shipped.map((b, i) => ({ digest: b.digest, size: b.size, role: roles[i]! })),
  };
  checkManifest(body);
  return { body, manifest: encodeManifest(body), ovf, blobs: shipped, createdAt, dataRefs: dataRefs.map(formatDatasetRef) };
}

/**
 * `vmwu export`: one file holding the unit's manifest, an OVF descriptor and its
 * layers (and, with `withBase`, the base's kernel, initrd and root).
 */
export async function exportUnit(store: Store, ref: string, o: ExportOptions = {}): Promise<ExportResult> {
  const c = await unitContents(store, ref, o);
  const out = resolve(o.out ?? `${c.body.unit.name}-${c.body.unit.version}.vmwu`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new VmwuError('BAD_VALUE', `-o ${out} is a directory`, 'give a file name, e.g. -o unit.vmwu');
  if (!existsSync(dirname(out))) throw new VmwuError('BAD_VALUE', `-o ${out}: the directory ${dirname(out)} does not exist`, 'create it first, or write the bundle elsewhere');
  o.onStart?.(c.blobs.reduce((n, b) => n + b.size, 0), c.blobs.length);
  const { bytes } = await writeBundle({ out, manifest: c.manifest, ovf: c.ovf, blobs: c.blobs, mtime: c.createdAt, onProgress: o.onProgress, signal: o.signal });
  const signature = o.sign ? await signBundle(out, o.sign) : undefined;
  const refs = c.dataRefs;
  return {
    file: out, bytes, blobs: c.blobs.length, withBase: c.body.withBase, ...(signature ? { signature } : {}),
    datasets: o.withData ? { carried: refs, needed: [] } : { carried: [], needed: refs },
  };
}
