import assert from 'node:assert/strict';
import { fixturesDir, repoRoot as repo } from '../../../support/fixture-path.js';
import { HEAD, rejects, scratch, unitDir } from '../../../support/unit-spec.js';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isVmwuError } from '../../../../src/errors.js';
import { loadUnitSpec } from '../../../../src/unit/unit-spec/load.js';

const fixtures = join(fixturesDir, 'specs');

describe('a valid spec', () => {
  const dir = join(fixtures, 'full');
  const spec = loadUnitSpec(dir);

  test('identity and base', () => {
    assert.equal(spec.name, 'full-example_1.x');
    assert.equal(spec.version, '2.1.0-rc.1');
    assert.deepEqual(spec.base, { name: 'debian:bookworm' });
    assert.equal(spec.file, join(dir, 'vmwu.yaml'));
    assert.equal(spec.dir, dir);
  });

  test('packages are deduplicated and sorted', () => {
    assert.deepEqual(spec.packages, ['gcc=4:12.2.0-3', 'libc6-dev', 'python3']);
  });

  test('files are resolved against the spec directory, guest paths normalised', () => {
    assert.deepEqual(spec.files, [
      { from: join(dir, 'src'), to: '/app' },
      { from: join(dir, 'data/input.txt'), to: '/data/input.txt' },
    ]);
  });

  test('setup is kept as a script', () => {
    assert.equal(spec.setup, 'gcc -O2 -o /app/main /app/main.c\nmkdir -p /out\n');
  });

  test('run is split like sh would, ${param} left in place', () => {
    assert.deepEqual(spec.run, ['/app/main', '--title', 'Mandel brot', 'its', 'a b', '${xmin}', '--rows=${rows}']);
  });

  test('params take their type from the YAML scalar and keep its text', () => {
    assert.deepEqual(spec.params, {
      xmin: { default: '-2.0', type: 'float' },
      rows: { default: '100', type: 'int' },
      big: { default: '1e3', type: 'float' },
      verbose: { default: 'true', type: 'bool' },
      label: { default: '-2.0', type: 'string' },
      plain: { default: 'hello world', type: 'string' },
    });
  });

  test('outputs, resources, network', () => {
    assert.deepEqual(spec.outputs, ['*.ppm', 'logs/*.log']);
    assert.deepEqual(spec.resources, { memoryMiB: 1536, cpus: 2, timeoutMs: 90 * 60_000 });
    assert.equal(spec.network, true);
  });

  test('loads from the file path too', () => {
    assert.deepEqual(loadUnitSpec(join(dir, 'vmwu.yaml')), spec);
  });

  test('the mandelbrot example is valid', () => {
    const s = loadUnitSpec(join(repo, 'examples/mandelbrot'));
    assert.deepEqual(s.packages, ['gcc', 'libc6-dev']);
    assert.deepEqual(s.outputs, ['*.ppm']);
    assert.equal(s.run?.length, 11);
    assert.equal(s.params.width?.default, '1600');
    assert.equal(s.params.xmin?.type, 'float');
  });
});

describe('errors name file, line, column and field', () => {
  test('YAML syntax errors keep their position', () => {
    rejects(`${HEAD}packages: [gcc\nrun: x\n`, '5:1: YAML syntax: flow sequence in block collection must be sufficiently indented and end with a ]');
    rejects('name: "x\nversion: 1\n', '3:1: YAML syntax: missing closing "quote');
    const e = rejects(`${HEAD}setup: a\n---\nb: 1\n`, '5:1: more than one YAML document (a second `---`)');
    assert.equal(e.code, 'SPEC_SYNTAX');
  });

  test('duplicate keys are errors, at the second one', () => {
    rejects(`${HEAD}network: false\nname: y\n`, '5:1: duplicate field `name` (first at line 1)', /once/);
    rejects(`${HEAD}resources:\n  cpus: 1\n  cpus: 2\n`, '6:3: resources: duplicate field `cpus` (first at line 5)');
  });

  test('unknown tags and dangling aliases are errors', () => {
    rejects(`${HEAD}setup: !shell make\n`, '4:8: setup: unknown tag: !shell', /tag/);
    rejects(`${HEAD}setup: *script\n`, '4:8: setup: alias *script refers to no anchor before it');
    rejects(`${HEAD}resources: !limits\n  cpus: 1\n`, '4:12: resources: unknown tag: !limits');
    rejects(`${HEAD}? [a, b]\n: c\n`, '4:3: a key must be a plain value, not a list or map');
    rejects(`${HEAD}run: &m {x: 1}\nparams:\n  *m : 2\n`, '6:3: params: a key must be a plain value, not a list or map');
  });

  // Found by fuzzing (test/fuzz/corpus/spec/regress-newline-in-key.yaml): a quoted key's newline split the
  // message into lines that did not name the file, and an escape sequence would reach the terminal.
  test('a message quoting a key with a newline or an escape character stays one printable line', () => {
    const dup = rejects(`${HEAD}"a\\nb": 1\n"a\\nb": 2\n`, '5:1: duplicate field `a\\nb` (first at line 4)');
    assert.equal(dup.message.split('\n').length, 1);
    const esc = rejects(`${HEAD}"\\e[2J": 1\n`, '4:1: unknown field `\\u001b[2J`');
    assert.ok(!esc.message.includes('\x1b'));
  });

  // Found by fuzzing (test/fuzz/corpus/spec/regress-nested-flow-keys): naming such a key for the message
  // stringified it, which doubled per level (12 s at 25 levels; deeper, a RangeError instead of a spec error).
  test('maps nested as keys 60 deep are refused like one, without stringifying them', () => {
    rejects(`${HEAD}params: ${'{'.repeat(60)}a: b${'}'.repeat(60)}\n`, '4:10: params: a key must be a plain value, not a list or map');
    rejects(`${HEAD}run: [a, rate: ${'{'.repeat(60)}: t\n`, '4:17: run[1].rate: a key must be a plain value, not a list or map');
  });

  test('several problems are all reported, in source order', () => {
    const e = rejects('name: x\nversion: 1\nbase: tiny\nresources: {memory: lots}\npackages: [Bad]\n', '4:21: resources.memory: "lots" is not a size');
    assert.equal(e.problems.length, 2);
    assert.deepEqual(e.problems[1]!.pos, { line: 5, col: 12 });
    assert.equal(e.code, 'BAD_SPEC');
    assert.ok(isVmwuError(e));
  });
});

describe('the spec file', () => {
  test('a missing spec file is reported, not thrown raw', () => {
    assert.throws(() => loadUnitSpec(unitDir()), (e: unknown) => isVmwuError(e) && e.code === 'NO_SPEC' && /vmwu\.yaml: no such file/.test(e.message));
    assert.throws(() => loadUnitSpec(join(scratch, 'absent')), (e: unknown) => isVmwuError(e) && e.code === 'NO_SPEC');
  });
});
