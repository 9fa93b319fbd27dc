import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VmwuError } from '../../../src/errors.js';
import type { Digest } from '../../../src/store/blobs.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, checkManifest, DATASETS_SINCE, decodeManifest, encodeManifest, type BundleManifestBody } from '../../../src/bundle/manifest.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

/** Two layers on a base; with the base's three blobs when `withBase`. */
function body(withBase = true): BundleManifestBody {
  const base = {
    name: 'tiny', digest: d('b'), arch: 'x86_64', os: 'linux', description: 'busybox', boot: 'kernel' as const,
    kernel: d('c'), initrd: d('d'), root: d('e'), cmdline: 'console=ttyS0', size: 300, virtualSize: 1 << 30, packageManager: null, image: null, createdAt: '2026-01-01T00:00:00.000Z',
  };
  const layer = (digest: Digest, parent: Digest, kind: 'packages' | 'app') => ({
    digest, parent, baseDigest: base.digest, kind, packages: ['gcc'], key: `k-${digest.slice(7, 9)}`, size: 100, createdAt: '2026-01-01T00:00:00.000Z',
  });
  return {
    format: BUNDLE_FORMAT, formatVersion: 1, createdAt: '2026-01-02T00:00:00.000Z', producer: 'vmwu test', withBase,
    unit: {
      name: 'demo', version: '1.0.0', digest: d('f'), base: 'tiny', baseDigest: base.digest, top: d('1'), chain: [d('1'), d('2')],
      run: ['sh', '-c', 'echo "${n}" > out'], params: { n: { default: '5', type: 'int' } }, outputs: ['out'],
      resources: { memoryMiB: 512, cpus: 2 }, network: false, buildKey: 'bk', packages: ['gcc'], createdAt: '2026-01-01T00:00:00.000Z',
    },
    layers: [layer(d('1'), d('2'), 'app'), layer(d('2'), base.root, 'packages')],
    base,
    ovf: { digest: d('a'), size: 1234 },
    blobs: [
      { digest: d('1'), size: 100, role: 'layer' }, { digest: d('2'), size: 100, role: 'layer' },
      ...(withBase ? [{ digest: d('c'), size: 100, role: 'kernel' as const }, { digest: d('d'), size: 100, role: 'initrd' as const }, { digest: d('e'), size: 100, role: 'root' as const }] : []),
    ],
  };
}

/** body() carrying one dataset the unit names, as `export --with-data` writes it. */
function withData(): BundleManifestBody {
  const b = body();
  b.formatVersion = DATASETS_SINCE;
  b.unit.data = ['protdb:1'];
  b.datasets = [{ name: 'protdb', version: '1', digest: d('7'), format: 'erofs', imageBytes: 8192, contentBytes: 5000, files: 2, source: '/srv/db', createdAt: '2026-01-01T00:00:00.000Z' }];
  b.blobs.push({ digest: d('7'), size: 8192, role: 'dataset' });
  return b;
}

const bytes = (s: string) => Buffer.from(s, 'utf8');

