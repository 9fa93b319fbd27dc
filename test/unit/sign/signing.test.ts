import assert from 'node:assert/strict';
import { sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { signBundle, verifyBundle } from '../../../src/sign/bundle-signature.js';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signatureManifest, signatureRef } from '../../../src/sign/image-signature.js';
import { generateSigningKeys, KEY_PASSWORD_ENV, readPrivateKey, readPublicKey } from '../../../src/sign/keys.js';
import { readSimpleSigningPayload, simpleSigningPayload } from '../../../src/sign/simple-signing.js';
import { digestString } from '../../../src/store/blobs.js';
import { VmwuError } from '../../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'vmwu-sign-'));
const digest = digestString('a manifest');

test('the payload is cosign\'s simple-signing JSON, byte for byte, and reads back', () => {
  const p = simpleSigningPayload('localhost:5000/lab/unit', digest);
  assert.equal(p.toString(), `{"critical":{"identity":{"docker-reference":"localhost:5000/lab/unit"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`);
  assert.deepEqual(readSimpleSigningPayload(p, 'x'), { reference: 'localhost:5000/lab/unit', digest });
  assert.throws(() => readSimpleSigningPayload(Buffer.from('{"critical":{"type":"other"}}'), 'x'), /not a cosign image signature/);
  assert.throws(() => readSimpleSigningPayload(Buffer.from('nope'), 'x'), /not JSON/);
});

test('the signature manifest and tag are cosign\'s', () => {
  const payload = simpleSigningPayload('h/r', digest);
  const { manifest, config } = signatureManifest(payload, 'c2ln');
  const m = JSON.parse(manifest.toString()) as { config: { digest: string; size: number }; layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
  assert.equal(m.config.digest, digestString(config.toString()));
  assert.equal(m.layers[0]!.mediaType, SIMPLE_SIGNING);
  assert.equal(m.layers[0]!.digest, digestString(payload.toString()));
  assert.equal(m.layers[0]!.annotations[SIGNATURE_ANNOTATION], 'c2ln');
  assert.deepEqual(signatureRef({ transport: 'docker', rest: 'h:5000/lab/r:1.0' }, digest), { transport: 'docker', rest: `h:5000/lab/r:sha256-${digest.slice(7)}.sig` });
});

test('keys: P-256, public key as PEM SPKI, private key 0600, encrypted under VMWU_KEY_PASSWORD; no overwrite', () => {
  const plain = generateSigningKeys(join(dir, 'plain'), {});
  assert.equal(statSync(plain.privateKey).mode & 0o777, 0o600);
  assert.match(readFileSync(plain.publicKey, 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
  const priv = readPrivateKey(plain.privateKey, {});
  const pub = readPublicKey(plain.publicKey);
  const sig = sign('sha256', Buffer.from('x'), priv);
  assert.ok(verify('sha256', Buffer.from('x'), pub, sig));
  assert.throws(() => generateSigningKeys(join(dir, 'plain'), {}), /already exists/);

  const locked = generateSigningKeys(join(dir, 'locked'), { [KEY_PASSWORD_ENV]: 's3cret' });
  assert.match(readFileSync(locked.privateKey, 'utf8'), /ENCRYPTED/);
  assert.throws(() => readPrivateKey(locked.privateKey, {}), /it is encrypted/);
  assert.throws(() => readPrivateKey(locked.privateKey, { [KEY_PASSWORD_ENV]: 'wrong' }), /passphrase is wrong/);
  assert.ok(readPrivateKey(locked.privateKey, { [KEY_PASSWORD_ENV]: 's3cret' }));
  assert.throws(() => readPublicKey(join(dir, 'none.pub')), (e: unknown) => e instanceof VmwuError && /no such file/.test(e.message));
});

test('a bundle signature covers every byte of the file, and only its key verifies it', async () => {
  const keys = generateSigningKeys(join(dir, 'bundle'), {});
  const other = generateSigningKeys(join(dir, 'other'), {});
  const file = join(dir, 'u.vmwu');
  writeFileSync(file, Buffer.alloc(300_000, 1));
  const sig = await signBundle(file, keys.privateKey);
  assert.equal(sig, `${file}.sig`);
  await verifyBundle(file, keys.publicKey);
  await assert.rejects(verifyBundle(file, other.publicKey), /does not verify/);
  const b = readFileSync(file);
  b[123_456] = 2;
  writeFileSync(file, b);
  await assert.rejects(verifyBundle(file, keys.publicKey), /does not verify/);
  await assert.rejects(verifyBundle(join(dir, 'unsigned'), keys.publicKey), /has no signature/);
});
