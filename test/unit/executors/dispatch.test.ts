import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { cancelExperimentOn, suspendExperimentOn } from '../../../src/executors/dispatch.js';
import { registrationFor } from '../../../src/executors/registry.js';
import { selfIdentity } from '../../../src/store/process-identity.js';
import type { Store } from '../../../src/store/store.js';
import { setExecutor } from '../../../src/sweep/executor-choice.js';
import { claimExperiment, releaseExperiment } from '../../../src/sweep/records/lifecycle.js';
import { storeWithExperiment } from '../../support/fake-experiment.js';

const setup = async (name: string): Promise<Store> => (await storeWithExperiment(name, 2)).store;

test('every executor kind has its registration, under its own kind', () => {
  for (const kind of ['local', 'ssh', 'slurm'] as const) assert.equal(registrationFor(kind).kind, kind);
  assert.equal(registrationFor('local').suspendRefusal, undefined, 'a local sweep can be suspended');
  assert.equal(typeof registrationFor('slurm').cancelRest, 'function', 'Slurm has arrays to scancel');
});

test('suspend: a running sweep on Slurm or the SSH pool is refused by the dispatch, after the state check', async () => {
  for (const kind of ['slurm', 'ssh'] as const) {
    const store = await setup(`s-${kind}`);
    setExecutor(store.db, `s-${kind}`, { kind, options: {} });
    await assert.rejects(suspendExperimentOn(store, `s-${kind}`), (e: unknown) => isVmwuError(e) && e.code === 'NOT_RUNNING', 'not running: said first');
    claimExperiment(store.db, `s-${kind}`, selfIdentity(), { restartCancelled: true });
    await assert.rejects(suspendExperimentOn(store, `s-${kind}`), (e: unknown) => isVmwuError(e) && e.code === 'UNSUPPORTED'
      && e.message === `experiment s-${kind} runs on ${kind}: only sweeps run on this host can be suspended yet` && e.hint === registrationFor(kind).suspendRefusal);
    releaseExperiment(store.db, `s-${kind}`, selfIdentity(), 'interrupt');
    store.close();
  }
});

test('cancel without a runner: the store is cancelled, and only Slurm has anything left to stop', async () => {
  const store = await setup('c');
  assert.deepEqual(await cancelExperimentOn(store, 'c', { pollMs: 5 }), { state: 'cancelled', scancelled: [] });
  store.close();
});
