import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChangeHub, type ChangeEvent } from '../../../src/server/hub.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore } from '../../../src/store/store.js';
import { createExperiment } from '../../../src/sweep/index.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

test('the change hub reports exactly the experiments that changed, and only when something did', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-hub-'));
  const store = openStore(join(dir, 'store'));
  writeFileSync(join(dir, 'p.pln'), 'parameter x integer range from 1 to 3\ntask main\n  exec work $x\nendtask\n');
  const hub = new ChangeHub(store.db, 1_000_000); // driven by hand with tick()
  const got: ChangeEvent[] = [];
  const off = hub.subscribe((ev) => got.push(ev));
  assert.equal(hub.subscribers, 1);
  hub.tick();
  assert.equal(got.length, 0, 'nothing changed, nothing sent');

  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'a' });
  await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'b' });
  hub.tick();
  assert.deepEqual(got.splice(0), [{ type: 'change', experiments: ['a', 'b'], catalog: true }]);

  // A job state change without touching the experiment row is seen too.
  store.db.prepare(`UPDATE experiment_jobs SET state = 'running' WHERE experiment = 'b' AND idx = 2`).run();
  hub.tick();
  assert.deepEqual(got.splice(0), [{ type: 'change', experiments: ['b'], catalog: false }]);
  hub.tick();
  assert.equal(got.length, 0);

  store.db.prepare(`DELETE FROM experiments WHERE name = 'a'`).run();
  hub.tick();
  assert.deepEqual(got.splice(0).map((e) => e.experiments), [['a']], 'a removed experiment is a change');

  off();
  assert.equal(hub.subscribers, 0, 'no listener: the tick stops');
  hub.close();
  store.close();
});
