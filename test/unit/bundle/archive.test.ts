import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import tar from 'tar-stream';
import { VmwuError } from '../../../src/errors.js';
import { fixTarChecksums } from '../../fuzz/tar-checksums.js';
import type { Digest } from '../../../src/store/blobs.js';
import { readBundle, writeBundle, type BundleBlobSource } from '../../../src/bundle/archive.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, encodeManifest, type BundleManifestBody } from '../../../src/bundle/manifest.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const made: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'vmwu-bundle-'));
  made.push(d);
  return d;
};
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/**
 * A synthetic bundle: random bytes stand in for qcow2 layers (the tar layer does not
 * look inside blobs). Sizes are chosen to need padding and to span several reads.
 */
async function fixture(dir: string, sizes = [70_001, 513]) {
  const root = randomBytes(1000);
  const layers = sizes.map((n) => randomBytes(n));
  const rootDigest = sha(root);
  const layerDigests = layers.map(sha);
  const blobs: BundleBlobSource[] = [];
  layers.forEach((b, i) => {
    const path = join(dir, `layer${i}`);
    writeFileSync(path, b);
    blobs.push({ digest: layerDigests[i]!, size: b.length, path });
  });
  const ovf = '<?xml version="1.0"?>\n<Envelope/>\n';
  const baseDigest = sha('base');
  const body: BundleManifestBody = {
    format: BUNDLE_FORMAT, formatVersion: BUNDLE_VERSION, createdAt: '2026-01-02T00:00:00.000Z', producer: 'test', withBase: false,
    unit: {
      name: 'demo', version: '1', digest: sha('unit'), base: 'tiny', baseDigest, top: layerDigests[0] ?? rootDigest, chain: layerDigests,
      run: ['true'], params: {}, outputs: [], resources: {}, network: false, buildKey: 'bk', packages: [], createdAt: '2026-01-01T00:00:00.000Z',
    },
    layers: layerDigests.map((dg, i) => ({
      digest: dg, parent: layerDigests[i + 1] ?? rootDigest, baseDigest, kind: 'app' as const, packages: [], key: `k${i}`, size: layers[i]!.length, createdAt: '2026-01-01T00:00:00.000Z',
    })),
    base: {
      name: 'tiny', digest: baseDigest, arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: sha('k'), initrd: sha('i'), root: rootDigest,
      cmdline: '', size: 1, virtualSize: 1, packageManager: null, image: null, createdAt: '2026-01-01T00:00:00.000Z',
    },
    ovf: { digest: sha(ovf), size: Buffer.byteLength(ovf) },
    blobs: blobs.map((b) => ({ digest: b.digest, size: b.size, role: 'layer' as const })),
  };
  const out = join(dir, 'unit.vmwu');
  await writeBundle({ out, manifest: encodeManifest(body), ovf, blobs, mtime: new Date('2026-01-02T00:00:00Z') });
  return { out, blobs, body, ovf };
}

