import { z } from 'zod';
import { VmwuError } from '../errors.js';
import type { Layer, UnitRecord } from '../unit/records.js';
import type { Base } from '../store/bases.js';
import type { Dataset } from '../data/records.js';
import { DATASET_NAME, DATASET_VERSION, formatDatasetRef, parseDatasetRef } from '../data/ref.js';
import { digestString, hexOf, type Digest } from '../store/blobs.js';

/**
 * The manifest of a `.vmwu` bundle: the first tar entry, read before any blob, so an
 * importer knows every digest and size before it writes a byte. See
 * docs/bundle-format.md.
 */

export const BUNDLE_FORMAT = 'vmwu-bundle';
/**
 * The newest format this vmwu reads. A bundle carries the lowest version that can
 * hold it, so one without datasets still imports into a vmwu that knows only 1.
 */
export const BUNDLE_VERSION = 2;
/** Version 2 added `datasets`. */
export const DATASETS_SINCE = 2;
export const MANIFEST_NAME = 'manifest.json';
export const OVF_NAME = 'unit.ovf';
/** Far above any real manifest or descriptor; keeps a forged header from making us buffer gigabytes. */
export const MAX_TEXT_ENTRY = 16 * 1024 * 1024;

export type BlobRole = 'layer' | 'kernel' | 'initrd' | 'root' | 'dataset';

export interface BundleBlob {
  digest: Digest;
  size: number;
  role: BlobRole;
}

export interface BundleManifestBody {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  createdAt: string;
  producer: string;
  withBase: boolean;
  unit: UnitRecord;
  /** The unit's layer rows, in chain order (top first). */
  layers: Layer[];
  base: Base;
  ovf: { digest: Digest; size: number };
  /** The datasets it carries (`--with-data`), in the order of the unit's `data:`. Format version 2. */
  datasets?: Dataset[];
  /** Every blob in the bundle, in tar order: layers top first, then kernel, initrd, root, then datasets. */
  blobs: BundleBlob[];
}

export interface BundleManifest extends BundleManifestBody {
  /** sha256 of the compact JSON of everything else, so any change to the manifest is caught. */
  digest: Digest;
}

export function blobEntryName(digest: string): string {
  return `blobs/sha256/${hexOf(digest)}`;
}

const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');
const Size = z.number().int().nonnegative();
// No ":" (it separates NAME:VERSION), no "/" or control characters (names end up in file names and XML).
const Label = z.string().min(1).max(200).regex(/^[^\s:/\\\p{Cc}]+$/u, 'no spaces, ":", "/", "\\" or control characters');

const LayerSchema = z.object({
  digest: DigestSchema,
  parent: DigestSchema,
  baseDigest: DigestSchema,
  kind: z.enum(['packages', 'app', 'image']),
  packages: z.array(z.string()),
  key: z.string().min(1),
  size: Size,
  createdAt: z.string(),
});

// Loose: the unit manifest is stored verbatim, so fields a newer vmwu adds survive an import.
const UnitSchema = z.looseObject({
  name: Label,
  version: Label,
  digest: DigestSchema,
  base: z.string(),
  baseDigest: DigestSchema,
  top: DigestSchema,
  chain: z.array(DigestSchema),
  run: z.array(z.string()).nullable(),
  params: z.record(z.string(), z.object({ default: z.string(), type: z.string() })),
  outputs: z.array(z.string()),
  resources: z.object({
    memoryMiB: z.number().positive().optional(),
    cpus: z.number().int().positive().optional(),
    timeoutMs: z.number().positive().optional(),
  }),
  network: z.boolean(),
  buildKey: z.string(),
  packages: z.array(z.string()),
  data: z.array(z.string().max(200)).optional(),
  createdAt: z.string(),
});

const BaseSchema = z.object({
  // Base names may hold ":" (debian:bookworm).
  name: z.string().min(1).max(200).regex(/^[^\s/\\\p{Cc}]+$/u, 'no spaces, "/", "\\" or control characters'),
  digest: DigestSchema,
  arch: z.string().min(1),
  os: z.string().min(1),
  description: z.string(),
  boot: z.enum(['kernel', 'bios']),
  kernel: DigestSchema.nullable(),
  initrd: DigestSchema.nullable(),
  root: DigestSchema,
  cmdline: z.string(),
  size: Size,
  virtualSize: Size,
  packageManager: z.enum(['apt', 'apk']).nullable().default(null),
  // A base pulled from a container image: its reference, config and layers (checked again where it is used).
  image: z.looseObject({ ref: z.string(), manifest: z.string(), layers: z.array(DigestSchema) }).nullable().default(null),
  createdAt: z.string(),
});

// Datasets come from another store: names are /data/NAME in a guest, and the source is shown by `data show`.
const DatasetSchema = z.strictObject({
  name: z.string().regex(DATASET_NAME),
  version: z.string().regex(DATASET_VERSION),
  digest: DigestSchema,
  format: z.literal('erofs'),
  imageBytes: Size,
  contentBytes: Size,
  files: Size,
  source: z.string().max(4096).regex(/^[^\p{Cc}]*$/u, 'no control characters'),
  createdAt: z.string().max(64),
});

export const ManifestSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  formatVersion: z.union([z.literal(1), z.literal(2)]),
  createdAt: z.string(),
  producer: z.string(),
  withBase: z.boolean(),
  unit: UnitSchema,
  layers: z.array(LayerSchema),
  base: BaseSchema,
  ovf: z.strictObject({ digest: DigestSchema, size: Size }),
  datasets: z.array(DatasetSchema).optional(),
  blobs: z.array(z.strictObject({ digest: DigestSchema, size: Size, role: z.enum(['layer', 'kernel', 'initrd', 'root', 'dataset']) })),
  digest: DigestSchema,
});

