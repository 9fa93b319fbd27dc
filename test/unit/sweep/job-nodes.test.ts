import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobNodes, nodesChecker } from '../../../src/sweep/job-nodes.js';
import { parsePlan } from '../../../src/sweep/plan/index.js';
import { nodesOf } from '../../../src/request/resolve.js';

const plan = parsePlan('parameter x integer range from 1 to 2\nparameter n text select anyof "2" "x"\ntask main\n  shexec "true"\nendtask\n', 'p.pln');

test('--nodes: a number, a plan parameter on a sweep, else the unit\'s', () => {
  assert.deepEqual(nodesOf('4', undefined, 'run'), { nodes: 4 });
  assert.deepEqual(nodesOf('1', 3, 'run'), {}, 'one VM given over the unit\'s');
  assert.deepEqual(nodesOf(undefined, 3, 'sweep'), { nodes: 3 });
  assert.deepEqual(nodesOf(undefined, 3, 'shell'), {}, 'a shell is one VM');
  assert.deepEqual(nodesOf('ranks', undefined, 'sweep'), { nodesFrom: 'ranks' });
  assert.throws(() => nodesOf('ranks', undefined, 'run'), /expected a number of VMs/);
  assert.throws(() => nodesOf('255', undefined, 'run'), /1 to 254 VMs/);
  assert.throws(() => nodesOf('2', undefined, 'shell'), /a shell is one VM/);
});

test('a job takes its VMs from the plan parameter; a value that is not a number of VMs names the file, line and job', () => {
  assert.equal(jobNodes({ nodesFrom: 'x' }, { x: '3' }), 3);
  assert.equal(jobNodes({ nodes: 2 }, { x: '3' }), 2);
  assert.equal(jobNodes({}, {}), 1);
  const c = nodesChecker(plan, { nodesFrom: 'x' });
  c.check({ index: 1, params: { x: '1' } });
  c.check({ index: 2, params: { x: '2' } });
  assert.equal(c.most(), 2);
  const bad = nodesChecker(plan, { nodesFrom: 'n' });
  bad.check({ index: 1, params: { n: '2' } });
  assert.throws(() => bad.check({ index: 2, params: { n: 'x' } }), /p\.pln:2: parameter n gives job 2 "x" VMs/);
  assert.throws(() => nodesChecker(plan, { nodesFrom: 'ranks' }), /p\.pln has no parameter ranks \(it has: x, n\)/);
});
