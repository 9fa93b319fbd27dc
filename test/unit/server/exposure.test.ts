import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isVmwuError, type VmwuError } from '../../../src/errors.js';
import { hostForms, originForms, planExposure } from '../../../src/server/exposure.js';
import { checkToken, startServer, type RunningServer } from '../../../src/server/index.js';
import { secretMatches } from '../../../src/server/token.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { repoRoot } from '../../support/fixture-path.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const TOKEN = 'k7Qx-2mPz_9LwR4tYv8N';

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/**
 * One request to 127.0.0.1:port. With `ca`, over TLS, verifying the server's
 * certificate for `servername` against that CA (no verification is switched off).
 */
function call(port: number, path: string, o: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer; servername?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers };
    const onRes = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const r = o.ca ? httpsRequest({ ...opts, ca: o.ca, servername: o.servername }, onRes) : httpRequest(opts, onRes);
    r.on('error', reject);
    r.end(o.body);
  });
}

function refusal(fn: () => unknown): VmwuError {
  try {
    fn();
  } catch (e) {
    assert.ok(isVmwuError(e), String(e));
    return e;
  }
  assert.fail('not refused');
}

async function refusedAsync(p: Promise<unknown>): Promise<VmwuError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isVmwuError(e), String(e));
    return e;
  }
  assert.fail('not refused');
}