const HINT = 'the bundle is damaged or was altered: copy it again from the source, or export it again';

function bad(message: string, hint = HINT): VmwuError {
  return new VmwuError('BAD_BUNDLE', message, hint);
}

/** The exact bytes of manifest.json: pretty JSON, self-digest last. */
export function encodeManifest(body: BundleManifestBody): string {
  const digest = digestString(JSON.stringify(body));
  return JSON.stringify({ ...body, digest }, null, 2) + '\n';
}

/**
 * Parses and verifies manifest.json. Every single-byte change is caught: the
 * self-digest covers the content, and re-encoding must give back the exact bytes,
 * which covers the whitespace the digest does not see.
 */
export function decodeManifest(bytes: Uint8Array): BundleManifest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw bad('manifest.json is not valid UTF-8');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw bad(`manifest.json is not valid JSON: ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 160)}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw bad('manifest.json is not a JSON object');
  const rec = obj as Record<string, unknown>;
  if (rec.format !== BUNDLE_FORMAT) throw bad(`manifest.json: format is ${JSON.stringify(rec.format)}, not "${BUNDLE_FORMAT}"`, 'this file is not a vmwu bundle, or it is damaged');
  // Checked before the digest: a newer format may compute its digest differently.
  if (typeof rec.formatVersion === 'number' && rec.formatVersion > BUNDLE_VERSION) {
    throw new VmwuError('BUNDLE_TOO_NEW', `the bundle has format version ${rec.formatVersion}; this vmwu reads version ${BUNDLE_VERSION}`, 'upgrade vmwu on this host');
  }
  const { digest, ...body } = rec;
  const actual = digestString(JSON.stringify(body));
  if (digest !== actual) throw bad(`manifest.json does not match its digest (it says ${String(digest)}, its content hashes to ${actual})`);
  if (JSON.stringify(rec, null, 2) + '\n' !== text) throw bad('manifest.json is not byte for byte what vmwu writes (its whitespace or layout was changed)');
  const parsed = ManifestSchema.safeParse(obj);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw bad(`manifest.json does not fit the bundle schema: ${issues.join('; ')}`);
  }
  // The unit is taken from the raw object: zod's output would drop fields it does not know.
  const m = { ...(parsed.data as unknown as BundleManifest), unit: rec.unit as UnitRecord };
  checkManifest(m);
  return m;
}

/**
 * The cross-field rules a schema cannot say: the chain, the layer rows, the base and
 * the blob list must describe the same thing. The exporter runs them too, so it never
 * writes a bundle the importer would refuse.
 */
export function checkManifest(m: BundleManifestBody): void {
  const { unit, base, layers, blobs } = m;
  const fail = (why: string) => { throw bad(`manifest.json is inconsistent: ${why}`); };
  if (unit.baseDigest !== base.digest) fail(`the unit's base ${unit.baseDigest} is not the bundled base metadata ${base.digest}`);
  if (unit.top !== (unit.chain[0] ?? base.root)) fail(`the unit's top ${unit.top} is not the top of its chain`);
  if (layers.length !== unit.chain.length) fail(`the chain has ${unit.chain.length} layer(s) but ${layers.length} layer row(s) are listed`);
  layers.forEach((l, i) => {
    if (l.digest !== unit.chain[i]) fail(`layer row ${i} is ${l.digest}, the chain says ${unit.chain[i]}`);
    const parent = unit.chain[i + 1] ?? base.root;
    if (l.parent !== parent) fail(`layer ${l.digest} has parent ${l.parent}, the chain says ${parent}`);
    if (l.baseDigest !== base.digest) fail(`layer ${l.digest} belongs to base ${l.baseDigest}, not ${base.digest}`);
  });
  const want: { digest: Digest; role: BlobRole; size?: number }[] = unit.chain.map((d) => ({ digest: d, role: 'layer' as const }));
  if (m.withBase) {
    if (base.kernel) want.push({ digest: base.kernel, role: 'kernel' });
    if (base.initrd) want.push({ digest: base.initrd, role: 'initrd' });
    want.push({ digest: base.root, role: 'root' });
  }
  const named = new Set<string>();
  for (const t of unit.data ?? []) {
    try {
      named.add(formatDatasetRef(parseDatasetRef(t, 'data')));
    } catch (e) {
      fail(`the unit's data: ${(e as Error).message}`);
    }
  }
  if (m.datasets !== undefined) {
    if (m.formatVersion < DATASETS_SINCE) fail(`datasets are listed, but format version ${m.formatVersion} has none`);
    const names = new Set<string>();
    for (const d of m.datasets) {
      if (names.has(d.name)) fail(`dataset ${d.name} is listed twice`);
      if (!named.has(formatDatasetRef(d))) fail(`dataset ${formatDatasetRef(d)} is carried, but the unit's data: does not name it`);
      names.add(d.name);
      want.push({ digest: d.digest, role: 'dataset', size: d.imageBytes });
    }
  }
  if (blobs.length !== want.length) fail(`${blobs.length} blob(s) listed, ${want.length} expected${m.withBase ? ' (layers, kernel, initrd, root' : ' (the layers'}${m.datasets?.length ? ', datasets)' : ')'}`);
  const seen = new Set<string>();
  blobs.forEach((b, i) => {
    if (seen.has(b.digest)) fail(`blob ${b.digest} is listed twice`);
    seen.add(b.digest);
    const w = want[i]!;
    if (b.digest !== w.digest || b.role !== w.role) fail(`blob ${i} is ${b.role} ${b.digest}, expected ${w.role} ${w.digest}`);
    if (w.size !== undefined && b.size !== w.size) fail(`dataset blob ${b.digest} has ${b.size} bytes, its dataset row says ${w.size}`);
  });
}
