import { z } from 'zod';
import { VmwuError } from '../errors.js';
import { digestString, type Digest } from '../store/blobs.js';
import type { BlobRole, BundleManifest } from './manifest.js';

/**
 * A unit as an OCI artifact (docs/images.md), the way ORAS and `apptainer push
 * oras://` store non-images: an OCI image manifest whose config is the unit's bundle
 * manifest (manifest.json, byte for byte) and whose layers are the OVF descriptor and
 * the bundle's blobs, in the same order, under vmwu media types. Pure.
 */

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const UNIT_ARTIFACT_TYPE = 'application/vnd.vmwu.unit.v1';
export const UNIT_CONFIG = 'application/vnd.vmwu.unit.manifest.v1+json';
export const OVF_MEDIA_TYPE = 'application/vnd.vmwu.unit.ovf.v1+xml';
export const BLOB_MEDIA_TYPES: Record<BlobRole, string> = {
  layer: 'application/vnd.vmwu.layer.v1.qcow2',
  root: 'application/vnd.vmwu.base.root.v1.qcow2',
  kernel: 'application/vnd.vmwu.base.kernel.v1',
  initrd: 'application/vnd.vmwu.base.initrd.v1',
  dataset: 'application/vnd.vmwu.dataset.v1.erofs',
};

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

export interface ArtifactManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  artifactType: typeof UNIT_ARTIFACT_TYPE;
  config: Descriptor;
  layers: Descriptor[];
  annotations: Record<string, string>;
}

/** The artifact manifest of a unit's contents, and its exact bytes (what its digest covers). */
export function unitArtifact(manifestJson: string, m: Omit<BundleManifest, 'digest'>, ovf: string): { manifest: ArtifactManifest; bytes: Buffer; digest: Digest } {
  const manifest: ArtifactManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: UNIT_ARTIFACT_TYPE,
    config: { mediaType: UNIT_CONFIG, digest: digestString(manifestJson), size: Buffer.byteLength(manifestJson) },
    layers: [
      { mediaType: OVF_MEDIA_TYPE, digest: digestString(ovf), size: Buffer.byteLength(ovf) },
      ...m.blobs.map((b) => ({ mediaType: BLOB_MEDIA_TYPES[b.role], digest: b.digest, size: b.size })),
    ],
    annotations: {
      'org.opencontainers.image.title': `${m.unit.name}:${m.unit.version}`,
      'org.opencontainers.image.created': m.createdAt,
      'dev.vmwu.unit.digest': m.unit.digest,
    },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { manifest, bytes, digest: digestString(bytes.toString('utf8')) };
}

const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/) as unknown as z.ZodType<Digest>;
const DescriptorSchema = z.object({ mediaType: z.string().max(255), digest: DigestSchema, size: z.number().int().nonnegative().max(2 ** 50) });
const ArtifactSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(OCI_MANIFEST).optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema).max(10_000),
});

/** A fetched manifest's config descriptor and layers, once it is known to be a vmwu unit; a container image is refused with what to do instead. */
export function readUnitArtifact(bytes: Buffer, where: string): { config: Descriptor; layers: Descriptor[] } {
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new VmwuError('NOT_A_UNIT', `${where} is not a JSON manifest`);
  }
  const p = ArtifactSchema.safeParse(obj);
  if (!p.success) {
    throw new VmwuError('NOT_A_UNIT', `${where} is not a single OCI manifest (${p.error.issues[0]!.path.join('.') || '(top)'}: ${p.error.issues[0]!.message})`,
      'vmwu pull takes what vmwu push wrote; for a container image use `vmwu base pull`');
  }
  if (p.data.config.mediaType !== UNIT_CONFIG) {
    throw new VmwuError('NOT_A_UNIT', `${where} is not a vmwu unit: its config is ${p.data.config.mediaType}`,
      p.data.config.mediaType.includes('image.config') || p.data.config.mediaType.includes('container.image') ? 'it is a container image: make it a base with `vmwu base pull`' : 'vmwu pull takes what vmwu push wrote');
  }
  return { config: p.data.config, layers: p.data.layers };
}

/** Whether a manifest (as stored) is a vmwu unit, as `vmwu push` writes one, rather than a container image. Pure. */
export function isUnitArtifact(bytes: Buffer): boolean {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { artifactType?: unknown; config?: { mediaType?: unknown } };
    return m.artifactType === UNIT_ARTIFACT_TYPE || m.config?.mediaType === UNIT_CONFIG;
  } catch {
    return false;
  }
}

/** The artifact's layers must be the OVF and the blobs its bundle manifest lists, in order and by media type. */
export function checkArtifactLayers(layers: Descriptor[], m: BundleManifest, where: string): void {
  const want: Descriptor[] = [
    { mediaType: OVF_MEDIA_TYPE, digest: m.ovf.digest, size: m.ovf.size },
    ...m.blobs.map((b) => ({ mediaType: BLOB_MEDIA_TYPES[b.role], digest: b.digest, size: b.size })),
  ];
  const fail = (why: string) => { throw new VmwuError('BAD_UNIT_ARTIFACT', `${where}: the manifest's layers do not match the unit it carries: ${why}`, 'it was not written by `vmwu push`, or was changed since; nothing was imported'); };
  if (layers.length !== want.length) fail(`${layers.length} layer(s), the unit lists ${want.length}`);
  layers.forEach((l, i) => {
    const w = want[i]!;
    if (l.digest !== w.digest || l.size !== w.size || l.mediaType !== w.mediaType) fail(`layer ${i} is ${l.mediaType} ${l.digest} (${l.size} bytes), expected ${w.mediaType} ${w.digest} (${w.size} bytes)`);
  });
}
