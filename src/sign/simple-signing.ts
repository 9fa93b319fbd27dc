import { z } from 'zod';
import { VmwuError } from '../errors.js';

/**
 * The payload cosign signs for an image (the "simple signing" format, as
 * containers/image and cosign read it): which manifest digest is vouched for, under
 * which repository. Pure.
 */

export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

/** The exact bytes cosign writes: compact JSON in this key order. */
export function simpleSigningPayload(dockerReference: string, manifestDigest: string): Buffer {
  return Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': manifestDigest }, type: COSIGN_SIGNATURE_TYPE },
    optional: null,
  }));
}

const PayloadSchema = z.object({
  critical: z.object({
    identity: z.object({ 'docker-reference': z.string().max(4096) }),
    image: z.object({ 'docker-manifest-digest': z.string().regex(/^sha256:[0-9a-f]{64}$/) }),
    type: z.literal(COSIGN_SIGNATURE_TYPE),
  }),
  optional: z.record(z.string(), z.unknown()).nullable().optional(),
});

/** What a signed payload says; only read after its signature verified. */
export function readSimpleSigningPayload(bytes: Buffer, where: string): { reference: string; digest: string } {
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new VmwuError('BAD_SIGNATURE', `${where}: the signed payload is not JSON`);
  }
  const p = PayloadSchema.safeParse(obj);
  if (!p.success) throw new VmwuError('BAD_SIGNATURE', `${where}: the signed payload is not a cosign image signature (${p.error.issues[0]!.path.join('.')}: ${p.error.issues[0]!.message})`);
  return { reference: p.data.critical.identity['docker-reference'], digest: p.data.critical.image['docker-manifest-digest'] };
}
