import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { unitRef } from './registry-ref.js';
import { formatImageRef } from '../oci/reference.js';
import type { RegistryOptions } from '../oci/registry-options.js';
import { inspectRaw } from '../oci/skopeo.js';
import type { Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { verifyPushed } from '../sign/image-signature.js';

/** `vmwu verify REF`: the manifest REF names now, and a signature of it by the key. Works for any manifest cosign signed, unit or image. */
export async function verifyRef(store: Store, target: string, pubPath: string, registry: RegistryOptions): Promise<{ ref: string; digest: Digest; signature: string }> {
  const ref = unitRef(target);
  const work = makeWorkDir(store.paths, 'pull-');
  try {
    const raw = await inspectRaw(ref, registry, work);
    const digest: Digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    const { signature } = await verifyPushed(ref, digest, pubPath, registry, work);
    return { ref: formatImageRef(ref), digest, signature };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
