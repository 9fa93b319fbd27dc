import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busyCpusOf, servingLimit, warmable } from '../../../../src/run/fast-start/warm-pool.js';
import type { TemplateShape } from '../../../../src/run/fast-start/template.js';

test('a pool serving jobs holds a clone per job, and only on cores the jobs leave idle', () => {
  assert.equal(servingLimit(0, 0, 2), 0, 'no job, no clone');
  assert.equal(servingLimit(1, 1, 2), 1, 'one job on two cores: one clone for the next');
  assert.equal(servingLimit(2, 2, 2), 0, 'two jobs on two cores: the clone would take CPU from them');
  assert.equal(servingLimit(2, 2, 8), 2, 'never more than the jobs it serves');
  assert.equal(servingLimit(1, 4, 2), 0, 'a job of more vCPUs than cores');
});

test("a sweep's slots count as busy from its first job to its last", () => {
  assert.equal(busyCpusOf([]), 0);
  assert.equal(busyCpusOf([{ cpus: 1, slots: 2 }]), 2, 'the first of two slots started: the second is about to');
  assert.equal(busyCpusOf([{ cpus: 2, slots: 1 }, { cpus: 1, slots: 1 }]), 3, 'jobs of two callers add up');
  assert.equal(busyCpusOf([{ cpus: 1, slots: 1 }]), 1, 'one slot on more cores: the rest stay idle for a clone');
  assert.equal(servingLimit(1, busyCpusOf([{ cpus: 1, slots: 2 }]), 2), 0, 'two slots on two cores: no clone, not even at the start or the tail');
});

test('only jobs whose disks are all made per job after QEMU starts take warm clones', () => {
  const shape = { app: false, data: [], network: false } as unknown as TemplateShape;
  assert.equal(warmable(shape), true);
  assert.equal(warmable({ ...shape, app: true }), false, 'an app disk is made per job before QEMU opens it');
  assert.equal(warmable({ ...shape, data: [64] }), false, 'so is a dataset disk');
  assert.equal(warmable({ ...shape, network: true }), false, 'a network is started with QEMU');
  assert.equal(warmable({ ...shape, segment: true }), false, 'a VM of a multi-VM job is wired to its hub');
});
