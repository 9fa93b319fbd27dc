import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { tmp, vmwu } from '../support/harness.js';
import { assertReach, hostResolves, reachScript, startNetworkTargets } from '../support/network-targets.js';

/**
 * Builds run in a fresh store with its own Debian base, so cache hits and template
 * reuse are this run's doing, not left over from an earlier one.
 */
const home = tmp('vmwu-build-home-');
const env = { VMWU_HOME: home };
const run = (args: string[]) => vmwu(args, env);

function unitDir(name: string, spec: string, files: Record<string, string>): string {
  const dir = join(tmp('vmwu-spec-'), name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'vmwu.yaml'), spec);
  for (const [f, body] of Object.entries(files)) {
    writeFileSync(join(dir, 'app', f), body);
    chmodSync(join(dir, 'app', f), 0o755);
  }
  return dir;
}

/** The store's layer rows, oldest first. */
function layerRows(): { kind: string; packages: string }[] {
  const db = new Database(join(home, 'vmwu.db'), { readonly: true });
  try {
    return db.prepare('SELECT kind, packages FROM layers ORDER BY rowid').all() as { kind: string; packages: string }[];
  } finally {
    db.close();
  }
}

/** A build's apt installed from lists pruned to what its packages may pull in (src/unit/build-lists.ts), and needed nothing more. */
function assertOwnLists(log: string): void {
  const given = /apt is given only the (\d+) package versions these may pull in/.exec(log);
  assert.ok(given, 'apt had lists of its own');
  assert.ok(Number(given[1]) > 0 && Number(given[1]) < 1000, `a few hundred at most, not all of Debian's ~63,000: ${given[1]}`);
  assert.doesNotMatch(log, /retrying from the whole lists/);
}

interface BuildJson { unit: string; cached: boolean; boots: number; template: string | null; chain: string[]; runs: string[] }
interface ShowJson { chain: string[]; layers: { digest: string; parent: string; kind: string; packages: string[] }[] }

const calc = unitDir('calc', `name: calc
version: 1.0.0
base: debian:bookworm
packages: [python3]
files:
  - {from: ./app, to: /app}
run: /app/calc.sh \${power}
params: {power: 64}
outputs: ["*.txt"]
`, { 'calc.sh': '#!/bin/sh\npython3 -c "print(2**$1)" > result.txt\necho "computed 2^$1"\n' });

const calcBc = unitDir('calcbc', `name: calcbc
version: 1.0.0
base: debian:bookworm
packages: [bc, python3]
files:
  - {from: ./app, to: /app}
run: /app/both.sh
`, { 'both.sh': '#!/bin/sh\npython3 -c "print(3)"\necho "3*7" | bc\n' });

