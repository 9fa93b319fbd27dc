import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { hexOf } from '../store/blobs.js';
import { parseConfig, parseManifest, type ImageConfig, type ImageManifest } from './image-manifest.js';

/**
 * The image skopeo copied: the OCI layout's index names the manifest, whose blobs sit
 * in the shared blob directory. Every document is read under a size cap and checked
 * against its digest before it is parsed.
 */

const DOC_CAP = 4 * 1024 * 1024;

export interface PulledImage {
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Where each layer's blob is, in manifest order (bottom first). */
  layerBlobs: string[];
}

function blobPath(blobDir: string, digest: string): string {
  return join(blobDir, 'sha256', hexOf(digest));
}

function readDoc(blobDir: string, digest: string, what: string): Buffer {
  const p = blobPath(blobDir, digest);
  if (statSync(p).size > DOC_CAP) throw new VmwuError('BAD_IMAGE', `the image's ${what} is larger than ${DOC_CAP} bytes`);
  const bytes = readFileSync(p);
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== digest) throw new VmwuError('IMAGE_DIGEST', `the image's ${what} hashes to ${actual}, not ${digest}`, 'it was changed or damaged; nothing was registered');
  return bytes;
}

export function readPulledImage(layout: string, blobDir: string): PulledImage {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests?: { digest?: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests?.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'img');
  if (!entry?.digest || !/^sha256:[0-9a-f]{64}$/.test(entry.digest)) throw new VmwuError('PULL_FAILED', `skopeo left no image in ${layout}`);
  const manifest = parseManifest(readDoc(blobDir, entry.digest, 'manifest'));
  const config = parseConfig(readDoc(blobDir, manifest.config.digest, 'config'), manifest.layers.length);
  return { manifestDigest: entry.digest, manifest, config, layerBlobs: manifest.layers.map((l) => blobPath(blobDir, l.digest)) };
}
