import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { insertRun } from '../../../src/run/records.js';
import { selfIdentity } from '../../../src/store/process-identity.js';
import { type RunningServer } from '../../../src/server/index.js';
import { type Store } from '../../../src/store/store.js';
import { createExperiment, runExperiment, type Executor } from '../../../src/sweep/index.js';
import { auth, fakeStore, startApiServer } from '../../support/api-server.js';

const fast = { backoff: { baseMs: 5, capMs: 20 }, pollMs: 5, host: () => ({ cores: 2, availableMemMiB: 100_000 }) };

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A raw HTTP request: the path goes out exactly as written (fetch would normalise `..`). */
function raw(server: RunningServer, path: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

/** Reads server-sent events until `until` says stop. */
function sse(server: RunningServer, path: string, headers: Record<string, string>, until: (ev: string, data: unknown, all: { ev: string; data: unknown }[]) => boolean,
  onEvent: (ev: string) => void = () => {}): Promise<{ ev: string; data: unknown }[]> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const got: { ev: string; data: unknown }[] = [];
    const r = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!ev || data === undefined) continue;
          const parsed = JSON.parse(data) as unknown;
          got.push({ ev, data: parsed });
          onEvent(ev);
          if (until(ev, parsed, got)) {
            r.destroy();
            resolve(got);
            return;
          }
        }
      });
      res.on('end', () => resolve(got));
    });
    r.on('error', (e) => (got.length ? resolve(got) : reject(e)));
    r.end();
  });
}

