import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLayout } from '../oci/layout-write.js';
import { formatImageRef } from '../oci/reference.js';
import type { RegistryOptions } from '../oci/registry-options.js';
import { pushLayout } from '../oci/skopeo.js';
import type { Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { signPushed } from '../sign/image-signature.js';
import { OCI_MANIFEST, unitArtifact } from './artifact.js';
import { unitContents } from './export.js';
import { unitRef } from './registry-ref.js';

/** `vmwu push UNIT REF`: a unit into an OCI registry as an artifact (src/bundle/artifact.ts), optionally signed as cosign signs. */

export interface PushOptions {
  withBase?: boolean;
  withData?: boolean;
  registry?: RegistryOptions;
  /** A private key: the pushed manifest is signed (src/sign/image-signature.ts). */
  sign?: string;
  onStep?(what: string): void;
}

export interface PushResult {
  ref: string;
  unit: string;
  digest: Digest;
  blobs: { total: number; uploaded: number; present: number };
  bytes: number;
  signature?: string;
}

export async function pushUnit(store: Store, unit: string, target: string, o: PushOptions = {}): Promise<PushResult> {
  const ref = unitRef(target);
  const c = await unitContents(store, unit, { ...o, unitTime: true });
  const art = unitArtifact(c.manifest, c.body, c.ovf);
  const work = makeWorkDir(store.paths, 'push-');
  try {
    writeLayout(join(work, 'layout'), 'unit', art.bytes, OCI_MANIFEST, [{ bytes: c.manifest }, { bytes: c.ovf }, ...c.blobs]);
    o.onStep?.(`pushing ${c.blobs.length + 1} blob(s) to ${formatImageRef(ref)}`);
    const pushed = await pushLayout(join(work, 'layout'), 'unit', ref, o.registry ?? {}, work);
    let signature: string | undefined;
    if (o.sign) {
      o.onStep?.('signing');
      signature = await signPushed(ref, art.digest, o.sign, o.registry ?? {}, work);
    }
    const total = art.manifest.layers.length;
    const present = art.manifest.layers.filter((l) => pushed.skipped.has(l.digest)).length;
    return {
      ref: formatImageRef(ref), unit: `${c.body.unit.name}:${c.body.unit.version}`, digest: art.digest,
      blobs: { total, uploaded: total - present, present },
      bytes: art.manifest.layers.reduce((n, l) => n + l.size, 0),
      ...(signature ? { signature } : {}),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
