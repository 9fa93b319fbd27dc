import { createHash, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { VmwuError } from '../errors.js';
import { writeLayout } from '../oci/layout-write.js';
import { formatImageRef, repositoryOf, type ImageRef } from '../oci/reference.js';
import type { RegistryOptions } from '../oci/registry-options.js';
import { copyToLayout, inspectRaw, pushLayout } from '../oci/skopeo.js';
import { hexOf, type Digest } from '../store/blobs.js';
import { readPrivateKey, readPublicKey } from './keys.js';
import { readSimpleSigningPayload, simpleSigningPayload } from './simple-signing.js';

/**
 * Signatures in a registry as cosign stores them: beside the signed manifest, under
 * the tag `sha256-<hex>.sig`, an OCI manifest whose one layer is the simple-signing
 * payload (`application/vnd.dev.cosign.simplesigning.v1+json`) with the base64 DER
 * ECDSA signature in the `dev.cosignproject.cosign/signature` annotation. cosign,
 * and containers/image with a sigstoreSigned policy, verify what vmwu signs.
 */

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** Far above a real signature manifest or payload. */
const MAX_SIGNATURE_DOC = 1024 * 1024;

const sha = (b: Buffer | string): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The reference of the signature of `digest`: cosign's tag in the same repository. */
export function signatureRef(ref: ImageRef, digest: Digest): ImageRef {
  return { transport: 'docker', rest: `${repositoryOf(ref)}:sha256-${hexOf(digest)}.sig` };
}

/** The signature manifest for one payload, as cosign writes it, and the blobs it names. */
export function signatureManifest(payload: Buffer, signature: string): { manifest: Buffer; config: Buffer } {
  const payloadDigest = sha(payload);
  const config = Buffer.from(JSON.stringify({
    architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '',
    rootfs: { type: 'layers', diff_ids: [payloadDigest] }, config: {},
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, size: config.length, digest: sha(config) },
    layers: [{ mediaType: SIMPLE_SIGNING, size: payload.length, digest: payloadDigest, annotations: { [SIGNATURE_ANNOTATION]: signature } }],
  }));
  return { manifest, config };
}

/** Signs the manifest `digest` pushed to `ref` with the private key at `keyPath`, and pushes the signature. Returns its reference. */
export async function signPushed(ref: ImageRef, digest: Digest, keyPath: string, registry: RegistryOptions, work: string): Promise<string> {
  if (ref.transport !== 'docker') throw new VmwuError('BAD_OPTION', `--sign needs a registry reference (docker://…), not ${formatImageRef(ref)}`, 'sign bundles with `vmwu export --sign`');
  const key = readPrivateKey(keyPath);
  const payload = simpleSigningPayload(repositoryOf(ref), digest);
  const signature = sign('sha256', payload, key).toString('base64');
  const { manifest, config } = signatureManifest(payload, signature);
  const layout = join(work, 'signature');
  writeLayout(layout, 'sig', manifest, OCI_MANIFEST, [{ bytes: config }, { bytes: payload }]);
  const to = signatureRef(ref, digest);
  await pushLayout(layout, 'sig', to, registry, work);
  return formatImageRef(to);
}

const SignatureManifestSchema = z.object({
  layers: z.array(z.object({
    mediaType: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/), size: z.number().int().nonnegative(),
    annotations: z.record(z.string(), z.string()).optional(),
  })).max(1000),
});

/**
 * Checks that the manifest `digest` in `ref`'s repository carries a signature by the
 * public key at `pubPath`: some layer of its `.sig` manifest whose payload verifies
 * and names exactly this digest. Throws NOT_SIGNED or BAD_SIGNATURE.
 */
export async function verifyPushed(ref: ImageRef, digest: Digest, pubPath: string, registry: RegistryOptions, work: string): Promise<{ signature: string }> {
  const key = readPublicKey(pubPath);
  const label = formatImageRef(ref);
  if (ref.transport !== 'docker') throw new VmwuError('BAD_OPTION', `signatures live in a registry; ${label} is not one`, 'verify bundles with `vmwu verify FILE --key PUB`');
  const sigRef = signatureRef(ref, digest);
  const raw = await inspectRaw(sigRef, registry, work).catch((e: unknown) => {
    if (e instanceof VmwuError && e.code === 'IMAGE_NOT_FOUND') {
      throw new VmwuError('NOT_SIGNED', `${label} (${digest.slice(0, 19)}) is not signed: ${repositoryOf(ref)} has no tag sha256-${hexOf(digest).slice(0, 12)}….sig`,
        'ask its publisher to sign it (vmwu push --sign KEY, or cosign sign); nothing was pulled');
    }
    throw e;
  });
  if (raw.length > MAX_SIGNATURE_DOC) throw new VmwuError('BAD_SIGNATURE', `the signature manifest of ${label} is ${raw.length} bytes, far more than a signature needs`);
  const parsed = SignatureManifestSchema.safeParse(JSON.parse(raw.toString('utf8')));
  if (!parsed.success) throw new VmwuError('BAD_SIGNATURE', `the signature manifest of ${label} is not a cosign signature manifest`);
  const layout = join(work, 'signature-in');
  const blobs = join(work, 'signature-blobs');
  await copyToLayout(sigRef, registry, layout, blobs, work);
  const reasons: string[] = [];
  for (const l of parsed.data.layers) {
    const sig = l.annotations?.[SIGNATURE_ANNOTATION];
    if (l.mediaType !== SIMPLE_SIGNING || !sig || l.size > MAX_SIGNATURE_DOC) continue;
    const payload = readFileSync(join(blobs, 'sha256', hexOf(l.digest)));
    if (sha(payload) !== l.digest) continue;
    if (!verify('sha256', payload, key, Buffer.from(sig, 'base64'))) {
      reasons.push('a signature by another key');
      continue;
    }
    const said = readSimpleSigningPayload(payload, `the signature of ${label}`);
    if (said.digest !== digest) {
      reasons.push(`a signature of another manifest (${said.digest.slice(0, 19)})`);
      continue;
    }
    return { signature: formatImageRef(sigRef) };
  }
  throw new VmwuError('BAD_SIGNATURE', `${label} (${digest.slice(0, 19)}) has no signature that verifies with ${pubPath}${reasons.length ? `: found ${reasons.join(', ')}` : ''}`,
    'do not use it: it was changed after signing, or someone else signed it; nothing was pulled');
}