describe('vmwu build', { concurrency: false, timeout: 900_000 }, () => {
  before(async () => {
    const r = await run(['base', 'build', 'debian']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('--network on the Debian base: interface, route, DNS and outbound work; the host\'s loopback is out of reach', { skip: process.getuid?.() !== 0 && 'needs root for the network namespace target' }, async () => {
    const t = await startNetworkTargets();
    try {
      const r = await run(['run', '--base', 'debian:bookworm', '--network', '--timeout', '3m', '--', 'sh', '-c', reachScript(t)]);
      assert.equal(r.code, 0, r.stderr);
      assertReach(r.stdout, t);
      if (await hostResolves()) assert.match(r.stdout, /^dns=0$/m, 'names resolve through the host\'s resolver');
      const off = await run(['run', '--base', 'debian:bookworm', '--', 'sh', '-c', 'cat /etc/resolv.conf; ls /sys/class/net']);
      assert.equal(off.code, 0, off.stderr);
      assert.doesNotMatch(off.stdout, /^nameserver/m, 'the base does not carry the build host\'s resolver');
      assert.deepEqual(off.stdout.split('\n').filter((l) => l && !l.startsWith('#')), ['lo'], 'and without --network there is no interface');
    } finally {
      await t.stop();
    }
  });

  test('a Debian unit installs a real package and runs a program from it', async () => {
    const b = await run(['build', calc, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const j = JSON.parse(b.stdout) as BuildJson;
    assert.equal(j.unit, 'calc:1.0.0');
    assert.equal(j.cached, false);
    assert.equal(j.boots, 1, 'one boot: the package layer is cut off the root before the files step');
    assertOwnLists((await run(['logs', j.runs[0]!])).stdout);
    const out = join(tmp(), 'out');
    const r = await run(['run', 'calc', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(out, 'work', 'result.txt'), 'utf8'), '18446744073709551616\n');
    assert.equal(readFileSync(join(out, 'stdout'), 'utf8'), 'computed 2^64\n');
    const r2 = await run(['run', 'calc', '--param', 'power=10', '--out', join(out, 'p10'), '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(readFileSync(join(out, 'p10', 'work', 'result.txt'), 'utf8'), '1024\n');
    const bad = await run(['run', 'calc', '--param', 'power=lots']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /power is a int parameter/);
  });

  test('the same spec again is a cache hit: no VM boots', async () => {
    const runsBefore = JSON.parse((await run(['runs', '--json', '-n', '1000'])).stdout).length;
    const b = await run(['build', calc, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const j = JSON.parse(b.stdout) as BuildJson;
    assert.equal(j.cached, true);
    assert.equal(j.boots, 0);
    assert.equal(JSON.parse((await run(['runs', '--json', '-n', '1000'])).stdout).length, runsBefore, 'no run was started');
  });

  test('template reuse: [python3, bc] builds on the [python3] layer and installs only bc', async () => {
    const first = JSON.parse((await run(['unit', 'show', 'calc', '--json'])).stdout) as ShowJson;
    const pyLayer = first.layers.find((l) => l.kind === 'packages')!;
    assert.deepEqual(pyLayer.packages, ['python3']);
    const b = await run(['build', calcBc, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const j = JSON.parse(b.stdout) as BuildJson;
    assert.equal(j.template, pyLayer.digest);
    const show = JSON.parse((await run(['unit', 'show', 'calcbc', '--json'])).stdout) as ShowJson;
    const pkg = show.layers.find((l) => l.kind === 'packages' && l.packages.includes('bc'))!;
    assert.deepEqual(pkg.packages, ['bc', 'python3']);
    assert.equal(pkg.parent, pyLayer.digest, 'the new package layer sits on the [python3] template');
    assert.ok(show.chain.includes(pyLayer.digest), 'the chain records the template');
    const built = await run(['logs', j.runs[0]!]);
    assert.match(built.stdout, /installing packages: bc\n/, 'only the difference was installed');
    assertOwnLists(built.stdout);
    const r = await run(['run', 'calcbc', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(JSON.parse(r.stdout).outDir, 'stdout'), 'utf8'), '3\n21\n');
  });

  test('the package layer holds the packages and no job file; the app layer holds the files', async () => {
    const show = JSON.parse((await run(['unit', 'show', 'calc', '--json'])).stdout) as ShowJson;
    const [app, pkg] = show.layers;
    assert.equal(app!.kind, 'app');
    assert.equal(pkg!.kind, 'packages');
    assert.equal(app!.parent, pkg!.digest, 'the app layer sits on the package layer cut in the same boot');
    const blob = (digest: string) => readFileSync(join(home, 'blobs', 'sha256', digest.slice('sha256:'.length)));
    const [pkgBytes, appBytes] = [blob(pkg!.digest), blob(app!.digest)];
    // Layers are uncompressed qcow2: a file that was ever written to the root, even deleted since, leaves its bytes there.
    assert.ok(appBytes.includes('computed 2^'), 'the app layer holds calc.sh');
    assert.ok(!pkgBytes.includes('computed 2^'), 'the package layer holds nothing of the files step');
    for (const [name, bytes] of [['package', pkgBytes], ['app', appBytes]] as const) {
      assert.ok(!bytes.includes('vmwu-build: installing packages'), `the build script (on the job disk) is not in the ${name} layer`);
      assert.ok(!bytes.includes('!<arch>\ndebian-binary'), `no .deb was downloaded into the ${name} layer`);
    }
    // The package layer alone, booted through a unit that reuses it.
    const pyOnly = unitDir('pyonly', 'name: pyonly\nversion: 1.0.0\nbase: debian:bookworm\npackages: [python3]\n', {});
    const b = await run(['build', pyOnly, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const j = JSON.parse(b.stdout) as BuildJson;
    assert.equal(j.boots, 0, 'the package layer is cached');
    assert.deepEqual(j.chain, [pkg!.digest]);
    const r = await run(['run', 'pyonly', '--json', '--', 'sh', '-c', 'python3 -c "print(6*7)"; echo app: $(ls -A /app); echo in: $(ls -A /job/in); echo work: $(ls -A /job/work)']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(JSON.parse(r.stdout).outDir, 'stdout'), 'utf8'), '42\napp:\nin: cmd inputs job.env\nwork:\n',
      'python3 is installed; /app is empty and /job holds this run\'s files only');
  });

  test('a failed files step keeps the package layer; fixed, the build starts from it', async () => {
    const spec = (setup: string) => `name: jqtool\nversion: 1.0.0\nbase: debian:bookworm\npackages: [jq]\nfiles:\n  - {from: ./app, to: /opt/jqtool}\nsetup: |\n  ${setup}\nrun: sh /opt/jqtool/q.sh\n`;
    const dir = unitDir('jqtool', spec('exit 3'), { 'q.sh': '#!/bin/sh\necho \'{"n": 7}\' | jq .n\n' });
    const before = layerRows().length;
    const b = await run(['build', dir]);
    assert.equal(b.code, 125);
    assert.match(b.stderr, /build step \(app\) failed with exit 3/);
    assert.match(b.stderr, /packages layer it built first was kept/);
    assert.deepEqual(layerRows().slice(before), [{ kind: 'packages', packages: '["jq"]' }], 'the package layer was registered, no app layer');
    assert.ok(!(JSON.parse((await run(['units', '--json'])).stdout) as { name: string }[]).some((u) => u.name === 'jqtool'));
    writeFileSync(join(dir, 'vmwu.yaml'), spec('echo fixed > /opt/jqtool/setup.txt'));
    const again = await run(['build', dir, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout) as BuildJson;
    assert.equal(j.boots, 1);
    assert.doesNotMatch((await run(['logs', j.runs[0]!])).stdout, /installing packages/, 'only the files step ran');
    const r = await run(['run', 'jqtool', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(JSON.parse(r.stdout).outDir, 'stdout'), 'utf8'), '7\n');
  });

  test('a failed package step is reported as such and registers nothing', async () => {
    const dir = unitDir('nopkg', 'name: nopkg\nversion: 1.0.0\nbase: debian:bookworm\npackages: [vmwu-no-such-package]\nfiles:\n  - {from: ./app, to: /opt/x}\n', { 'x.sh': 'true\n' });
    const before = layerRows().length;
    const b = await run(['build', dir]);
    assert.equal(b.code, 125);
    assert.match(b.stderr, /build step \(packages\) failed with exit 100/);
    assert.match(b.stderr, /Unable to locate package vmwu-no-such-package/);
    assert.equal(layerRows().length, before);
  });

  test('a sweep runs a built unit: one job per parameter value, results staged out', async () => {
    const dir = tmp('vmwu-plan-');
    writeFileSync(join(dir, 'powers.pln'), [
      'parameter power integer range from 10 to 30 step 10',
      'task main',
      '    exec /app/calc.sh ${power}',
      '    copy node:result.txt root:power-${power}.txt',
      'endtask', '',
    ].join('\n'));
    const r = await run(['sweep', join(dir, 'powers.pln'), '--unit', 'calc', '--name', 'powers', '--slots', '2']);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse((await run(['status', 'powers', '--json'])).stdout) as { resultsDir: string };
    for (const [p, v] of [[10, '1024'], [20, '1048576'], [30, '1073741824']] as const) {
      assert.equal(readFileSync(join(status.resultsDir, `power-${p}.txt`), 'utf8'), `${v}\n`);
    }
  });

  test('a failing build shows the log tail and registers nothing', async () => {
    await run(['base', 'build', 'tiny']);
    const dir = unitDir('broken', 'name: broken\nversion: 0.1.0\nbase: tiny\nsetup: |\n  echo "about to fail"\n  exit 3\n', {});
    const before = layerRows().length;
    const b = await run(['build', dir]);
    assert.equal(b.code, 125);
    assert.match(b.stderr, /build step \(app\) failed with exit 3/);
    assert.match(b.stderr, /about to fail/);
    assert.equal(layerRows().length, before);
    const units = JSON.parse((await run(['units', '--json'])).stdout) as { name: string }[];
    assert.ok(!units.some((u) => u.name === 'broken'));
  });

  test('spec errors name the file, line and field', async () => {
    const cases: [string, RegExp][] = [
      ['name: x\nversion: 1.0.0\nbase: tiny\npakages: [bc]\n', /vmwu.yaml:4:1: .*unknown field `pakages`[\s\S]*did you mean packages/],
      ['name: x\nversion: 1.0.0\nbase: tiny\nresources: {cpus: two}\n', /vmwu.yaml:4:19: resources.cpus/],
      ['name: x\nversion: 1.0.0\n', /vmwu.yaml:1:1: base: required/],
      ['name: x\nversion: 1.0.0\nbase: tiny\nfiles:\n  - {from: ../.., to: /app}\n', /vmwu.yaml:5:\d+: files\[0\].from: .* outside the spec's directory/],
    ];
    for (const [spec, want] of cases) {
      const dir = unitDir('bad', spec, {});
      const r = await run(['build', dir]);
      assert.equal(r.code, 125, spec);
      assert.match(r.stderr, want);
      assert.match(r.stderr, /hint: /);
    }
  });
});
