import { z } from 'zod';
import { VmwuError } from '../errors.js';
import type { ImageProcess } from '../store/bases.js';

/**
 * The OCI (and Docker schema 2) documents of one image: index, manifest and config, checked
 * with zod; the linux/amd64 choice from an index; the process an image's config describes.
 * Pure: the bytes come from the caller, who has verified their digests.
 */

const DIGEST = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a sha256 digest');
const descriptor = z.object({
  mediaType: z.string().max(256),
  digest: DIGEST,
  size: z.number().int().nonnegative(),
  platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).optional(),
});
export type Descriptor = z.infer<typeof descriptor>;

const INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
const LAYER_TYPES: Record<string, 'gzip' | 'zstd' | 'none'> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
};

const indexSchema = z.object({ schemaVersion: z.literal(2), mediaType: z.string().optional(), manifests: z.array(descriptor).max(1000) });
const manifestSchema = z.object({ schemaVersion: z.literal(2), mediaType: z.string().optional(), config: descriptor, layers: z.array(descriptor).max(500) });

const stringList = z.array(z.string().max(65536)).max(4096).nullish();
const configSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  config: z.object({
    Entrypoint: stringList, Cmd: stringList, Env: stringList,
    WorkingDir: z.string().max(4096).nullish(), User: z.string().max(256).nullish(),
  }).partial().passthrough().nullish(),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(DIGEST).max(500) }),
}).passthrough();

export interface ImageManifest {
  config: Descriptor;
  layers: (Descriptor & { compression: 'gzip' | 'zstd' | 'none' })[];
}

export interface ImageConfig {
  process: ImageProcess;
  diffIds: string[];
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new VmwuError('BAD_IMAGE', `the image's ${what} is not JSON: ${(e as Error).message}`, 'the image is damaged or not an OCI/Docker image');
  }
}

function check<T>(schema: z.ZodType<T>, v: unknown, what: string): T {
  const r = schema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new VmwuError('BAD_IMAGE', `the image's ${what} is not valid: ${i.path.join('.') || '(top)'}: ${i.message}`, 'the image is damaged or not an OCI/Docker image');
  }
  return r.data;
}

/** Whether a manifest document is an index (a multi-platform list). */
export function isIndex(bytes: Buffer): boolean {
  const v = parseJson(bytes, 'manifest') as { mediaType?: string; manifests?: unknown };
  return INDEX_TYPES.includes(v.mediaType ?? '') || Array.isArray(v.manifests);
}

/** The linux/amd64 entry of an index; refused with the platforms it does have. */
export function chooseAmd64(bytes: Buffer, ref: string): Descriptor {
  const idx = check(indexSchema, parseJson(bytes, 'index'), 'index');
  const hit = idx.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
  if (hit) return hit;
  const have = [...new Set(idx.manifests.map((m) => m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : 'unknown'))];
  throw new VmwuError('IMAGE_PLATFORM', `${ref} has no linux/amd64 image; it has: ${have.join(', ') || 'none'}`,
    'vmwu runs x86-64 guests: use an image built for linux/amd64');
}

export function parseManifest(bytes: Buffer): ImageManifest {
  const m = check(manifestSchema, parseJson(bytes, 'manifest'), 'manifest');
  return {
    config: m.config,
    layers: m.layers.map((l) => {
      const compression = LAYER_TYPES[l.mediaType];
      if (!compression) {
        throw new VmwuError('BAD_IMAGE', `the image has a layer of type ${l.mediaType}, which vmwu cannot unpack`,
          'vmwu takes tar layers, plain, gzip or zstd (foreign and non-distributable layers are refused)');
      }
      return { ...l, compression };
    }),
  };
}

export function parseConfig(bytes: Buffer, layerCount: number): ImageConfig {
  const c = check(configSchema, parseJson(bytes, 'config'), 'config');
  if (c.architecture && c.architecture !== 'amd64') throw new VmwuError('IMAGE_PLATFORM', `the image is for ${c.os ?? '?'}/${c.architecture}, not linux/amd64`);
  if (c.rootfs.diff_ids.length !== layerCount) {
    throw new VmwuError('BAD_IMAGE', `the image's config lists ${c.rootfs.diff_ids.length} layers, its manifest ${layerCount}`, 'the image is damaged');
  }
  const p = c.config ?? {};
  return {
    diffIds: c.rootfs.diff_ids,
    process: { entrypoint: p.Entrypoint ?? [], cmd: p.Cmd ?? [], env: p.Env ?? [], workingDir: p.WorkingDir ?? '', user: p.User ?? '' },
  };
}
