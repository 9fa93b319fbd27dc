import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { hexOf, type Digest } from '../store/blobs.js';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * An OCI image layout written for skopeo to push from: `oci-layout`, an index that
 * tags one manifest, and the blobs, small ones as files and store blobs as symbolic
 * links to the store (never copied: a layer may be gigabytes).
 */

export type LayoutBlob = { bytes: Buffer | string } | { digest: Digest; path: string };

export function writeLayout(dir: string, tag: string, manifest: Buffer, mediaType: string, blobs: LayoutBlob[]): void {
  const blobDir = join(dir, 'blobs', 'sha256');
  mkdirSync(blobDir, { recursive: true });
  const put = (b: LayoutBlob) => {
    if ('path' in b) symlinkSync(b.path, join(blobDir, hexOf(b.digest)));
    else writeFileSync(join(blobDir, sha256(b.bytes)), b.bytes);
  };
  for (const b of [...blobs, { bytes: manifest }]) put(b);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType, digest: `sha256:${sha256(manifest)}`, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}