describe('vmwu serve API (no VMs: a fake executor)', { concurrency: 1 }, () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let outside: string;
  const workers: string[] = [];

  before(async () => {
    ({ dir, store } = fakeStore('vmwu-api-'));
    writeFileSync(join(dir, 'p.pln'), 'parameter x integer range from 1 to 3\ntask main\n  exec work $x\nendtask\n');
    writeFileSync(join(dir, 'big.pln'), 'parameter a integer range from 1 to 100\nparameter b integer range from 1 to 100\ntask main\n  exec echo $a $b\nendtask\n');
    outside = join(dir, 'secret.txt');
    writeFileSync(outside, 'SECRET');
    server = await startApiServer(store, dir, { webFiles: { 'app.js': '// app' }, spawnWorker: (name) => workers.push(name) });
  });

  after(async () => {
    await server?.close();
    store?.close();
  });

  test('binds to 127.0.0.1 by default; every page, asset and API call needs the token', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const p of ['/', '/static/app.js', '/api/experiments', '/api/session', '/api/events', '/api/bases']) {
      assert.equal((await raw(server, p)).status, 401, p);
      assert.equal((await raw(server, p, { headers: { authorization: 'Bearer wrong' } })).status, 401, p);
      assert.equal((await raw(server, p, { headers: { cookie: `vmwu_token_${new URL(server.url).port}=nope` } })).status, 401, p);
    }
    assert.equal((await raw(server, '/api/experiments', { headers: auth })).status, 200);
    assert.equal((await raw(server, '/static/app.js', { headers: auth })).status, 200);
  });

  test('?token= on the first visit sets an HttpOnly SameSite=Strict cookie and drops the token from the address', async () => {
    const r = await raw(server, '/?token=tok-0123456789abcdef');
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const set = String(r.headers['set-cookie']);
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    const cookie = set.split(';')[0]!;
    const page = await raw(server, '/', { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, /__CSRF__/, 'the CSRF token is put in the page');
    assert.equal((await raw(server, '/api/experiments', { headers: { cookie } })).status, 200);
  });

  test('a foreign Host header (DNS rebinding) is refused', async () => {
    assert.equal((await raw(server, '/api/experiments', { headers: { ...auth, host: 'evil.example:80' } })).status, 421);
  });

  test('POSTs need the CSRF header and a same-origin Origin', async () => {
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'csrf' });
    const { csrf } = JSON.parse((await raw(server, '/api/session', { headers: auth })).body) as { csrf: string };
    const origin = server.url.replace(/\/$/, '');
    assert.equal((await raw(server, '/api/experiments/csrf/cancel', { method: 'POST', headers: auth })).status, 403);
    assert.equal((await raw(server, '/api/experiments/csrf/cancel', { method: 'POST', headers: { ...auth, 'x-csrf-token': 'wrong' } })).status, 403);
    assert.equal((await raw(server, '/api/experiments/csrf/cancel', { method: 'POST', headers: { ...auth, 'x-csrf-token': csrf, origin: 'http://evil.example' } })).status, 403);
    assert.equal((await raw(server, '/api/experiments/csrf/cancel', { method: 'GET', headers: auth })).status, 404, 'no GET route changes state');
    const submit = (body: unknown, headers: Record<string, string>) => new Promise<Res>((resolve, reject) => {
      const u = new URL(server.url);
      const r = request({ host: u.hostname, port: u.port, path: '/api/experiments', method: 'POST', headers: { ...auth, 'content-type': 'application/json', ...headers } }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (c: string) => { b += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
      });
      r.on('error', reject);
      r.end(JSON.stringify(body));
    });
    const plan = 'parameter x integer range from 1 to 2\ntask main\n  exec true\nendtask\n';
    assert.equal((await submit({ planText: plan, base: 'fake' }, {})).status, 403, 'submitting needs the CSRF header');
    assert.equal((await submit({ base: 'fake' }, { 'x-csrf-token': csrf })).status, 400);
    assert.equal((await submit({ planText: plan, base: 'fake', name: '../x' }, { 'x-csrf-token': csrf })).status, 400);
    assert.equal((await submit({ planText: plan, unit: 'nope' }, { 'x-csrf-token': csrf })).status, 404);
    assert.equal((await submit({ planText: 'task main\n  copy root:../../etc/passwd node:x\nendtask\n', base: 'fake' }, { 'x-csrf-token': csrf })).status, 400, 'a plan copying from outside its directory is refused');
    const created = await submit({ planText: plan, planName: 'my plan.pln', base: 'fake', name: 'submitted', slots: 1, retries: 0 }, { 'x-csrf-token': csrf, origin: server.url.replace(/\/$/, '') });
    assert.equal(created.status, 201, created.body);
    assert.deepEqual(JSON.parse(created.body), { name: 'submitted', jobs: 2, pid: 4242 });
    assert.deepEqual(workers, ['submitted'], 'a background worker runs it, as with --detach');
    const ok = await raw(server, '/api/experiments/csrf/cancel', { method: 'POST', headers: { ...auth, 'x-csrf-token': csrf, origin } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { state: string }).state, 'cancelled');
  });

  test('SSE: a change of job states reaches the client; the live log streams a growing file', async () => {
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'live', slots: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let logFile = '';
    const executor: Executor = {
      name: 'fake-log',
      async runAttempt(s, ctx) {
        const id = `run-live-${ctx.job.index}-${ctx.attempt}`;
        const runDir = join(s.paths.runs, id);
        mkdirSync(runDir, { recursive: true });
        insertRun(s.db, { id, base: 'fake', argv: ['sh'], params: {}, resources: { memoryMiB: 1, cpus: 1, timeoutMs: 1000 }, outDir: ctx.outDir, runDir, scratchDir: null, owner: selfIdentity() });
        writeFileSync(join(runDir, 'stdout.log'), `start ${ctx.job.index}\n`);
        ctx.onRunId(id);
        if (ctx.job.index === 1) {
          logFile = join(runDir, 'stdout.log');
          await gate;
        }
        mkdirSync(join(ctx.outDir, 'work'), { recursive: true });
        writeFileSync(join(ctx.outDir, 'work', 'out.txt'), 'ok');
        return { runId: id, status: 'succeeded', exitCode: 0, phases: { prepare: 1, boot: 100, restore: 0, stageIn: 10, exec: 200, stageOut: 10, shutdown: 50, collect: 1 }, totalMs: 371 };
      },
    };
    let hello!: () => void;
    const subscribed = new Promise<void>((r) => { hello = r; });
    const events = sse(server, '/api/events', auth, (ev, data) => ev === 'change' && (data as { experiments: string[] }).experiments.includes('live'),
      (ev) => { if (ev === 'hello') hello(); });
    await subscribed; // sent after the subscription: from here on, every change is reported
    const running = runExperiment(store, 'live', { ...fast, executor });
    const got = await events;
    assert.ok(got.some((e) => e.ev === 'hello'));

    // Job 1 is held running: its log grows while a client watches.
    for (;;) {
      if (logFile) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const log = sse(server, '/api/experiments/live/jobs/1/log', auth, (_ev, _d, all) =>
      all.filter((e) => e.ev === 'log').map((e) => (e.data as { text: string }).text).join('').includes('later line'));
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(logFile, 'later line\n');
    const lines = (await log).filter((e) => e.ev === 'log').map((e) => (e.data as { text: string }).text).join('');
    assert.equal(lines, 'start 1\nlater line\n');
    release();
    assert.equal((await running).state, 'succeeded');

    // The settled job's stream replays the log and ends.
    const done = await sse(server, '/api/experiments/live/jobs/2/log', auth, (ev) => ev === 'end');
    assert.deepEqual(done.filter((e) => e.ev === 'end').map((e) => e.data), [{ state: 'succeeded' }]);

    const t = JSON.parse((await raw(server, '/api/experiments/live/timings', { headers: auth })).body) as { count: number; phaseStats: { exec: { mean: number } } };
    assert.equal(t.count, 3);
    assert.equal(t.phaseStats.exec.mean, 200);
    const job = JSON.parse((await raw(server, '/api/experiments/live/jobs/1', { headers: auth })).body) as { attempts: { files: { path: string }[] }[] };
    assert.deepEqual(job.attempts[0]!.files.map((f) => f.path), ['work/out.txt']);
  });

  test('downloads are confined to the job\'s out dir: dot segments in every encoding, slashes, NULs and symlinks are refused', async () => {
    const job = JSON.parse((await raw(server, '/api/experiments/live/jobs/1', { headers: auth })).body) as { attempts: { outDir: string }[] };
    const out = job.attempts[0]!.outDir;
    symlinkSync(outside, join(out, 'work', 'link.txt'));
    symlinkSync(dir, join(out, 'work', 'linkdir'));
    const base = '/api/experiments/live/jobs/1/files/';
    const okRes = await raw(server, `${base}work/out.txt`, { headers: auth });
    assert.equal(okRes.status, 200);
    assert.equal(okRes.body, 'ok');
    assert.match(String(okRes.headers['content-disposition']), /attachment/);
    assert.equal(okRes.headers['x-content-type-options'], 'nosniff');
    const attacks = [
      '../../../../secret.txt', 'work/../../../../../secret.txt', '%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt', '%2E%2E/%2E%2E/%2E%2E/%2E%2E/secret.txt',
      '..%2f..%2f..%2f..%2fsecret.txt', '%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt', '%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret.txt',
      '%252e%252e%252f%252e%252e%252fsecret.txt', '..%5c..%5c..%5c..%5csecret.txt', '%2fetc%2fpasswd', '/etc/passwd', 'work/%00out.txt',
      'work/link.txt', 'work/linkdir/secret.txt', './work/out.txt', 'work//out.txt', '%', 'work', '.%2e/.%2e/.%2e/.%2e/secret.txt',
    ];
    for (const a of attacks) {
      const r = await raw(server, base + a, { headers: auth });
      assert.notEqual(r.status, 200, `${a} was served`);
      assert.doesNotMatch(r.body, /SECRET|root:/, a);
    }
    assert.equal((await raw(server, `${base}work/out.txt`)).status, 401, 'downloads need the token too');
  });

  test('retry a failed job and resume a cancelled experiment from the API', async () => {
    const { csrf } = JSON.parse((await raw(server, '/api/session', { headers: auth })).body) as { csrf: string };
    const post = (path: string) => raw(server, path, { method: 'POST', headers: { ...auth, 'x-csrf-token': csrf } });
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'rt', retries: 0 });
    const failing: Executor = {
      name: 'fake-fail',
      async runAttempt(_s, ctx) {
        const c = ctx.job.index === 2 ? 1 : 0;
        return { runId: null, status: c ? 'failed' : 'succeeded', exitCode: c, phases: null, totalMs: 1 };
      },
    };
    assert.equal((await runExperiment(store, 'rt', { ...fast, executor: failing })).state, 'failed');
    workers.length = 0;
    assert.equal((await post('/api/experiments/rt/jobs/1/retry')).status, 400, 'a succeeded job is not retried');
    assert.equal((await post('/api/experiments/rt/jobs/99/retry')).status, 404);
    const r = await post('/api/experiments/rt/jobs/2/retry');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { name: 'rt', job: 2, pid: 4242 });
    assert.deepEqual(workers, ['rt']);
    const st = JSON.parse((await raw(server, '/api/experiments/rt', { headers: auth })).body) as { state: string; counts: { pending: number; failed: number } };
    assert.deepEqual([st.state, st.counts.pending, st.counts.failed], ['stopped', 1, 0]);

    const res = await post('/api/experiments/csrf/resume');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(workers, ['rt', 'csrf']);
    const st2 = JSON.parse((await raw(server, '/api/experiments/csrf', { headers: auth })).body) as { state: string; counts: { pending: number } };
    assert.deepEqual([st2.state, st2.counts.pending], ['stopped', 3]);
  });

  test('jobs are paged, sorted and filtered in the server: 10,000 jobs', async () => {
    await createExperiment(store, { planPath: join(dir, 'big.pln'), base: 'fake', name: 'big' });
    const get = async (q: string) => JSON.parse((await raw(server, `/api/experiments/big/jobs?${q}`, { headers: auth })).body) as { total: number; jobs: { index: number; params: Record<string, string> }[] };
    const p1 = await get('limit=50');
    assert.equal(p1.total, 10_000);
    assert.deepEqual(p1.jobs.map((j) => j.index).slice(0, 3), [1, 2, 3]);
    const last = await get('sort=index&dir=desc&limit=2');
    assert.deepEqual(last.jobs.map((j) => j.index), [10_000, 9_999]);
    const f = await get('param.a=7&limit=500');
    assert.equal(f.total, 100);
    assert.ok(f.jobs.every((j) => j.params.a === '7'));
    const f2 = await get('param.a=7&param.b=9');
    assert.equal(f2.total, 1);
    assert.equal((await get('state=succeeded')).total, 0);
    assert.equal((await get('state=pending&offset=9990')).jobs.length, 10);
    assert.equal((await get("param.a'%20OR%201=1--=1")).total, 10_000, 'a bad parameter name is ignored, never put into SQL');
    assert.equal((await raw(server, '/api/experiments/nope/jobs', { headers: auth })).status, 404);
  });
});
