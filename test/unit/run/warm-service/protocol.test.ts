import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunRequest } from '../../../../src/run/job-request.js';
import { absolutePaths, clientMessage, serviceMessage, serviceRefuses, warmServiceSocket } from '../../../../src/run/warm-service/protocol.js';

const req: RunRequest = { base: 'tiny', argv: ['true'], memoryMiB: 256, cpus: 1, timeoutMs: 1000, maxOutputBytes: 1 };

test('a request goes to the service with every host path absolute, from the caller\'s directory', () => {
  const r = absolutePaths({ ...req, outDir: 'out', app: './app', inputs: ['a.txt', { path: '../b', name: 'b' }, '/abs/c'], stdin: { host: 'in.txt' } }, '/home/u/work');
  assert.equal(r.outDir, '/home/u/work/out');
  assert.equal(r.app, '/home/u/work/app');
  assert.deepEqual(r.inputs, ['/home/u/work/a.txt', { path: '/home/u/b', name: 'b' }, '/abs/c']);
  assert.deepEqual(r.stdin, { host: '/home/u/work/in.txt' });
  assert.deepEqual(absolutePaths({ ...req, stdin: { work: 'x' } }, '/w').stdin, { work: 'x' }, 'a file of the work dir is the guest\'s');
});

test('shells, VMs of multi-VM jobs, builds and restores are not the service\'s', () => {
  assert.equal(serviceRefuses(req), undefined);
  assert.match(serviceRefuses({ ...req, tty: { rows: 1, cols: 1, term: 'x' } }) ?? '', /shell/);
  assert.match(serviceRefuses({ ...req, segment: { index: 0, size: 2, socket: 's', token: 't' } }) ?? '', /multi-VM/);
  assert.match(serviceRefuses({ ...req, keepRoot: '/x' }) ?? '', /build/);
  assert.match(serviceRefuses({ ...req, resumeFrom: '/ck' }) ?? '', /checkpoint/);
  assert.match(serviceRefuses({ ...req, checkpointable: true }) ?? '', /RAM is a file of its own/);
});

test('the socket is named for the store, in the node dir unless that path is too long for a socket', () => {
  const a = warmServiceSocket('/tmp/vmwu-0', '/tmp/vmwu-0/s', '/home/u/store');
  assert.match(a, /^\/tmp\/vmwu-0\/warm-[0-9a-f]{16}\.sock$/);
  assert.notEqual(a, warmServiceSocket('/tmp/vmwu-0', '/tmp/vmwu-0/s', '/home/u/other'));
  assert.match(warmServiceSocket(`/${'d'.repeat(120)}`, '/tmp/vmwu-0/s', '/home/u/store'), /^\/tmp\/vmwu-0\/s\/warm-/);
});

test('what either end reads is checked: unknown or malformed messages are refused', () => {
  assert.equal(clientMessage.safeParse({ t: 'run', request: { base: 'tiny', argv: ['true'] }, cache: {} }).success, true);
  assert.equal(clientMessage.safeParse({ t: 'run', request: { argv: 'true' }, cache: {} }).success, false);
  assert.equal(clientMessage.safeParse({ t: 'exec', cmd: 'rm -rf /' }).success, false);
  assert.equal(serviceMessage.safeParse({ t: 'out', stream: 'stdout', data: 'aGk=' }).success, true);
  assert.equal(serviceMessage.safeParse({ t: 'out', stream: 'console', data: 'aGk=' }).success, false);
  assert.equal(serviceMessage.safeParse({ t: 'out', stream: 'stdout', data: 'not base64!' }).success, false);
});