async function read(file: string) {
  const staging = join(tmp(), 'staging');
  mkdirSync(staging);
  try {
    return await readBundle({ file, staging });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function refused(file: string, pattern?: RegExp): Promise<string> {
  let message = '';
  await assert.rejects(read(file), (e: unknown) => {
    assert.ok(e instanceof VmwuError, `expected a VmwuError, got ${String(e)}`);
    assert.equal(e.code, 'BAD_BUNDLE', e.message);
    if (pattern) assert.match(e.message, pattern);
    message = e.message;
    return true;
  });
  return message;
}

/** Header offsets, from what tar-stream writes: entries back to back, 512-byte blocks. */
function layout(body: { size: number }[]) {
  const heads: number[] = [];
  let pos = 0;
  for (const e of body) {
    heads.push(pos);
    pos += 512 + Math.ceil(e.size / 512) * 512;
  }
  return { heads, end: pos };
}

describe('bundle archive', () => {
  test('round trip: entries in order, blobs staged under their hex names with the right bytes', async () => {
    const dir = tmp();
    const { out, blobs, body } = await fixture(dir);
    const names: string[] = [];
    const ex = tar.extract();
    ex.on('entry', (h, s, next) => { names.push(h.name); s.resume(); s.on('end', () => next()); });
    ex.end(readFileSync(out));
    await new Promise<void>((r) => ex.on('finish', () => r()));
    assert.deepEqual(names, ['manifest.json', 'unit.ovf', ...blobs.map((b) => `blobs/sha256/${b.digest.slice(7)}`)]);

    const staging = join(dir, 'staging');
    mkdirSync(staging);
    const r = await readBundle({ file: out, staging });
    assert.equal(r.manifest.unit.name, body.unit.name);
    assert.equal(r.bytes, blobs.reduce((n, b) => n + b.size, 0));
    for (const b of blobs) assert.deepEqual(readFileSync(r.staged.get(b.digest)!), readFileSync(b.path));
    assert.deepEqual(readdirSync(staging).sort(), blobs.map((b) => b.digest.slice(7)).sort());
  });

  test('a flipped byte in any tar header, or at the edges of every entry, is refused', async () => {
    const dir = tmp();
    const { out, blobs, body, ovf } = await fixture(dir);
    const good = readFileSync(out);
    const { heads, end } = layout([{ size: Buffer.byteLength(encodeManifest(body)) }, { size: Buffer.byteLength(ovf) }, ...blobs]);
    assert.equal(good.length, end + 1024);
    const positions = new Set<number>();
    for (const h of heads) {
      for (let i = 0; i < 512; i++) positions.add(h + i); // the whole header
      for (const k of [512, 513, 1023, 1024]) positions.add(h + k); // first data bytes
    }
    for (let i = 1; i < heads.length; i++) for (let k = 1; k <= 3; k++) positions.add(heads[i]! - k); // padding before the next header
    for (let k = 1; k <= 1024; k += 37) positions.add(good.length - k); // end-of-archive marker
    positions.add(good.length - 1);
    positions.add(heads[2]! + 512 + 40_000); // the middle of a blob
    const f = join(dir, 'flipped.vmwu');
    for (const p of [...positions].filter((x) => x < good.length)) {
      const b = Buffer.from(good);
      b[p]! ^= 0x01;
      writeFileSync(f, b);
      await assert.rejects(read(f), (e: unknown) => e instanceof VmwuError && e.code === 'BAD_BUNDLE', `a flip at byte ${p} was accepted`);
    }
  });

  test('a flipped byte in blob data names the blob and says it is corrupt', async () => {
    const dir = tmp();
    const { out, blobs } = await fixture(dir);
    const b = readFileSync(out);
    const at = b.indexOf(readFileSync(blobs[0]!.path).subarray(0, 64)) + 30_000;
    b[at]! ^= 0xff;
    writeFileSync(out, b);
    await refused(out, new RegExp(`layer blob ${blobs[0]!.digest} is corrupt`));
  });

  test('a file cut anywhere is refused as truncated', async () => {
    const dir = tmp();
    const { out } = await fixture(dir);
    const good = readFileSync(out);
    const f = join(dir, 'cut.vmwu');
    const cuts = new Set<number>([0, 1, 511]);
    for (let p = 512; p < good.length; p += 512) cuts.add(p).add(p + 7);
    for (const n of [...cuts].filter((x) => x < good.length)) {
      writeFileSync(f, good.subarray(0, n));
      const msg = await refused(f);
      assert.match(msg, /truncated|empty|incomplete|missing/, `cut at ${n}: ${msg}`);
    }
    writeFileSync(f, good);
    truncateSync(f, Math.floor(good.length / 2));
    await refused(f, /truncated/);
  });

  // Found by fuzzing (test/fuzz/corpus/bundle/regress-unreadable-size.vmwu): tar-stream gave size null and
  // never ended the entry, so readBundle never settled (the process exited 13, or hung).
  test('a size field tar-stream cannot read is refused, not waited on', async () => {
    const dir = tmp();
    const { out } = await fixture(dir);
    const b = readFileSync(out);
    b[124] = 0x98; // manifest.json's size field: base-256 without its 0x80 mark
    const f = join(dir, 'size.vmwu');
    writeFileSync(f, fixTarChecksums(b));
    await refused(f, /entry "manifest\.json" \(byte 0\) has a size field that is not a number/);
  });

  test('extra entries, trailing data and a wrong first entry are refused', async () => {
    const dir = tmp();
    const { out } = await fixture(dir);
    const good = readFileSync(out);
    const f = join(dir, 'x.vmwu');
    writeFileSync(f, good);
    appendFileSync(f, Buffer.from('garbage'));
    await refused(f, /unexpected data after its last entry/);

    // A valid tar entry appended after the marker: tar readers would happily list it.
    const extra = tar.pack();
    extra.entry({ name: 'evil.sh' }, 'rm -rf /');
    extra.finalize();
    const chunks: Buffer[] = [];
    for await (const c of extra) chunks.push(c as Buffer);
    writeFileSync(f, Buffer.concat([good, ...chunks]));
    await refused(f, /unexpected data before entry "evil\.sh"/);

    writeFileSync(f, Buffer.concat(chunks));
    await refused(f, /first entry is "evil\.sh"/);
  });

  test('export refuses a blob that does not match its digest, and leaves no file', async () => {
    const dir = tmp();
    const blob = join(dir, 'b');
    writeFileSync(blob, 'not what the digest says');
    const out = join(dir, 'o.vmwu');
    await assert.rejects(writeBundle({ out, manifest: '{}', ovf: '', blobs: [{ digest: sha('x'), size: 25, path: blob }], mtime: new Date() }),
      (e: unknown) => e instanceof VmwuError && e.code === 'BLOB_CORRUPT');
    assert.deepEqual(readdirSync(dir), ['b']);
  });
});
