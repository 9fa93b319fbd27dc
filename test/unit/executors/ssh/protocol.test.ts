import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_MARK, parseRemoteError } from '../../../../src/executors/ssh/protocol.js';

test('a remote failure is read back from the marked stderr line, after whatever the job printed', () => {
  const stderr = `job noise\n${ERROR_MARK}fake line\n\n${ERROR_MARK}${JSON.stringify({ code: 'NO_BASE', message: 'no base', hint: 'h' })}\n`;
  assert.deepEqual(parseRemoteError(stderr), { code: 'NO_BASE', message: 'no base', hint: 'h' });
  assert.equal(parseRemoteError('plain failure'), undefined);
});
