import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerBase } from '../../src/store/bases.js';
import type { Digest } from '../../src/store/blobs.js';
import { openStore, type Store } from '../../src/store/store.js';
import { createExperiment } from '../../src/sweep/experiment.js';
import type { Experiment } from '../../src/sweep/records/types.js';

/** A store of its own in a temporary directory, with a fake base and one experiment of `jobs` jobs on it: for unit tests of what runs experiments, with no VM. */
export async function storeWithExperiment(name: string, jobs: number): Promise<{ store: Store; e: Experiment }> {
  const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-exp-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'),
    root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  mkdirSync(join(dir, 'exp'));
  writeFileSync(join(dir, 'exp', 'plan.pln'), `parameter x integer range from 1 to ${jobs}\ntask main\n  exec true\nendtask\n`);
  const e = await createExperiment(store, { planPath: join(dir, 'exp', 'plan.pln'), base: 'fake', name });
  return { store, e };
}
