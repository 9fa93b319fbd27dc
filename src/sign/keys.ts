import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { VmwuError } from '../errors.js';

/**
 * Signing keys as cosign uses them: ECDSA on P-256, the public key as PEM
 * (SubjectPublicKeyInfo, what `cosign.pub` holds), so `cosign verify --key` takes a
 * vmwu public key as it is. The private key is PKCS#8 PEM, encrypted when
 * VMWU_KEY_PASSWORD is set (as COSIGN_PASSWORD is for cosign), mode 0600.
 */

export const KEY_PASSWORD_ENV = 'VMWU_KEY_PASSWORD';

export interface KeyFiles {
  privateKey: string;
  publicKey: string;
}

export function generateSigningKeys(prefix: string, env: NodeJS.ProcessEnv = process.env): KeyFiles {
  const files = { privateKey: `${prefix}.key`, publicKey: `${prefix}.pub` };
  for (const f of Object.values(files)) {
    if (existsSync(f)) throw new VmwuError('FILE_EXISTS', `${f} already exists`, 'choose another --out PREFIX, or remove the old key pair first');
  }
  const password = env[KEY_PASSWORD_ENV];
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem', ...(password ? { cipher: 'aes-256-cbc', passphrase: password } : {}) },
  });
  writeFileSync(files.privateKey, privateKey, { mode: 0o600, flag: 'wx' });
  writeFileSync(files.publicKey, publicKey, { mode: 0o644, flag: 'wx' });
  return files;
}

function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new VmwuError('BAD_KEY', `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      'make a key pair with `vmwu key generate`');
  }
}

function checkP256(k: KeyObject, path: string, what: string): KeyObject {
  if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new VmwuError('BAD_KEY', `${path} is not an ECDSA P-256 ${what} (it is ${k.asymmetricKeyType}${k.asymmetricKeyDetails?.namedCurve ? ` ${k.asymmetricKeyDetails.namedCurve}` : ''})`,
      'vmwu signs as cosign does, with P-256 keys: make one with `vmwu key generate`');
  }
  return k;
}

export function readPrivateKey(path: string, env: NodeJS.ProcessEnv = process.env): KeyObject {
  const pem = readKeyFile(path, 'private key');
  const password = env[KEY_PASSWORD_ENV];
  let k: KeyObject;
  try {
    k = createPrivateKey({ key: pem, format: 'pem', ...(password ? { passphrase: password } : {}) });
  } catch (e) {
    const encrypted = /ENCRYPTED/.test(pem);
    throw new VmwuError('BAD_KEY', `cannot read the private key ${path}: ${encrypted ? (password ? 'the passphrase is wrong' : 'it is encrypted') : (e as Error).message}`,
      encrypted ? `set ${KEY_PASSWORD_ENV} to its passphrase` : 'give the .key file `vmwu key generate` wrote');
  }
  return checkP256(k, path, 'private key');
}

export function readPublicKey(path: string): KeyObject {
  const pem = readKeyFile(path, 'public key');
  let k: KeyObject;
  try {
    k = createPublicKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new VmwuError('BAD_KEY', `${path} is not a PEM public key: ${(e as Error).message}`, 'give the .pub file of the signer\'s key pair (cosign.pub or vmwu.pub)');
  }
  return checkP256(k, path, 'public key');
}
