import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { interruptOn, signalExitCode } from '../../../src/cli/interrupt.js';

// Signals are emitted on `process` (its listeners run, nothing is sent), and ones the test runner leaves alone.
describe('interruptOn', () => {
  test('the first signal aborts and is remembered, with its exit code; dispose removes the listeners', () => {
    const before = { usr2: process.listenerCount('SIGUSR2'), hup: process.listenerCount('SIGHUP') };
    const i = interruptOn(['SIGUSR2', 'SIGHUP']);
    assert.deepEqual({ usr2: process.listenerCount('SIGUSR2'), hup: process.listenerCount('SIGHUP') }, { usr2: before.usr2 + 1, hup: before.hup + 1 });
    assert.equal(i.signal.aborted, false);
    assert.equal(i.received, undefined);
    assert.equal(i.exitCode, undefined);
    process.emit('SIGHUP', 'SIGHUP');
    process.emit('SIGUSR2', 'SIGUSR2');
    assert.equal(i.signal.aborted, true);
    assert.equal((i.signal.reason as Error).name, 'AbortError');
    assert.equal(i.received, 'SIGHUP');
    assert.equal(i.exitCode, 129);
    // Still listening until disposed: a second signal is swallowed, not the default action.
    assert.equal(process.listenerCount('SIGUSR2'), before.usr2 + 1);
    i.dispose();
    assert.deepEqual({ usr2: process.listenerCount('SIGUSR2'), hup: process.listenerCount('SIGHUP') }, before);
  });

  test('once: each signal is heard one time; the abort carries the given reason', () => {
    const before = process.listenerCount('SIGUSR2');
    const i = interruptOn(['SIGUSR2'], { once: true, reason: () => new Error('stopped by a signal') });
    process.emit('SIGUSR2', 'SIGUSR2');
    assert.equal(process.listenerCount('SIGUSR2'), before);
    assert.equal((i.signal.reason as Error).message, 'stopped by a signal');
    assert.equal(i.exitCode, signalExitCode('SIGUSR2'));
    i.dispose();
    assert.equal(process.listenerCount('SIGUSR2'), before);
  });

  test('the exit code of a signal is 128 + its number', () => {
    assert.equal(signalExitCode('SIGINT'), 130);
    assert.equal(signalExitCode('SIGTERM'), 143);
    assert.equal(signalExitCode('SIGHUP'), 129);
  });
});
