import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import { isVmwuError } from '../../../../src/errors.js';
import { checkHostName, hostBlobs, parseHostSpec, parseLabels, recordHostBlobs, saveHost, type HostRecord } from '../../../../src/executors/ssh/hosts.js';
import { ineligible, parseSelector, placeJob, rankHosts, simulatePlacement, type HostFacts } from '../../../../src/executors/ssh/placement.js';
import { ERROR_MARK, parseRemoteError } from '../../../../src/executors/ssh/protocol.js';
import { fingerprint, remoteCommand, shQuote } from '../../../../src/executors/ssh/remote-command.js';
import { remoteFetch, remoteGc, remoteHave, remoteReceive, remoteRun } from '../../../../src/executors/ssh/remote.js';
import type { Digest } from '../../../../src/store/blobs.js';
import { openStore } from '../../../../src/store/store.js';

const host = (name: string, over: Partial<HostFacts> = {}): HostFacts => ({
  name, labels: {}, arch: 'x86_64', slots: 2, busy: 0, memMiB: 4096, up: true, heldBytes: 0, ...over,
});
const needs = { arch: 'x86_64', memoryMiB: 512, needBytes: 1000 };

test('placement filters on labels, names, architecture and memory, and says why', () => {
  const sel = parseSelector('zone=a,gpu=no');
  assert.deepEqual(sel, { labels: { zone: 'a', gpu: 'no' }, names: [] });
  assert.match(ineligible(host('x', { labels: { zone: 'b', gpu: 'no' } }), needs, sel)!, /zone=a wanted, host has zone=b/);
  assert.match(ineligible(host('x', { labels: { zone: 'a' } }), needs, sel)!, /host has no gpu/);
  assert.equal(ineligible(host('x', { labels: { zone: 'a', gpu: 'no' } }), needs, sel), null);
  assert.match(ineligible(host('x', { arch: 'aarch64' }), needs, parseSelector(''))!, /unit is x86_64, the host is aarch64/);
  assert.match(ineligible(host('x', { memMiB: 256 }), needs, parseSelector(''))!, /needs 512 MiB, the host has 256 MiB/);
  assert.match(ineligible(host('x'), needs, parseSelector('y,z'))!, /not among the hosts named/);
});

test('placement ranks a host holding the unit first, then free slots, and skips full or down hosts', () => {
  const sel = parseSelector(undefined);
  const hosts = [host('a', { slots: 4 }), host('b', { heldBytes: 1000, slots: 1 }), host('c', { slots: 3, busy: 0 })];
  assert.deepEqual(rankHosts(hosts, needs, sel).map((r) => r.host.name), ['b', 'a', 'c']);
  assert.equal(placeJob(hosts, needs, sel)!.name, 'b');
  hosts[1]!.busy = 1;
  assert.equal(placeJob(hosts, needs, sel)!.name, 'a', 'the holder is full: the one with most free slots');
  hosts[0]!.up = false;
  assert.equal(placeJob(hosts, needs, sel)!.name, 'c', 'a down host is skipped');
  hosts[2]!.busy = 3;
  assert.equal(placeJob(hosts, needs, sel), null);
  // Partly held counts too: less to send.
  assert.deepEqual(rankHosts([host('p'), host('q', { heldBytes: 400 })], needs, sel).map((r) => r.host.name), ['q', 'p']);
});

test('the dry-run simulation fills the host that received the unit before sending it to another', () => {
  const first = simulatePlacement([host('a'), host('b')], needs, parseSelector(''), 5);
  assert.deepEqual(first, [
    { job: 1, host: 'a', sends: true }, { job: 2, host: 'a', sends: false }, { job: 3, host: 'b', sends: true }, { job: 4, host: 'b', sends: false },
    { job: 5, host: null, sends: false },
  ]);
});

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

