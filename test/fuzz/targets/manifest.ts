import { isVmwuError } from '../../../src/errors.js';
import { decodeManifest, encodeManifest, type BundleManifest, type BundleManifestBody } from '../../../src/bundle/manifest.js';
import { renderOvf } from '../../../src/bundle/ovf.js';
import { violated, type FuzzTarget } from '../target.js';

/**
 * A bundle's manifest.json. Each input is decoded as it is, then once more with its
 * self-digest and layout made right, so that edits get past the integrity check to the
 * schema and the cross-field rules. Besides "typed errors only": what is accepted has
 * names fit for file names, store keys and XML, and can be exported again (its OVF renders).
 */
const SAFE_LABEL = /^[^\s/\\\p{Cc}]+$/u;

function accept(m: BundleManifest): void {
  for (const [what, v] of [['unit name', m.unit.name], ['unit version', m.unit.version], ['base name', m.base.name]] as const) {
    if (typeof v !== 'string' || !SAFE_LABEL.test(v)) violated(`accepted a manifest whose ${what} is ${JSON.stringify(v)}`);
  }
  renderOvf({
    unit: m.unit, base: m.base, producer: 'fuzz', memoryMiB: m.unit.resources.memoryMiB ?? 256, cpus: m.unit.resources.cpus ?? 1,
    disks: [
      ...m.layers.map((l) => ({ digest: l.digest, size: l.size, virtualSize: 1 << 20, role: 'layer' as const, kind: l.kind, packages: l.packages, included: true })),
      { digest: m.base.root, size: m.base.size, virtualSize: m.base.virtualSize, role: 'root' as const, included: m.withBase },
    ],
    bootFiles: [
      ...(m.base.kernel ? [{ role: 'kernel' as const, digest: m.base.kernel, size: 1, included: m.withBase }] : []),
      ...(m.base.initrd ? [{ role: 'initrd' as const, digest: m.base.initrd, size: 1, included: m.withBase }] : []),
    ],
  });
}

function decode(bytes: Uint8Array): void {
  let m: BundleManifest;
  try {
    m = decodeManifest(bytes);
  } catch (e) {
    if (isVmwuError(e)) return;
    throw e;
  }
  accept(m);
}

const target: FuzzTarget = {
  maxLen: 16 * 1024,
  dictionary: ['"format"', '"vmwu-bundle"', '"formatVersion"', '"digest"', '"sha256:', '"unit"', '"base"', '"layers"', '"blobs"', '"chain"', '"top"',
    '"root"', '"kernel"', '"initrd"', '"layer"', '"role"', '"size"', '"withBase"', 'true', 'false', 'null', '"__proto__"', '"constructor"',
    '"name"', '"version"', '"params"', '"run"', '"resources"', '"memoryMiB"', '"cpus"', '1e308', '-1', '0.5', '[]', '{}', '"\\u0000"', '"a/b"',
    '"a:b"', '"\\ud800"', '0000000000000000000000000000000000000000000000000000000000000000', '"packageManager"', '"apt"', '"bios"'],
  run(data) {
    decode(data);
    let obj: unknown;
    try {
      obj = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return;
    const { digest: _digest, ...body } = obj as Record<string, unknown>;
    decode(Buffer.from(encodeManifest(body as unknown as BundleManifestBody)));
  },
};
export default target;
