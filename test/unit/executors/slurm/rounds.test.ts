import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pendingJobs } from '../../../../src/executors/slurm/rounds.js';
import { addSubmission } from '../../../../src/executors/slurm/submissions.js';
import { storeWithExperiment } from '../../../support/fake-experiment.js';

test('pending jobs: those with a task out are not sent again; one in backoff says when it will be ready', async () => {
  const { store } = await storeWithExperiment('rounds', 4);
  const db = store.db;
  addSubmission(db, { experiment: 'rounds', round: 1, slurmJobId: '12', scriptPath: '/x', submittedAt: new Date().toISOString() }, [{ job: 2, attempt: 1, taskId: 2 }]);
  db.prepare(`UPDATE experiment_jobs SET not_before = ? WHERE experiment = 'rounds' AND idx = 3`).run(5000);
  db.prepare(`UPDATE experiment_jobs SET not_before = ? WHERE experiment = 'rounds' AND idx = 4`).run(900);
  assert.deepEqual(pendingJobs(db, 'rounds', 1000), { ready: [1, 4], nextBackoff: 5000 });
  assert.deepEqual(pendingJobs(db, 'rounds', 6000), { ready: [1, 3, 4], nextBackoff: Infinity });
  store.close();
});
