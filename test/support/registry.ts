import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

/**
 * A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on
 * loopback, with TLS from a CA made here by openssl and htpasswd (bcrypt) auth.
 * Its access log is kept, so a test can count the blob uploads a push made.
 */

export interface TestRegistry {
  /** `localhost:PORT` (or `ADDRESS:PORT`), as references name it. */
  host: string;
  /** A containers-style certificate directory holding the test CA (`ca.crt`). */
  certDir: string;
  user: string;
  password: string;
  /** Where the registry keeps its blobs: tests tamper with them here. */
  storage: string;
  /** The registry's log so far (access log lines included). */
  log(): string;
  /** PUTs that completed a blob upload (`PUT /v2/REPO/blobs/uploads/…?digest=…` answered 201), optionally for one repository. */
  blobPuts(repo?: string): number;
  stop(): Promise<void>;
}

const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A CA and a server certificate for localhost, 127.0.0.1 and `address`, signed by it. */
function makeCertificates(dir: string, address: string): { ca: string; cert: string; key: string } {
  const p = (f: string) => join(dir, f);
  sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=vmwu test CA',
    '-keyout', p('ca.key'), '-out', p('ca.pem')]);
  sh('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', p('server.key'), '-out', p('server.csr')]);
  writeFileSync(p('ext.cnf'), `subjectAltName=DNS:localhost,IP:127.0.0.1${address === '127.0.0.1' ? '' : `,IP:${address}`}\n`);
  sh('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p('ext.cnf'), '-out', p('server.pem')]);
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

/** `address`: where it listens, loopback unless other machines must reach it (as `ADDRESS:PORT`). */
export async function startRegistry(dir: string, o: { user?: string; password?: string; address?: string } = {}): Promise<TestRegistry> {
  const address = o.address ?? '127.0.0.1';
  const user = o.user ?? 'scientist';
  const password = o.password ?? 'vmwu-test-pass';
  mkdirSync(dir, { recursive: true });
  const tls = makeCertificates(dir, address);
  const certDir = join(dir, 'certs.d');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'ca.crt'), readFileSync(tls.ca));
  sh('htpasswd', ['-Bbc', join(dir, 'htpasswd'), user, password]);
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  const port = await freePort();
  writeFileSync(join(dir, 'config.yml'), [
    'version: 0.1',
    'log: { level: info, accesslog: { disabled: false } }',
    `storage: { filesystem: { rootdirectory: ${JSON.stringify(storage)} }, delete: { enabled: true }, cache: { blobdescriptor: inmemory } }`,
    `http: { addr: "${address}:${port}", secret: test-secret, tls: { certificate: ${JSON.stringify(tls.cert)}, key: ${JSON.stringify(tls.key)} } }`,
    `auth: { htpasswd: { realm: vmwu-test, path: ${JSON.stringify(join(dir, 'htpasswd'))} } }`,
    '',
  ].join('\n'));
  // A file, not a pipe: read back at once, even while the test's event loop is blocked.
  const logFile = join(dir, 'registry.log');
  const fd = openSync(logFile, 'a');
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const log = () => readFileSync(logFile, 'utf8');
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const host = address === '127.0.0.1' ? `localhost:${port}` : `${address}:${port}`;
  // Ready when /v2/ answers (401 without credentials).
  const ca = readFileSync(tls.ca);
  const answers = () => new Promise<boolean>((resolve) => {
    const req = httpsGet(`https://${host}/v2/`, { ca }, (res) => { res.resume(); resolve(true); });
    req.on('error', () => resolve(false));
  });
  for (let i = 0; !(await answers()); i++) {
    if (child.exitCode !== null || i > 100) throw new Error(`docker-registry did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host, certDir, user, password, storage,
    log,
    blobPuts(repo?: string) {
      const re = /"PUT \/v2\/(\S+)\/blobs\/uploads\/\S*digest=\S* HTTP\/1\.1" 201/g;
      return [...log().matchAll(re)].filter((m) => repo === undefined || m[1] === repo).length;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