test('a remote failure is read back from the marked stderr line, after whatever the job printed', () => {
  const stderr = `job noise\n${ERROR_MARK}fake line\n\n${ERROR_MARK}${JSON.stringify({ code: 'NO_BASE', message: 'no base', hint: 'h' })}\n`;
  assert.deepEqual(parseRemoteError(stderr), { code: 'NO_BASE', message: 'no base', hint: 'h' });
  assert.equal(parseRemoteError('plain failure'), undefined);
});

function scratchStore() {
  return openStore(join(mkdtempSync(join(tmpdir(), 'vmwu-remote-')), 'store'));
}

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

test('a blob transfer cut short resumes at its offset and is kept only when it hashes right', async () => {
  const store = scratchStore();
  const data = Buffer.alloc(300_000, 7);
  data.write('vmwu', 1000);
  const d = digestOf(data);
  await assert.rejects(remoteReceive(store, d, data.length, 0, Readable.from([data.subarray(0, 120_000)])), (e: unknown) => isVmwuError(e) && e.code === 'TRANSFER_INCOMPLETE');
  const have = await remoteHave(store, [d]);
  assert.deepEqual(have, { have: [], partial: { [d]: 120_000 } });
  await assert.rejects(remoteReceive(store, d, data.length, 200_000, Readable.from([Buffer.alloc(1)])), (e: unknown) => isVmwuError(e) && e.code === 'TRANSFER_OFFSET');
  const r = await remoteReceive(store, d, data.length, 120_000, Readable.from([data.subarray(120_000)]));
  assert.equal(r.received, 180_000);
  assert.deepEqual(readFileSync(store.blobs.path(d)), data);
  assert.deepEqual((await remoteHave(store, [d])).have, [d]);
  // Wrong bytes: deleted, not stored under a name that lies.
  const other = digestOf(Buffer.from('other'));
  await assert.rejects(remoteReceive(store, other, 5, 0, Readable.from([Buffer.from('OTHER')])), (e: unknown) => isVmwuError(e) && e.code === 'BLOB_CORRUPT');
  assert.deepEqual(await remoteHave(store, [other]), { have: [], partial: {} });
  store.close();
});

test('a job archive that reaches outside inputs/ is refused before anything runs', async () => {
  const store = scratchStore();
  for (const name of ['../evil', 'inputs/../../evil', 'elsewhere/x']) {
    const pack = tar.pack();
    pack.entry({ name, mode: 0o644 }, 'x');
    pack.finalize();
    await assert.rejects(remoteRun(store, `job-${name.length}`, Readable.from(pack), new PassThrough(), new PassThrough(), new AbortController().signal),
      (e: unknown) => isVmwuError(e) && e.code === 'BAD_REQUEST', name);
  }
  const bad = tar.pack();
  bad.entry({ name: 'request.json' }, JSON.stringify({ base: 'nope' }));
  bad.finalize();
  await assert.rejects(remoteRun(store, 'job-bad', Readable.from(bad), new PassThrough(), new PassThrough(), new AbortController().signal),
    (e: unknown) => isVmwuError(e) && e.code === 'BAD_REQUEST' && /base/.test(e.message));
  await assert.rejects(remoteRun(store, '../x', Readable.from([]), new PassThrough(), new PassThrough(), new AbortController().signal), /job id/);
  // Job dirs are kept while their runner lives (this process), collected once it is gone.
  const jobs = join(store.paths.root, 'remote-jobs');
  assert.equal(existsSync(join(jobs, 'job-bad')), true);
  assert.deepEqual(await remoteGc(store), []);
  for (const id of readdirSync(jobs)) writeFileSync(join(jobs, id, 'owner'), '999999999:1');
  assert.equal((await remoteGc(store)).length, 4);
  assert.deepEqual(readdirSync(jobs), []);
  await assert.rejects(remoteFetch(store, 'job-bad', new PassThrough()), (e: unknown) => isVmwuError(e) && e.code === 'NO_RESULT');
  store.close();
});

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
