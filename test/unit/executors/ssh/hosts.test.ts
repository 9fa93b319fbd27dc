import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../../src/errors.js';
import { checkHostName, hostBlobs, parseHostSpec, parseLabels, recordHostBlobs, saveHost, type HostRecord } from '../../../../src/executors/ssh/hosts.js';
import { fingerprint, remoteCommand, shQuote } from '../../../../src/executors/ssh/remote-command.js';
import { openStore } from '../../../../src/store/store.js';

test('host specs, labels, names and remote command lines', () => {
  assert.deepEqual(parseHostSpec('alice@node7', 'me'), { user: 'alice', address: 'node7', port: 22 });
  assert.deepEqual(parseHostSpec('10.0.0.7:2222', 'me'), { user: 'me', address: '10.0.0.7', port: 2222 });
  assert.deepEqual(parseHostSpec('bob@[fe80::1]:22', 'me'), { user: 'bob', address: 'fe80::1', port: 22 });
  for (const bad of ['', 'a b', 'x@y:99999', '@host']) assert.throws(() => parseHostSpec(bad, 'me'), (e: unknown) => isVmwuError(e) && e.code === 'BAD_HOST', bad);
  assert.deepEqual(parseLabels(['zone=a', 'gpu=']), { zone: 'a', gpu: '' });
  assert.throws(() => parseLabels(['zone']), /key=value/);
  assert.throws(() => checkHostName('a/b'));
  assert.equal(shQuote("it's"), `'it'\\''s'`);
  assert.equal(shQuote('sha256:ab'), 'sha256:ab');
  assert.equal(remoteCommand({ vmwu: 'node /opt/vmwu/bin/vmwu.js', store: '/srv/my store' }, ['receive', 'x y', '--size', '3']),
    `VMWU_HOME='/srv/my store' node /opt/vmwu/bin/vmwu.js remote receive 'x y' --size 3`);
  assert.equal(remoteCommand({ vmwu: 'vmwu', store: null }, ['info']), 'vmwu remote info');
  // OpenSSH's format: SHA256 of the key blob, unpadded base64.
  const blob = Buffer.from('key blob');
  assert.equal(fingerprint(blob), `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`);
  assert.doesNotMatch(fingerprint(blob), /=$/);
});

function scratchStore() {
  return openStore(join(mkdtempSync(join(tmpdir(), 'vmwu-remote-')), 'store'));
}

test('what a host holds is recorded per digest asked about, and goes with the host', () => {
  const store = scratchStore();
  const h: HostRecord = {
    name: 'n1', user: 'u', address: 'a', port: 22, keyPath: null, slots: null, labels: {}, hostKey: 'k', fingerprint: 'f', vmwu: 'vmwu', store: null,
    info: { protocol: 1, version: '0', qemu: '7', arch: 'x86_64', cores: 2, memMiB: 1, availableMemMiB: 1, store: '/s', freeBytes: 1 },
    addedAt: 'now', checkedAt: 'now', drainedAt: null,
  };
  saveHost(store.db, h);
  recordHostBlobs(store.db, 'n1', ['sha256:a', 'sha256:b']);
  recordHostBlobs(store.db, 'n1', ['sha256:c'], ['sha256:b', 'sha256:c']);
  assert.deepEqual([...hostBlobs(store.db, 'n1')].sort(), ['sha256:a', 'sha256:c']);
  store.db.prepare('DELETE FROM hosts WHERE name = ?').run('n1');
  assert.equal(hostBlobs(store.db, 'n1').size, 0);
  writeFileSync(join(store.paths.root, 'x'), '');
  store.close();
});
