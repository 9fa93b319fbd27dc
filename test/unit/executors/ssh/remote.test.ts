import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import { isVmwuError } from '../../../../src/errors.js';
import { remoteFetch, remoteGc, remoteHave, remoteReceive, remoteRun } from '../../../../src/executors/ssh/remote.js';
import type { Digest } from '../../../../src/store/blobs.js';
import { openStore } from '../../../../src/store/store.js';

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
