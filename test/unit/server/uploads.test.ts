import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, STALE_UPLOAD_MS, uploadsDir, type RunningServer } from '../../../src/server/index.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { createExperiment, requireExperiment } from '../../../src/sweep/index.js';
import { getExecutor } from '../../../src/sweep/executor-choice.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const TOKEN = 'k7Qx-2mPz_9LwR4tYv8N';
const GOOD_PLAN = 'parameter x integer range from 1 to 2\ntask main\n  exec true\nendtask\n';

interface Res { status: number; body: string }

function submit(server: RunningServer, body: string, headers: Record<string, string>): Promise<Res> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: '/api/experiments', method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (c: string) => { b += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

/** Writes raw bytes on a TCP connection and closes it at once, without reading an answer. */
function sendAndVanish(server: RunningServer, bytes: string): Promise<void> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(bytes, () => {
      s.destroy();
      resolve();
    }));
    s.on('error', reject);
  });
}

const entries = (store: Store) => (existsSync(uploadsDir(store)) ? readdirSync(uploadsDir(store)) : []);

describe('dashboard uploads: a failed submission leaves nothing in uploads/', { concurrency: 1 }, () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let web: string;
  let headers: Record<string, string>;
  const failSpawnFor = new Set<string>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmwu-uploads-'));
    store = openStore(join(dir, 'store'));
    registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
    web = join(dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<meta name="csrf-token" content="__CSRF__">');
    server = await startServer(store, {
      token: TOKEN, webDir: web,
      spawnWorker: (_s, name) => {
        if (failSpawnFor.has(name)) throw new Error('spawn failed');
        return 4242;
      },
    });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const s = await new Promise<Res>((resolve, reject) => {
      const u = new URL(server.url);
      request({ host: u.hostname, port: u.port, path: '/api/session', headers: auth }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (c: string) => { b += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      }).on('error', reject).end();
    });
    headers = { ...auth, 'x-csrf-token': (JSON.parse(s.body) as { csrf: string }).csrf };
  });

  after(async () => {
    await server?.close();
    store?.close();
  });

  test('a client that sends a whole submission and hangs up: the handler still runs, and cleans up', { timeout: 60_000 }, async (t) => {
    // First in this store: uploads/ appears only when a handler has staged a plan.
    assert.equal(existsSync(uploadsDir(store)), false);
    const body = JSON.stringify({ planText: GOOD_PLAN, unit: 'no-such-unit' });
    const u = new URL(server.url);
    await sendAndVanish(server, `POST /api/experiments HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${TOKEN}\r\nX-CSRF-Token: ${headers['x-csrf-token']}\r\n`
      + `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    // Same process: the handler's staging and its clean-up are each atomic against this loop.
    while (!(existsSync(uploadsDir(store)) && entries(store).length === 0)) {
      if (t.signal.aborted) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  test('a plan that does not parse, an unknown unit or base, a bad copy: 4xx and uploads/ empty', async () => {
    const cases: [unknown, number][] = [
      [{ planText: 'parameter x integer range from 1 to\n', base: 'fake' }, 400],
      [{ planText: GOOD_PLAN, unit: 'nope' }, 404],
      [{ planText: GOOD_PLAN, base: 'nope' }, 404],
      [{ planText: 'task main\n  copy root:../../etc/passwd node:x\nendtask\n', base: 'fake' }, 400],
      [{ planText: GOOD_PLAN, base: 'fake', slots: -1 }, 400],
    ];
    for (const [body, status] of cases) {
      const r = await submit(server, JSON.stringify(body), headers);
      assert.equal(r.status, status, r.body);
      assert.deepEqual(entries(store), [], JSON.stringify(body));
    }
  });

  test('an oversized body (413) and a body cut off mid-way leave nothing', async () => {
    const big = await submit(server, JSON.stringify({ planText: `# ${'x'.repeat(2 << 20)}\n${GOOD_PLAN}`, base: 'fake' }), headers);
    assert.equal(big.status, 413);
    const u = new URL(server.url);
    await sendAndVanish(server, `POST /api/experiments HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${TOKEN}\r\nX-CSRF-Token: ${headers['x-csrf-token']}\r\n`
      + `Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"planText": "parameter x`);
    // A request after it is answered once the cut one is gone.
    assert.equal((await submit(server, JSON.stringify({ planText: 'bad', base: 'fake' }), headers)).status, 400);
    assert.deepEqual(entries(store), []);
  });

  test('a submission that made an experiment keeps its upload: it is the experiment\'s root', async () => {
    const r = await submit(server, JSON.stringify({ planText: GOOD_PLAN, base: 'fake', name: 'kept' }), headers);
    assert.equal(r.status, 201, r.body);
    failSpawnFor.add('kept-no-worker');
    const r2 = await submit(server, JSON.stringify({ planText: GOOD_PLAN, base: 'fake', name: 'kept-no-worker' }), headers);
    assert.equal(r2.status, 500, 'the worker did not start, but the experiment exists (vmwu resume runs it)');
    const roots = ['kept', 'kept-no-worker'].map((n) => requireExperiment(store.db, n).planRoot).sort();
    assert.deepEqual(entries(store).map((e) => join(uploadsDir(store), e)).sort(), roots);
  });

  test('the form chooses the executor and the resources, as `vmwu sweep` flags do; stored with the experiment', async () => {
    const r = await submit(server, JSON.stringify({
      planText: GOOD_PLAN, base: 'fake', name: 'on-ssh', executor: 'ssh', hosts: 'zone=a', memory: '192M', cpus: '2', timeout: '5m', checkpointEvery: '1m',
    }), headers);
    assert.equal(r.status, 201, r.body);
    const e = requireExperiment(store.db, 'on-ssh');
    assert.deepEqual([e.resources.memoryMiB, e.resources.cpus, e.resources.timeoutMs, e.resources.checkpointEveryMs], [192, 2, 300_000, 60_000]);
    assert.deepEqual(getExecutor(store.db, 'on-ssh'), { kind: 'ssh', options: { hosts: 'zone=a' } });
    const slurm = await submit(server, JSON.stringify({ planText: GOOD_PLAN, base: 'fake', name: 'on-slurm', executor: 'slurm', partition: 'short', slots: 3 }), headers);
    assert.equal(slurm.status, 201, slurm.body);
    assert.deepEqual(getExecutor(store.db, 'on-slurm'), { kind: 'slurm', options: { partition: 'short', maxParallel: 3 } });
    for (const [body, why] of [
      [{ executor: 'condor' }, /executor "condor": expected one of local, ssh, slurm/],
      [{ hosts: 'zone=a' }, /--hosts, --host-timeout and --spread go with --executor ssh/],
      [{ memory: 'lots' }, /--memory/],
      [{ cpus: '0' }, /--cpus 0: expected a whole number/],
    ] as [Record<string, unknown>, RegExp][]) {
      const bad = await submit(server, JSON.stringify({ planText: GOOD_PLAN, base: 'fake', ...body }), headers);
      assert.equal(bad.status, 400, bad.body);
      assert.match((JSON.parse(bad.body) as { message: string }).message, why);
    }
  });

  test('at start, old upload directories no experiment uses are removed; used, young and foreign ones stay', async () => {
    const up = uploadsDir(store);
    const old = (Date.now() - STALE_UPLOAD_MS - 60_000) / 1000;
    const mk = (name: string, age: number | undefined) => {
      mkdirSync(join(up, name), { recursive: true });
      writeFileSync(join(up, name, 'plan.pln'), GOOD_PLAN);
      if (age !== undefined) utimesSync(join(up, name), age, age);
      return name;
    };
    const crashed = mk('1700000000000-0badc0de', old);
    const young = mk(`${Date.now()}-00c0ffee`, undefined);
    const foreign = mk('my-notes', old);
    const used = mk('1700000000001-0000beef', undefined);
    await createExperiment(store, { planPath: join(up, used, 'plan.pln'), base: 'fake', name: 'from-old-upload' });
    utimesSync(join(up, used), old, old);
    const before = entries(store);
    await server.close();
    server = await startServer(store, { token: TOKEN, webDir: web, spawnWorker: () => 4242 });
    const now = entries(store);
    assert.ok(before.includes(crashed));
    assert.ok(!now.includes(crashed), 'the crashed submission\'s directory is gone');
    for (const keep of [young, foreign, used]) assert.ok(now.includes(keep), keep);
    assert.equal(now.length, before.length - 1);
  });
});
