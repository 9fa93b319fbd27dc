import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeSignature, emptyTotals, estimateEtaMs, jobsInStates, meanAttemptMs, totalsFromRow, type TotalsRow } from '../../../../src/sweep/records/summary.js';

const row = (o: Partial<TotalsRow> = {}): TotalsRow => ({
  experiment: 'e', pending: 5, running: 2, succeeded: 10, failed: 3, cancelled: 1, retrying: 1, first_started_at: '2026-12-06T00:00:00.000Z',
  attempts: 20, attempts_running: 2, attempts_with_run: 18, timed: 13, timed_ms: 26_000, ...o,
});

test('kept totals: the job total is the sum of the states', () => {
  const t = totalsFromRow(row());
  assert.deepEqual(t.counts, { pending: 5, running: 2, succeeded: 10, failed: 3, cancelled: 1, total: 21 });
  assert.equal(t.firstStartedAt, '2026-12-06T00:00:00.000Z');
  assert.equal(emptyTotals('x').counts.total, 0);
});

test('ETA: mean attempt time × jobs left ÷ slots, only while running with a slot and a measured attempt', () => {
  const t = totalsFromRow(row());
  assert.equal(meanAttemptMs(t), 2000);
  assert.equal(estimateEtaMs(t, true, 2), Math.round((7 * 2000) / 2));
  assert.equal(estimateEtaMs(t, false, 2), null, 'not running');
  assert.equal(estimateEtaMs(t, true, null), null, 'no slots known');
  assert.equal(estimateEtaMs(t, true, 0), null);
  assert.equal(estimateEtaMs(totalsFromRow(row({ timed: 0, timed_ms: 0 })), true, 2), null, 'nothing measured yet');
});

test('jobs in states: all without a filter, each state once', () => {
  const c = totalsFromRow(row()).counts;
  assert.equal(jobsInStates(c, []), 21);
  assert.equal(jobsInStates(c, ['failed']), 3);
  assert.equal(jobsInStates(c, ['failed', 'pending', 'failed']), 8, 'a state named twice counts once');
});

test('the change signature moves with every count and the experiment row, and only with them', () => {
  const e = { state: 'running', updatedAt: 't1', owner: 'o' };
  const base = changeSignature(e, totalsFromRow(row()));
  assert.equal(changeSignature(e, totalsFromRow(row())), base);
  for (const k of ['pending', 'running', 'succeeded', 'failed', 'cancelled', 'attempts', 'attempts_running', 'attempts_with_run'] as const) {
    assert.notEqual(changeSignature(e, totalsFromRow(row({ [k]: row()[k] + 1 }))), base, k);
  }
  assert.notEqual(changeSignature({ ...e, updatedAt: 't2' }, totalsFromRow(row())), base);
  assert.notEqual(changeSignature({ ...e, owner: null }, totalsFromRow(row())), base);
  assert.equal(changeSignature(e, totalsFromRow(row({ timed_ms: 1 }))), base, 'a finished attempt changes its counts, not only its time');
});
