import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDb } from '../../../src/store/db.js';
import { migrations } from '../../../src/store/migrations.js';
import { experimentTotals, recountTotals } from '../../../src/sweep/records/reads.js';

test('migration 19 brings the totals, the latest attempts and the parameters of an older store in', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'vmwu-migration-')), 'vmwu.db');
  const old = openDb(path, { migrations: migrations.filter((m) => m.version <= 18) });
  const t = '2026-12-01T00:00:00.000Z';
  const exp = old.prepare(`INSERT INTO experiments (name, created_at, updated_at, state, plan_path, plan_root, plan_text, seed, target, resources, max_retries, job_count, dir)
    VALUES (?, ?, ?, 'stopped', '/p.pln', '/', '', 1, '{}', '{}', 1, ?, '/d')`);
  const job = old.prepare(`INSERT INTO experiment_jobs (experiment, idx, params, commands, state, attempts, failures, started_at) VALUES (?, ?, ?, '[]', ?, ?, ?, ?)`);
  const attempt = old.prepare(`INSERT INTO attempts (experiment, job, attempt, run_id, owner, status, out_dir, started_at, total_ms, host, cpu_ms, max_rss_kib)
    VALUES (?, ?, ?, ?, 'o', ?, '/o', ?, ?, ?, ?, ?)`);
  exp.run('old', t, t, 4);
  exp.run('empty', t, t, 0);
  job.run('old', 1, '{"x":"1","y":"a"}', 'succeeded', 2, 1, '2026-12-01T00:00:05.000Z');
  job.run('old', 2, '{"x":"2","y":"a"}', 'pending', 1, 1, '2026-12-01T00:00:03.000Z');
  job.run('old', 3, '{"x":"3","y":"b"}', 'running', 1, 0, '2026-12-01T00:00:09.000Z');
  job.run('old', 4, '{"x":"4","y":"b"}', 'pending', 0, 0, null);
  attempt.run('old', 1, 1, 'r11', 'failed', t, 500, 'h1', 40, 900);
  attempt.run('old', 1, 2, 'r12', 'succeeded', t, 700, 'h2', 60, 1000);
  attempt.run('old', 2, 1, null, 'timeout', t, 900, null, null, null);
  attempt.run('old', 3, 1, 'r31', 'running', t, null, 'h1', null, null);
  old.close();

  const db = openDb(path);
  for (const name of ['old', 'empty']) assert.deepEqual(experimentTotals(db, name), recountTotals(db, name), name);
  const totals = experimentTotals(db, 'old');
  assert.deepEqual(totals.counts, { pending: 2, running: 1, succeeded: 1, failed: 0, cancelled: 0, total: 4 });
  assert.equal(totals.retrying, 1);
  assert.equal(totals.firstStartedAt, '2026-12-01T00:00:03.000Z');
  assert.deepEqual([totals.attempts, totals.attemptsRunning, totals.attemptsWithRun, totals.timed, totals.timedMs], [4, 1, 3, 3, 2100]);
  assert.deepEqual(db.prepare(`SELECT idx, last_run_id AS run, last_host AS host, last_total_ms AS ms, last_cpu_ms AS cpu, last_max_rss_kib AS rss
    FROM experiment_jobs WHERE experiment = 'old' ORDER BY idx`).all(), [
    { idx: 1, run: 'r12', host: 'h2', ms: 700, cpu: 60, rss: 1000 },
    { idx: 2, run: null, host: null, ms: 900, cpu: null, rss: null },
    { idx: 3, run: 'r31', host: 'h1', ms: null, cpu: null, rss: null },
    { idx: 4, run: null, host: null, ms: null, cpu: null, rss: null },
  ]);
  assert.deepEqual(db.prepare(`SELECT idx FROM job_params WHERE experiment = 'old' AND name = 'y' AND value = 'b' ORDER BY idx`).all(), [{ idx: 3 }, { idx: 4 }]);
  db.close();
});
