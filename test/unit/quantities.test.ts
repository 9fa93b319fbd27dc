import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, parseDuration, parseSize } from '../../src/quantities.js';

test('durations', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1500ms'), 1500);
  assert.equal(parseDuration('2'), 2000);
  for (const bad of ['', '10x', 'm', '-5s', '0s', '5 s']) assert.throws(() => parseDuration(bad, '--timeout'), /--timeout/);
});

test('sizes', () => {
  assert.equal(parseSize('512M'), 512 * 1024 ** 2);
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('4096k'), 4096 * 1024);
  assert.equal(parseSize('100'), 100);
  assert.equal(parseSize('64MiB'), 64 * 1024 ** 2);
  for (const bad of ['', 'lots', '1Q', '0']) assert.throws(() => parseSize(bad, '--memory'), /--memory/);
  assert.equal(formatBytes(3 * 1024 ** 2), '3.0 MiB');
});
