import { createReadStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createSign, createVerify } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { VmwuError } from '../errors.js';
import { readPrivateKey, readPublicKey } from './keys.js';

/**
 * Signed bundles, as `cosign sign-blob` signs a file: ECDSA P-256 over the SHA-256 of
 * the whole file, the DER signature base64 in `FILE.sig`. So
 * `cosign verify-blob --key vmwu.pub --signature unit.vmwu.sig unit.vmwu` checks a
 * vmwu bundle, and `vmwu verify` checks one cosign signed.
 */

export const signatureFileOf = (bundle: string) => `${bundle}.sig`;

export async function signBundle(file: string, keyPath: string): Promise<string> {
  const key = readPrivateKey(keyPath);
  const signer = createSign('SHA256');
  await pipeline(createReadStream(file), signer);
  const out = signatureFileOf(file);
  await rm(out, { force: true });
  await writeFile(out, signer.sign(key).toString('base64'), { mode: 0o644 });
  return out;
}

/** Throws BAD_SIGNATURE unless `sigFile` (default FILE.sig) is a signature of the file by `pubPath`'s key. */
export async function verifyBundle(file: string, pubPath: string, sigFile = signatureFileOf(file)): Promise<{ signature: string }> {
  const key = readPublicKey(pubPath);
  const text = await readFile(sigFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new VmwuError('NOT_SIGNED', `${file} has no signature: ${e.code === 'ENOENT' ? `there is no ${sigFile}` : e.message}`,
      'ask for the bundle\'s .sig file, or export it with --sign KEY');
  });
  const sig = Buffer.from(text.trim(), 'base64');
  const verifier = createVerify('SHA256');
  await pipeline(createReadStream(file), verifier);
  if (!verifier.verify(key, sig)) {
    throw new VmwuError('BAD_SIGNATURE', `the signature ${sigFile} does not verify with ${pubPath}: the bundle was changed, or another key signed it`,
      'do not import it; get the bundle and its signature again from the signer');
  }
  return { signature: sigFile };
}
