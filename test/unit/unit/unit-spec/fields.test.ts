import assert from 'node:assert/strict';
import { HEAD, parse, rejects } from '../../../support/unit-spec.js';
import { describe, test } from 'node:test';

describe('a valid spec', () => {
  test('optional fields default to empty', () => {
    const s = parse(HEAD);
    assert.deepEqual(
      { packages: s.packages, files: s.files, setup: s.setup, run: s.run, params: s.params, outputs: s.outputs, resources: s.resources, network: s.network },
      { packages: [], files: [], setup: null, run: null, params: {}, outputs: [], resources: {}, network: false },
    );
    assert.deepEqual(parse(`${HEAD}packages:\nsetup:\nrun:\n`).packages, []);
  });

  test('a numeric version keeps its text; a list run is argv as is', () => {
    const s = parse('name: x\nversion: 1.10\nbase: tiny\nparams: {n: 5}\nrun: [sh, -c, "echo ${n} > out", 3, 1.50]\n');
    assert.equal(s.version, '1.10');
    assert.deepEqual(s.run, ['sh', '-c', 'echo ${n} > out', '3', '1.50']);
  });
});

describe('base', () => {
  test('a name: tiny, a Debian release, an imported base', () => {
    for (const name of ['tiny', 'debian:bookworm', 'my-imported-base']) {
      assert.deepEqual(parse(`name: x\nversion: 1\nbase: ${name}\n`).base, { name });
    }
  });

  test('a platform to look one up', () => {
    assert.deepEqual(parse('name: x\nversion: 1\nbase: {arch: x86_64, os: linux}\n').base, { arch: 'x86_64', os: 'linux' });
    assert.deepEqual(parse('name: x\nversion: 1\nbase:\n  arch: aarch64\n  os: linux\n').base, { arch: 'aarch64', os: 'linux' });
  });
});

describe('errors name file, line, column and field', () => {
  test('invalid name, version, package', () => {
    rejects('name: My Unit\nversion: 1\nbase: tiny\n', '1:7: name: "My Unit" is not a valid unit name');
    rejects(`name: x\nversion: one\nbase: tiny\n`, '2:10: version: "one" is not a version');
    rejects(`${HEAD}packages: [gcc, Python3]\n`, '4:17: packages[1]: "Python3" is not a Debian package name', /name=version/);
    rejects(`${HEAD}packages: [gcc=12, gcc]\n`, '4:20: packages[1]: gcc is listed twice with different versions (also packages[0]: gcc=12)');
  });

  test('sizes and durations: the position of the value', () => {
    rejects(`${HEAD}resources:\n  memory: lots\n`, '5:11: resources.memory: "lots" is not a size', 'write it like 512M, 2G or 4096k');
    rejects(`${HEAD}resources: {timeout: soon}\n`, '4:22: resources.timeout: "soon" is not a duration', /10m/);
    rejects(`${HEAD}resources: {memory: 512}\n`, '4:21: resources.memory: expected a string, got 512');
    assert.equal(parse(`${HEAD}resources: {timeout: 90}\n`).resources.timeoutMs, 90_000);
  });

  test('param names follow the environment-variable rules', () => {
    rejects(`${HEAD}params:\n  1x: 2\n`, '5:3: params["1x"]: "1x" is not a valid parameter name', /letters, digits and _/);
    rejects(`${HEAD}params: {VMWU_JOB: 1}\n`, '4:10: params.VMWU_JOB: "VMWU_JOB" is reserved (VMWU_ prefix)');
    rejects(`${HEAD}params: {a-b: 1}\n`, '4:10: params.a-b: "a-b" is not a valid parameter name');
    rejects(`${HEAD}params: {__proto__: 1}\n`, '4:10: params.__proto__: "__proto__" cannot be used as a parameter name');
  });

  test('${name} in run must be a declared param', () => {
    rejects(`${HEAD}params: {rows: 1}\nrun: ./prog \${rows} \${cols}\n`, '5:21: run: ${cols} is not a declared param', /declare it .*params: \{cols: \.\.\.\}/);
    rejects(`${HEAD}params: {rows: 1}\nrun: ./prog \${row}\n`, '5:13: run: ${row} is not a declared param', /^did you mean \$\{rows\}\?/);
    rejects(`${HEAD}run: [./prog, "--n=\${n}"]\n`, '4:20: run: ${n} is not a declared param');
    rejects(`${HEAD}run: |\n  ./prog \${n}\n`, '4:6: run: ${n} is not a declared param');
  });

  test('run that a shell would be needed for', () => {
    rejects(`${HEAD}run: ./prog > out.txt\n`, '4:13: run: the command `>` is shell syntax', /run: \[sh, -c/);
    rejects(`${HEAD}run: ./prog "unterminated\n`, '4:13: run: the command has an unterminated " quote');
    rejects(`${HEAD}run: |\n  ./a\n  ./b\n`, '4:6: run: the command has more than one line');
    rejects(`${HEAD}run: ""\n`, '4:6: run: empty command');
  });

  test('outputs stay inside the work dir', () => {
    rejects(`${HEAD}outputs: [/etc/passwd]\n`, '4:11: outputs[0]: "/etc/passwd" is an absolute path', /relative to the work dir/);
    rejects(`${HEAD}outputs: ["*.ppm", "../*.log"]\n`, '4:20: outputs[1]: "../*.log" reaches outside the work dir with ..');
    rejects(`${HEAD}outputs: ["!*.tmp"]\n`, '4:11: outputs[0]: "!*.tmp": negated globs are not supported');
  });
});
