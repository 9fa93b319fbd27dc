import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { packageRoot } from '../../../src/paths.js';

const clones: string[] = [];
after(() => { for (const d of clones) rmSync(d, { recursive: true, force: true }); });

/** bin/ and package.json copied where there is no dist/ and no node_modules, as in a fresh clone. */
function freshClone(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-clone-'));
  clones.push(dir);
  cpSync(join(packageRoot, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(packageRoot, 'package.json'), join(dir, 'package.json'));
  return dir;
}

function run(dir: string, launcher = 'vmwu.js', args = ['--version']) {
  const r = spawnSync(process.execPath, [join(dir, 'bin', launcher), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeDist(dir: string, file: string, text: string): void {
  mkdirSync(dirname(join(dir, 'dist', file)), { recursive: true });
  writeFileSync(join(dir, 'dist', file), text);
}

const HINT = /^vmwu is not set up in .+ yet: run `npm run setup` \(or `sh scripts\/setup\.sh`\) there first\n$/;

test('a fresh clone (no dist/, no node_modules): both launchers say to run the set-up, in one line, and exit 1', () => {
  const dir = freshClone();
  for (const launcher of ['vmwu.js', 'vmwu-docker.js']) {
    const r = run(dir, launcher);
    assert.equal(r.code, 1, `${launcher}: ${r.stderr}`);
    assert.match(r.stderr, HINT, launcher);
    assert.ok(r.stderr.includes(dir), 'it names the directory to run it in');
  }
});

test('dist/ built but a declared package missing from node_modules: the same hint', () => {
  const dir = freshClone();
  writeDist(dir, 'cli/main.js', "import 'commander';\nexport function main() {}\n");
  const r = run(dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, HINT);
});

test('a module missing inside dist/, or an undeclared package, is a bug: its error is shown, exit 125', () => {
  const dir = freshClone();
  writeDist(dir, 'cli/main.js', "import './gone.js';\nexport function main() {}\n");
  let r = run(dir);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /Cannot find module '.*gone\.js'/);
  assert.doesNotMatch(r.stderr, /npm run setup/);
  writeDist(dir, 'cli/main.js', "import 'no-such-package-vmwu-depends-on';\nexport function main() {}\n");
  r = run(dir);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /Cannot find package 'no-such-package-vmwu-depends-on'/);
  assert.doesNotMatch(r.stderr, /npm run setup/);
});

test('once set up, the launchers run the CLI with its arguments', () => {
  const dir = freshClone();
  writeDist(dir, 'cli/main.js', 'export async function main(argv) { console.log(JSON.stringify(argv.slice(2))); }\n');
  writeDist(dir, 'cli/docker.js', 'export async function dockerMain(args) { console.log(args.join(",")); return 3; }\n');
  const r = run(dir, 'vmwu.js', ['a', 'b']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '["a","b"]\n');
  const d = run(dir, 'vmwu-docker.js', ['version', 'x']);
  assert.equal(d.code, 3, d.stderr);
  assert.equal(d.stdout, 'version,x\n');
});
