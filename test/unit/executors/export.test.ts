import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportJobsText, type ExportInput } from '../../../src/executors/export.js';
import { fixturesDir } from '../../support/fixture-path.js';

/** Compares with test/fixtures/executors/NAME; UPDATE_GOLDEN=1 rewrites it. */
function golden(name: string, text: string): void {
  const file = join(fixturesDir, 'executors', name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
  assert.equal(text, readFileSync(file, 'utf8'), `differs from ${file} (UPDATE_GOLDEN=1 to accept)`);
}

const input: ExportInput = {
  experiment: 'aerofoil',
  jobs: [1, 2, 3, 5].map((i) => ({ index: i, params: { angle: String(i * 2), mesh: `m${i}.dat` } })),
  resources: { memoryMiB: 256, cpus: 1, timeoutMs: 10 * 60_000 },
  tasksDir: '/shared/vmwu/experiments/aerofoil/htcondor/tasks', node: '/usr/bin/node', vmwuJs: '/opt/vmwu/bin/vmwu.js', logDir: '/shared/vmwu/experiments/aerofoil/out',
};

test('HTCondor submit description (golden): vanilla universe, vmwu sweep-task per job, queue from the job table', () => {
  const text = exportJobsText('htcondor', input);
  golden('aerofoil.sub', text);
  assert.match(text, /^universe\s+= vanilla$/m);
  assert.match(text, /^queue job from \(\n {2}1\n {2}2\n {2}3\n {2}5\n\)$/m);
  assert.match(text, /^request_memory\s+= 512M$/m);
});

test('PBS/TORQUE array script (golden)', () => {
  const text = exportJobsText('pbs', input);
  golden('aerofoil.pbs', text);
  assert.match(text, /^#PBS -t 1-3,5$/m);
  assert.match(text, /^#PBS -l nodes=1:ppn=1,mem=512mb,walltime=00:15:00$/m);
});