/** The CLI, as a user runs it, in a store of its own. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('dashboard tokens: no configuration turns auth off', () => {
  test('empty, short, patterned and whitespace tokens are refused with a hint', () => {
    for (const bad of ['', 'short', '123456789012345', 'aaaaaaaaaaaaaaaaaaaaaaaa', 'abababababababababab', ' k7Qx-2mPz_9LwR4tYv8N', 'k7Qx 2mPz_9LwR4tYv8N', 'k7Qx-2mPz_9LwR4tYv8é']) {
      const e = refusal(() => checkToken(bad, 'VMWU_SERVE_TOKEN'));
      assert.equal(e.code, 'WEAK_TOKEN', bad);
      assert.match(e.message, /VMWU_SERVE_TOKEN/);
      assert.match(e.hint ?? '', /unset|openssl rand/);
    }
    assert.equal(refusal(() => checkToken(undefined, 'options.token')).code, 'WEAK_TOKEN');
    assert.equal(checkToken(TOKEN, 'x'), TOKEN);
  });

  test('secrets compare without a length shortcut; an empty or missing one never matches', () => {
    assert.equal(secretMatches(TOKEN, TOKEN), true);
    assert.equal(secretMatches(`${TOKEN}x`, TOKEN), false);
    assert.equal(secretMatches(TOKEN.slice(0, -1), TOKEN), false);
    assert.equal(secretMatches('', ''), false);
    assert.equal(secretMatches(undefined, ''), false);
    assert.equal(secretMatches('', TOKEN), false);
  });

  test('startServer refuses a weak token before it listens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmwu-tok-'));
    const store = openStore(join(dir, 'store'));
    try {
      for (const token of ['', 'tok-123', 'x'.repeat(40)]) {
        assert.equal((await refusedAsync(startServer(store, { token, webDir: dir }))).code, 'WEAK_TOKEN', token);
      }
    } finally {
      store.close();
    }
  });

  test('the CLI: VMWU_SERVE_TOKEN= (set but empty) or short is refused, never replaced', async () => {
    const home = mkdtempSync(join(tmpdir(), 'vmwu-tok-cli-'));
    for (const value of ['', 'abc']) {
      const r = await cli(['serve', '--port', '0'], { VMWU_HOME: home, VMWU_SERVE_TOKEN: value });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /VMWU_SERVE_TOKEN/);
      assert.match(r.stderr, /hint: .*unset/);
      assert.equal(r.stdout, '', 'no URL printed');
    }
  });
});

describe('serving beyond loopback', () => {
  test('a non-loopback bind without TLS is refused; the hint names TLS and the SSH tunnel', () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.7', 'dash.example.org']) {
      const e = refusal(() => planExposure({ host, tls: false, allowHosts: [], machineName: 'lab7', port: 8080 }));
      assert.equal(e.code, 'INSECURE_BIND', host);
      assert.match(e.hint ?? '', /--tls-cert FILE --tls-key FILE/);
      assert.match(e.hint ?? '', /ssh -L 8080:127\.0\.0\.1:8080 lab7/);
    }
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '::ffff:127.0.0.1']) {
      assert.equal(planExposure({ host, tls: false, allowHosts: [], machineName: 'lab7', port: 0 }).scheme, 'http', host);
    }
  });

  test('allowed names and the URL: never 0.0.0.0, always a name the Host check accepts', () => {
    const e = planExposure({ host: '0.0.0.0', tls: true, allowHosts: ['Dash.Example.org', '2001:db8::1'], machineName: 'lab7', port: 0 });
    assert.equal(e.urlName, 'dash.example.org');
    assert.ok(!e.names.includes('0.0.0.0'));
    assert.ok(e.names.includes('[2001:db8::1]'));
    assert.ok(hostForms(e, 8443).has('dash.example.org:8443'));
    assert.ok(!hostForms(e, 8443).has('dash.example.org'), 'the bare name only on the default port');
    assert.ok(hostForms(e, 443).has('dash.example.org'));
    assert.ok(originForms(e, 8443).has('https://dash.example.org:8443'));
    assert.ok(!originForms(e, 8443).has('http://dash.example.org:8443'));
    const bare = planExposure({ host: '::', tls: true, allowHosts: [], machineName: 'Lab7', port: 0 });
    assert.equal(bare.urlName, 'lab7');
    assert.equal(refusal(() => planExposure({ host: '0.0.0.0', tls: true, allowHosts: ['evil.example:80'], machineName: 'lab7', port: 0 })).code, 'BAD_VALUE');
    assert.equal(refusal(() => planExposure({ host: '0.0.0.0', tls: true, allowHosts: ['a/b'], machineName: 'lab7', port: 0 })).code, 'BAD_VALUE');
  });

  test('startServer: 0.0.0.0 without TLS is refused with the hint, and nothing listens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmwu-bind-'));
    const store = openStore(join(dir, 'store'));
    try {
      const e = await refusedAsync(startServer(store, { host: '0.0.0.0', port: 0, webDir: dir }));
      assert.equal(e.code, 'INSECURE_BIND');
      assert.match(e.hint ?? '', /--tls-cert/);
      assert.match(e.hint ?? '', /ssh -L \d+:127\.0\.0\.1:\d+ /);
    } finally {
      store.close();
    }
  });

  test('the CLI: --host 0.0.0.0 without TLS exits 125 with the hint', async () => {
    const home = mkdtempSync(join(tmpdir(), 'vmwu-bind-cli-'));
    const r = await cli(['serve', '--host', '0.0.0.0', '--port', '8123'], { VMWU_HOME: home, VMWU_SERVE_TOKEN: undefined });
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /in the clear/);
    assert.match(r.stderr, /--tls-cert FILE --tls-key FILE/);
    assert.match(r.stderr, /ssh -L 8123:127\.0\.0\.1:8123 /);
    assert.equal(r.stdout, '');
  });
});

describe('HTTPS with an allowed host list (a real server, a real certificate from openssl)', { concurrency: 1 }, () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let port: number;
  let ca: Buffer;
  let certFile: string;
  let keyFile: string;
  let web: string;
  const NAME = 'vmwu.test';
  const workers: string[] = [];

  before(async () => {
    assert.ok(existsSync('/usr/bin/openssl'), 'openssl is needed (scripts/setup.sh installs it)');
    dir = mkdtempSync(join(tmpdir(), 'vmwu-tls-'));
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${NAME}`, '-addext', `subjectAltName=DNS:${NAME},DNS:${hostname()},IP:127.0.0.1`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    ca = readFileSync(certFile);
    store = openStore(join(dir, 'store'));
    registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
    web = join(dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<meta name="csrf-token" content="__CSRF__">');
    server = await startServer(store, {
      host: '0.0.0.0', port: 0, token: TOKEN, tls: { certFile, keyFile }, allowHosts: [NAME], webDir: web,
      spawnWorker: (_s, name) => { workers.push(name); return 4242; },
    });
    port = Number(new URL(server.url).port);
  });

  after(async () => {
    await server?.close();
    store?.close();
  });

  test('the printed URL is https://<first allowed host>:port/?token=…, and it works as printed', async () => {
    assert.equal(server.loginUrl, `https://${NAME}:${port}/?token=${TOKEN}`);
    const u = new URL(server.loginUrl);
    const first = await call(port, u.pathname + u.search, { ca, servername: u.hostname, headers: { host: u.host } });
    assert.equal(first.status, 303, first.body);
    const set = String(first.headers['set-cookie']);
    assert.match(set, /; Secure/, 'over TLS the cookie is Secure');
    const page = await call(port, '/', { ca, servername: NAME, headers: { host: u.host, cookie: set.split(';')[0]! } });
    assert.equal(page.status, 200);
  });

  test('with the allowed Host and the token: API calls and a same-origin POST work', async () => {
    const headers = { host: `${NAME}:${port}`, authorization: `Bearer ${TOKEN}` };
    assert.equal((await call(port, '/api/experiments', { ca, servername: NAME, headers })).status, 200);
    for (const path of ['/api/experiments', '/no-such-page', '/static/x.js', '/?token=', '/api/bases?token=']) {
      assert.equal((await call(port, path, { ca, servername: NAME, headers: { host: headers.host } })).status, 401, `${path}: the token is still needed`);
    }
    assert.equal((await call(port, '/api/bases', { ca, servername: NAME, headers: { host: headers.host, authorization: 'Bearer ' } })).status, 401, 'an empty bearer');
    const { csrf } = JSON.parse((await call(port, '/api/session', { ca, servername: NAME, headers })).body) as { csrf: string };
    const post = (origin: string) => call(port, '/api/experiments', {
      method: 'POST', ca, servername: NAME, headers: { ...headers, 'content-type': 'application/json', 'x-csrf-token': csrf, origin },
      body: JSON.stringify({ planText: 'parameter x integer range from 1 to 2\ntask main\n  exec true\nendtask\n', base: 'fake', name: 'over-tls' }),
    });
    assert.equal((await post(`http://${NAME}:${port}`)).status, 403, 'an http:// origin is not this server');
    const ok = await post(`https://${NAME}:${port}`);
    assert.equal(ok.status, 201, ok.body);
    assert.deepEqual(workers, ['over-tls']);
  });

  test('a Host the list does not name is refused, even with the token (and 0.0.0.0 never passes)', async () => {
    for (const host of [`evil.example:${port}`, `0.0.0.0:${port}`, NAME, `${NAME}:1`]) {
      const r = await call(port, '/api/experiments', { ca, servername: NAME, headers: { host, authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 421, host);
    }
  });

  test('plain HTTP on the TLS port gets no answer from the dashboard', async () => {
    const r = await call(port, '/api/experiments', { headers: { host: `${NAME}:${port}`, authorization: `Bearer ${TOKEN}` } }).catch((e: Error) => e);
    assert.ok(r instanceof Error, `plain HTTP was answered: ${JSON.stringify(r)}`);
  });

  test('a missing, unreadable or mismatched certificate is refused at start', async () => {
    assert.equal((await refusedAsync(startServer(store, { tls: { certFile }, webDir: web, token: TOKEN }))).code, 'BAD_VALUE');
    assert.equal((await refusedAsync(startServer(store, { tls: { certFile: join(dir, 'nope.pem'), keyFile }, webDir: web, token: TOKEN }))).code, 'NO_TLS_FILE');
    const other = join(dir, 'other-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', other], { stdio: 'ignore' });
    const e = await refusedAsync(startServer(store, { tls: { certFile, keyFile: other }, webDir: web, token: TOKEN }));
    assert.equal(e.code, 'BAD_TLS');
    assert.match(e.message, /cert\.pem/);
  });

  test('the CLI serves on 0.0.0.0 with --tls-cert, --tls-key and --allow-host; its printed URL works', async () => {
    if (!existsSync(join(repoRoot, 'web', 'dist', 'index.html'))) execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build-web.mjs')], { stdio: 'ignore' });
    const home = mkdtempSync(join(tmpdir(), 'vmwu-tls-cli-'));
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'serve', '--host', '0.0.0.0', '--port', '0',
      '--tls-cert', certFile, '--tls-key', keyFile, '--allow-host', NAME], { env: { ...process.env, VMWU_HOME: home, VMWU_SERVE_TOKEN: undefined }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        child.on('close', () => reject(new Error(`vmwu serve exited: ${stderr}`)));
      });
      const u = new URL(line);
      assert.equal(u.protocol, 'https:');
      assert.equal(u.hostname, NAME);
      assert.notEqual(u.port, '0');
      const r = await call(Number(u.port), u.pathname + u.search, { ca, servername: u.hostname, headers: { host: u.host } });
      assert.equal(r.status, 303, r.body);
      const api = await call(Number(u.port), '/api/bases', { ca, servername: u.hostname, headers: { host: u.host, authorization: `Bearer ${u.searchParams.get('token')}` } });
      assert.equal(api.status, 200, api.body);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  });
});
