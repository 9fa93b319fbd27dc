import assert from 'node:assert/strict';
import { test } from 'node:test';
import { afterVerdict, parseAfter } from '../../../src/sweep/after.js';
import { parseInputsFrom } from '../../../src/sweep/gather.js';

test('--after takes an experiment and how it must end', () => {
  assert.deepEqual(parseAfter('prep'), { experiment: 'prep', condition: 'succeeded' });
  assert.deepEqual(parseAfter('prep:finished'), { experiment: 'prep', condition: 'finished' });
  assert.throws(() => parseAfter('prep:done'), /"done" is not a condition/);
  assert.throws(() => parseAfter(':succeeded'), /no experiment named/);
});

test('what the waiting one does for each state of the one it waits for', () => {
  const ok = parseAfter('a');
  const any = parseAfter('a:finished');
  for (const s of ['created', 'running', 'cancelling', 'stopped'] as const) {
    assert.equal(afterVerdict(ok, s), 'wait');
    assert.equal(afterVerdict(any, s), 'wait');
  }
  assert.equal(afterVerdict(ok, 'succeeded'), 'go');
  assert.deepEqual(afterVerdict(ok, 'failed'), { cancel: 'the experiment it waited for, a, failed' });
  assert.deepEqual(afterVerdict(ok, 'cancelled'), { cancel: 'the experiment it waited for, a, was cancelled' });
  assert.equal(afterVerdict(any, 'failed'), 'go');
  assert.equal(afterVerdict(any, 'cancelled'), 'go');
  assert.deepEqual(afterVerdict(any, undefined), { cancel: 'the experiment it waited for, a, no longer exists' });
});

test('--inputs-from EXP:GLOB', () => {
  assert.deepEqual(parseInputsFrom('mandel:*.ppm'), { experiment: 'mandel', glob: '*.ppm' });
  assert.deepEqual(parseInputsFrom('m:out/**/x:y'), { experiment: 'm', glob: 'out/**/x:y' });
  assert.throws(() => parseInputsFrom('mandel'), /expected EXPERIMENT:GLOB/);
  assert.throws(() => parseInputsFrom('mandel:'), /expected EXPERIMENT:GLOB/);
});