function refused(fn: () => unknown, pattern?: RegExp, code = 'BAD_BUNDLE'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VmwuError, `expected a VmwuError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

describe('bundle manifest', () => {
  test('encodes to pretty JSON with the self-digest last, and decodes back to the same manifest', () => {
    for (const withBase of [true, false]) {
      const b = body(withBase);
      const text = encodeManifest(b);
      assert.ok(text.endsWith('\n'));
      const parsed = JSON.parse(text) as Record<string, unknown>;
      assert.equal(Object.keys(parsed).at(-1), 'digest');
      assert.match(String(parsed.digest), /^sha256:[0-9a-f]{64}$/);
      const m = decodeManifest(bytes(text));
      const { digest: _digest, ...rest } = m;
      assert.deepEqual(rest, b);
    }
  });

  test('any single flipped bit anywhere in manifest.json is refused', () => {
    const text = bytes(encodeManifest(body()));
    for (const mask of [0x01, 0x20, 0x80]) {
      for (let i = 0; i < text.length; i++) {
        const copy = Buffer.from(text);
        copy[i]! ^= mask;
        assert.throws(() => decodeManifest(copy), (e: unknown) => e instanceof VmwuError && (e.code === 'BAD_BUNDLE' || e.code === 'BUNDLE_TOO_NEW'),
          `flip 0x${mask.toString(16)} at byte ${i} (${JSON.stringify(text.toString('latin1', Math.max(0, i - 10), i + 10))}) was accepted`);
      }
    }
  });

  test('names what is wrong: not JSON, not UTF-8, not a bundle, altered, re-formatted', () => {
    refused(() => decodeManifest(bytes('{"format": ')), /not valid JSON/);
    refused(() => decodeManifest(Buffer.from([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
    refused(() => decodeManifest(bytes('[1,2]')), /not a JSON object/);
    refused(() => decodeManifest(bytes('{"format":"zip"}')), /format is "zip"/);
    const m = JSON.parse(encodeManifest(body())) as Record<string, unknown> & { unit: { name: string } };
    m.unit.name = 'other';
    refused(() => decodeManifest(bytes(JSON.stringify(m, null, 2) + '\n')), /does not match its digest/);
    const compact = JSON.stringify(JSON.parse(encodeManifest(body())));
    refused(() => decodeManifest(bytes(compact)), /byte for byte/);
  });

  test('a newer format version is reported as such, not as damage', () => {
    const b = { ...body(), formatVersion: BUNDLE_VERSION + 1 };
    refused(() => decodeManifest(bytes(encodeManifest(b))), new RegExp(`format version ${BUNDLE_VERSION + 1}`), 'BUNDLE_TOO_NEW');
  });

  test('the schema is checked after the digest, naming the field', () => {
    const b = body() as unknown as Record<string, unknown> & { blobs: { digest: string }[]; base: Record<string, unknown> };
    b.blobs[0]!.digest = 'sha256:xyz';
    refused(() => decodeManifest(bytes(encodeManifest(b as unknown as BundleManifestBody))), /blobs\.0\.digest/);
    const c = body() as unknown as Record<string, unknown>;
    c.extra = 1;
    refused(() => decodeManifest(bytes(encodeManifest(c as unknown as BundleManifestBody))), /schema.*extra|Unrecognized key/i);
    const u = body();
    u.unit.name = 'has space';
    refused(() => decodeManifest(bytes(encodeManifest(u))), /unit\.name/);
  });

  test('unknown unit fields survive (a newer vmwu may add some); unknown layer fields are dropped', () => {
    const b = body();
    (b.unit as unknown as Record<string, unknown>).futureField = { x: 1 };
    const m = decodeManifest(bytes(encodeManifest(b)));
    assert.deepEqual((m.unit as unknown as Record<string, unknown>).futureField, { x: 1 });
  });

  describe('cross-field rules', () => {
    // [what, the bundle it starts from, the change, the refusal]
    const cases: [string, () => BundleManifestBody, (b: BundleManifestBody) => void, RegExp][] = [
      ['chain top', body, (b) => { b.unit.top = d('9'); }, /top/],
      ['layer rows out of order', body, (b) => { b.layers.reverse(); }, /layer row 0/],
      ['a missing layer row', body, (b) => { b.layers.pop(); }, /2 layer\(s\) but 1 layer row/],
      ['a broken parent link', body, (b) => { b.layers[1]!.parent = d('9'); }, /has parent/],
      ['a layer of another base', body, (b) => { b.layers[0]!.baseDigest = d('9'); }, /belongs to base/],
      ['the unit on another base', body, (b) => { b.unit.baseDigest = d('9'); }, /not the bundled base/],
      ['a missing root blob', body, (b) => { b.blobs.pop(); }, /4 blob\(s\) listed, 5 expected/],
      ['a blob listed twice', body, (b) => { b.blobs[1] = { ...b.blobs[0]! }; }, /listed twice/],
      ['blobs out of order', body, (b) => { [b.blobs[2], b.blobs[3]] = [b.blobs[3]!, b.blobs[2]!]; }, /blob 2 is initrd/],
      ['base blobs without withBase', body, (b) => { b.withBase = false; }, /5 blob\(s\) listed, 2 expected/],
      ['datasets in a version-1 bundle', withData, (b) => { b.formatVersion = 1; }, /format version 1 has none/],
      ['a dataset the unit does not name', withData, (b) => { b.unit.data = ['other:1']; }, /protdb:1 is carried, but the unit's data: does not name it/],
      ['a dataset blob of another size', withData, (b) => { b.blobs.at(-1)!.size = 4096; }, /has 4096 bytes, its dataset row says 8192/],
      ['a dataset listed twice', withData, (b) => { b.unit.data!.push('protdb:1'); b.datasets!.push({ ...b.datasets![0]! }); b.blobs.push({ ...b.blobs.at(-1)! }); }, /dataset protdb is listed twice/],
      ['a dataset without its blob', withData, (b) => { b.blobs.pop(); }, /5 blob\(s\) listed, 6 expected/],
      ['a unit data: entry that is not a dataset name', withData, (b) => { b.unit.data = ['../etc']; }, /the unit's data: .*not a dataset name/],
    ];
    for (const [what, make, mutate, pattern] of cases) {
      test(`refuses ${what}`, () => {
        const b = make();
        mutate(b);
        refused(() => checkManifest(b), pattern);
        refused(() => decodeManifest(bytes(encodeManifest(b))), pattern);
      });
    }

    test('a carried dataset round-trips; its name and source are checked as untrusted text', () => {
      const b = withData();
      const { digest: _digest, ...rest } = decodeManifest(bytes(encodeManifest(b)));
      assert.deepEqual(rest, b);
      const evil = withData();
      evil.datasets![0]!.source = 'x\u001b[2Jy';
      refused(() => decodeManifest(bytes(encodeManifest(evil))), /datasets\.0\.source/);
      const named = withData();
      named.datasets![0]!.name = '../../x';
      refused(() => decodeManifest(bytes(encodeManifest(named))), /datasets\.0\.name/);
    });

    test('a unit with no layers (runs the bare base) is fine', () => {
      const b = body(false);
      b.unit.chain = [];
      b.unit.top = b.base.root;
      b.layers = [];
      b.blobs = [];
      assert.doesNotThrow(() => checkManifest(b));
    });
  });
});
