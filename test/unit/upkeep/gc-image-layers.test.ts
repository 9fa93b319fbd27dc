import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerBase, removeBase, type ImageBase } from '../../../src/store/bases.js';
import { digestString, type Digest } from '../../../src/store/blobs.js';
import { allImageLayers, insertImageLayer } from '../../../src/store/image-layers.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { runGc } from '../../../src/upkeep/gc.js';

/** gc and converted image layers: kept while a base names them, forgotten (row and blob) once none does. */

async function blob(store: Store, dir: string, text: string): Promise<Digest> {
  writeFileSync(join(dir, text), text);
  return (await store.blobs.putFile(join(dir, text), { move: true })).digest;
}

function imageBase(store: Store, name: string, layers: Digest[], boot: { kernel: Digest; initrd: Digest }): void {
  const [root, ...above] = layers;
  const image: ImageBase = {
    ref: `oci:/x:${name}`, manifest: digestString(name), layers: above.reverse(), shell: true,
    process: { entrypoint: [], cmd: ['sh'], env: [], workingDir: '', user: '' },
  };
  registerBase(store.db, {
    name, digest: digestString(`base ${name}`), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', ...boot, root: root!, cmdline: '',
    size: 1, virtualSize: 1 << 20, image,
  });
}

test('image layers live as long as a base names them; the layer two images share lives as long as either', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-gc-image-'));
  const store = openStore(join(dir, 'store'));
  const boot = { kernel: await blob(store, dir, 'kernel'), initrd: await blob(store, dir, 'initrd') };
  const shared = await blob(store, dir, 'shared base layer');
  const a = await blob(store, dir, 'layer of a');
  const b = await blob(store, dir, 'layer of b');
  for (const [key, digest, parent] of [['k0', shared, null], ['ka', a, shared], ['kb', b, shared]] as const) {
    insertImageLayer(store.db, { key, digest, parent, diffId: digestString(key), size: 10 });
  }
  imageBase(store, 'a', [shared, a], boot);
  imageBase(store, 'b', [shared, b], boot);
  // Old enough for gc: rows and files past the grace period.
  store.db.prepare('UPDATE image_layers SET created_at = ?').run(new Date(Date.now() - 3_600_000).toISOString());
  const old = new Date(Date.now() - 3_600_000);
  for (const n of readdirSync(store.paths.blobs)) utimesSync(join(store.paths.blobs, n), old, old);

  assert.deepEqual(runGc(store).layers, [], 'both bases name all their layers');
  removeBase(store.db, 'a');
  const first = runGc(store);
  assert.deepEqual(first.layers.map((l) => [l.digest, l.kind]), [[a, 'image']]);
  assert.deepEqual(first.blobs.map((x) => x.digest), [a]);
  assert.deepEqual(allImageLayers(store.db).map((l) => l.key).sort(), ['k0', 'kb'], 'the shared layer stays for b');
  assert.equal(store.blobs.has(a), false);
  removeBase(store.db, 'b');
  const second = runGc(store);
  assert.deepEqual(second.layers.map((l) => l.digest).sort(), [shared, b].sort());
  assert.deepEqual(allImageLayers(store.db), []);
  assert.equal(store.blobs.has(shared), false);
  store.close();
});
