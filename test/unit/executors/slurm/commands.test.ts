import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dependencyNotLifted } from '../../../../src/executors/slurm/commands.js';

test('lifting an array\'s dependency: ranges already finished or running are nothing to lift; any other answer is an error', () => {
  // What slurmctld answered when some of the array's tasks had run and ended before the lift.
  assert.equal(dependencyNotLifted('18_1-2: Job has already finished\n18_3-4: No error\n'), null);
  assert.equal(dependencyNotLifted('scontrol: error: Invalid job id specified\n'), null);
  assert.equal(dependencyNotLifted('Job is no longer pending execution for job 7\n'), null);
  assert.equal(dependencyNotLifted('7_[3-5]: Job/step already completing or completed\n'), null);
  assert.equal(dependencyNotLifted('18_1-2: Job has already finished\n18_3-4: Access/permission denied\n'), '18_3-4: Access/permission denied');
  assert.equal(dependencyNotLifted(''), '', 'a failure that says nothing is one');
});
