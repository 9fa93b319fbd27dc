import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runLogPaths } from '../../../src/run/instance.js';
import { selfIdentity } from '../../../src/store/process-identity.js';
import { finishRun, insertRun } from '../../../src/run/records.js';
import { openStore } from '../../../src/store/store.js';
import { repoRoot } from '../../support/fixture-path.js';

/** What a hostile guest writes: a clipboard write (OSC 52), a screen clear, an 8-bit CSI, a line overwritten by CR, bytes that are not UTF-8. */
const HOSTILE_OUT = Buffer.concat([
  Buffer.from('result 42\n\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u009b1A'),
  Buffer.from('secret\rshown\r\n'),
  Buffer.from([0xff, 0x9b, 0x0a]),
]);
const HOSTILE_ERR = Buffer.from('warning\x1b[31m red\x1b[0m\n');
// A multi-byte character astride the 1 MiB reads of `vmwu logs`.
const LONG = Buffer.concat([Buffer.alloc((1 << 20) - 1, 'a'), Buffer.from('水\n')]);

describe('vmwu logs and runs print what the guest wrote escaped', () => {
  let dir: string;
  let home: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vmwu-logs-'));
    const store = openStore(join(dir, 'store'));
    home = store.paths.root;
    const add = (id: string, argv: string[], out: Buffer, err: Buffer) => {
      const runDir = join(store.paths.runs, id);
      mkdirSync(runDir, { recursive: true });
      insertRun(store.db, { id, base: 'fake', argv, params: {}, resources: { memoryMiB: 1, cpus: 1, timeoutMs: 1 }, outDir: join(runDir, 'out'), runDir, scratchDir: null, owner: selfIdentity() });
      finishRun(store.db, id, { status: 'succeeded', exitCode: 0, phases: null, totalMs: 5, error: null });
      const logs = runLogPaths(runDir);
      writeFileSync(logs.stdout, out);
      writeFileSync(logs.stderr, err);
      writeFileSync(logs.console, Buffer.from('boot\r\n\x1b[?25lconsole\r\n'));
    };
    add('r1hostile', ['sh', '-c', 'printf "\x1b[2J"'], HOSTILE_OUT, HOSTILE_ERR);
    add('r2long', ['true'], LONG, Buffer.alloc(0));
    store.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), ...args], { env: { ...process.env, VMWU_HOME: home }, maxBuffer: 1 << 24 });

  test('escaped by default, even into a pipe', () => {
    const r = cli('logs', 'r1hostile');
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString('latin1'), 'result 42\n\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2J\\u009b1Asecret\\rshown\r\n\\xff\\x9b\n');
    assert.equal(r.stderr.toString('latin1'), 'warning\\u001b[31m red\\u001b[0m\n');
  });

  test('--raw prints the exact bytes, and the stored logs are untouched', () => {
    const r = cli('logs', 'r1hostile', '--raw');
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.equals(HOSTILE_OUT), true);
    assert.equal(r.stderr.equals(HOSTILE_ERR), true);
    assert.equal(readFileSync(join(home, 'runs', 'r1hostile', 'stdout.log')).equals(HOSTILE_OUT), true);
  });

  test('--console: the guest console, its CRLF line ends kept', () => {
    const r = cli('logs', 'r1hostile', '--console');
    assert.equal(r.stdout.toString(), 'boot\r\n\\u001b[?25lconsole\r\n');
  });

  test('a character split between two reads of a long log comes out whole', () => {
    const r = cli('logs', 'r2long');
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.equals(LONG), true);
  });

  test('vmwu runs: a command with control characters cannot break the table', () => {
    const r = cli('runs');
    assert.equal(r.status, 0, r.stderr.toString());
    const out = r.stdout.toString();
    assert.equal(out.split('\n').length, 4, out);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(out, /\x1b/);
    assert.match(out, /sh -c printf "\\u001b\[2J"/);
  });
});
