import assert from 'node:assert/strict';
import { fixturesDir, repoRoot as repo } from '../../support/fixture-path.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import {
  buildKeyMaterial, loadUnitSpec, parseUnitSpec, splitCommandLine, type UnitSpec,
} from '../../../src/unit/spec.js';
import { displayPath, formatPath, LocatedError, suggest, YamlSource } from '../../../src/unit/yaml-location.js';

const fixtures = join(fixturesDir, 'specs');

const scratch = mkdtempSync(join(tmpdir(), 'vmwu-spec-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;

/** A unit directory holding `files` (path → content; a value starting with `->` is a symlink). */
function unitDir(files: Record<string, string> = {}): string {
  const dir = join(scratch, `u${dirs++}`);
  mkdirSync(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    if (content.startsWith('->')) symlinkSync(content.slice(2), join(dir, p));
    else writeFileSync(join(dir, p), content);
  }
  return dir;
}

const HEAD = 'name: x\nversion: 1.0.0\nbase: tiny\n';

function parse(text: string, dir = unitDir()): UnitSpec {
  return parseUnitSpec(text, join(dir, 'vmwu.yaml'));
}

/** Parses, expects a LocatedError, and checks its first line (after the file name) and hint. */
function rejects(text: string, line: string, hint?: string | RegExp, dir = unitDir()): LocatedError {
  const file = join(dir, 'vmwu.yaml');
  try {
    parseUnitSpec(text, file);
  } catch (e) {
    assert.ok(e instanceof LocatedError, `expected a LocatedError, got ${String(e)}`);
    assert.equal(e.message.split('\n')[0], `${displayPath(file)}:${line}`);
    if (typeof hint === 'string') assert.equal(e.hint, hint);
    else if (hint) assert.match(e.hint ?? '', hint);
    return e;
  }
  assert.fail(`no error for:\n${text}`);
}

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

  test('the mandelbrot example is valid', () => {
    const s = loadUnitSpec(join(repo, 'examples/mandelbrot'));
    assert.deepEqual(s.packages, ['gcc', 'libc6-dev']);
    assert.deepEqual(s.outputs, ['*.ppm']);
    assert.equal(s.run?.length, 11);
    assert.equal(s.params.width?.default, '1600');
    assert.equal(s.params.xmin?.type, 'float');
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

  test('missing: points at the start of the document and lists the forms', () => {
    rejects('# my unit\nname: x\nversion: 1\n', '1:1: base: required',
      'one of: base: tiny, base: debian:bookworm, or base: {arch: x86_64, os: linux}');
  });

  test('wrong type, a field missing from the platform map, a misspelt one', () => {
    rejects('name: x\nversion: 1\nbase: 5\n', '3:7: base: expected a string or a map, got 5', /base: tiny/);
    rejects('name: x\nversion: 1\nbase: {arch: x86_64}\n', '3:7: base.os: required');
    // The misspelling explains the missing field, so only it is reported.
    const e = rejects('name: x\nversion: 1\nbase: {arch: x86_64, oss: linux}\n', '3:22: base: unknown field `oss`', 'did you mean os?');
    assert.equal(e.problems.length, 1);
  });
});

describe('errors name file, line, column and field', () => {
  test('unknown field, with a suggestion', () => {
    rejects(`${HEAD}pakages: [gcc]\n`, '4:1: unknown field `pakages`', 'did you mean packages?');
    rejects(`${HEAD}files:\n  - from: .\n    too: /app\n`, '6:5: files[0]: unknown field `too`', 'did you mean to?');
    rejects(`${HEAD}colour: blue\n`, '4:1: unknown field `colour`', /^allowed here: name, version, base, packages/);
  });

  test('wrong types', () => {
    rejects(`${HEAD}resources:\n  cpus: two\n`, '5:9: resources.cpus: expected a whole number of at least 1, got "two"', /cpus: 1/);
    rejects(`${HEAD}resources: {cpus: 1.5}\n`, '4:19: resources.cpus: expected a whole number of at least 1, got 1.5');
    rejects(`${HEAD}packages: python3\n`, '4:11: packages: expected a list, got "python3"', /packages: \[python3, gcc\]/);
    rejects(`${HEAD}network: yes\n`, '4:10: network: expected true/false, got "yes"');
    rejects(`${HEAD}cpu: [x86-64-v2, "avx 2"]\n`, '4:18: cpu[1]: "avx 2" is neither an x86-64 level nor a CPU feature name', /levels: x86-64, x86-64-v2/);
    rejects(`${HEAD}params: {n: [1, 2]}\n`, '4:13: params.n: expected a string, a number or true/false, got a list');
    rejects(`${HEAD}params: {n: }\n`, '4:10: params.n: expected a string, a number or true/false, got nothing');
    rejects('- name: x\n', '1:1: expected a map of fields, got a list');
    rejects('# nothing yet\n', '1:1: the spec is empty');
  });

  test('an empty value points at its key', () => {
    rejects('name:\nversion: 1\nbase: tiny\n', '1:1: name: expected a string, got nothing');
  });

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

  test('several problems are all reported, in source order', () => {
    const e = rejects('name: x\nversion: 1\nbase: tiny\nresources: {memory: lots}\npackages: [Bad]\n', '4:21: resources.memory: "lots" is not a size');
    assert.equal(e.problems.length, 2);
    assert.deepEqual(e.problems[1]!.pos, { line: 5, col: 12 });
    assert.equal(e.code, 'BAD_SPEC');
    assert.ok(isVmwuError(e));
  });
});

describe('files', () => {
  const spec = (from: string, to = '/app') => `${HEAD}files:\n  - from: ${from}\n    to: ${to}\n`;

  test('from outside the spec directory is refused', () => {
    const dir = unitDir({ 'vmwu.yaml': '' });
    writeFileSync(join(dir, '..', 'secret'), 'x');
    rejects(spec('../secret'), '5:11: files[0].from: "../secret" points outside the spec\'s directory', /move them there/, dir);
    rejects(spec('/etc/passwd'), '5:11: files[0].from: "/etc/passwd" points outside the spec\'s directory', undefined, dir);
  });

  test('from that does not exist names the resolved path', () => {
    const dir = unitDir();
    rejects(spec('./nope'), `5:11: files[0].from: "./nope" does not exist (${join(dir, 'nope')})`, /relative to the directory/, dir);
  });

  test('a symlink cannot lead outside, but may point within', () => {
    const outside = unitDir({ 'secret.txt': 'x' });
    const dir = unitDir({ 'data/real.txt': 'y', 'leak': `->${outside}`, 'data/alias.txt': '->real.txt' });
    rejects(spec('leak/secret.txt'), `5:11: files[0].from: "leak/secret.txt" is a link to ${join(outside, 'secret.txt')}, outside the spec's directory`, undefined, dir);
    rejects(spec('./leak'), `5:11: files[0].from: "./leak" is a link to ${outside}, outside the spec's directory`, undefined, dir);
    assert.deepEqual(parse(spec('data/alias.txt'), dir).files, [{ from: join(dir, 'data/alias.txt'), to: '/app' }]);
  });

  test('to must be an absolute guest path without .., not / itself, not repeated', () => {
    const dir = unitDir({ a: '', b: '' });
    rejects(spec('a', 'app'), '6:9: files[0].to: "app" is not an absolute guest path', 'write it like /app or /opt/data', dir);
    rejects(spec('a', '/app/../etc'), '6:9: files[0].to: "/app/../etc" contains ..', undefined, dir);
    rejects(spec('a', '//'), '6:9: files[0].to: cannot import over the guest\'s root directory', undefined, dir);
    rejects(`${HEAD}files: [{from: a, to: /x/}, {from: b, to: /x}]\n`, '4:43: files[1].to: /x is already the target of files[0]', undefined, dir);
  });

  test('a missing spec file is reported, not thrown raw', () => {
    assert.throws(() => loadUnitSpec(unitDir()), (e: unknown) => isVmwuError(e) && e.code === 'NO_SPEC' && /vmwu\.yaml: no such file/.test(e.message));
    assert.throws(() => loadUnitSpec(join(scratch, 'absent')), (e: unknown) => isVmwuError(e) && e.code === 'NO_SPEC');
  });
});

describe('buildKeyMaterial', () => {
  const dir = unitDir({ 'src/a.c': '', 'src/b.c': '' });
  const key = (text: string) => buildKeyMaterial(parse(text, dir));
  const base = `${HEAD}packages: [gcc, python3]\nfiles: [{from: ./src, to: /app}]\nsetup: make\n`;

  test('ignores package order, YAML formatting, comments and run-time fields', () => {
    const reformatted = [
      '# a comment', 'name: other', 'version: 9', "base: 'tiny'", 'setup: |', '  make', 'packages:', '  - python3',
      '  - gcc', '  - gcc', 'files:', '  - from: src/', '    to: /app/', 'run: ./x', 'params: {n: 1}', 'network: true', '',
    ].join('\n');
    assert.equal(key(reformatted), key(base));
    assert.equal(key(base), '{"base":{"name":"tiny"},"files":[{"from":"src","to":"/app"}],"format":1,"packages":["gcc","python3"],"setup":"make\\n"}');
  });

  test('changes with setup, a file mapping, packages or base', () => {
    const k = key(base);
    assert.notEqual(key(base.replace('setup: make', 'setup: make all')), k);
    assert.notEqual(key(base.replace('to: /app', 'to: /opt/app')), k);
    assert.notEqual(key(base.replace('from: ./src', 'from: ./src/a.c')), k);
    assert.notEqual(key(base.replace('python3]', 'python3, make]')), k);
    assert.notEqual(key(base.replace('base: tiny', 'base: {arch: x86_64, os: linux}')), k);
  });
});

describe('splitCommandLine', () => {
  test('quotes, backslashes, no expansion', () => {
    assert.deepEqual(splitCommandLine(`a  'b c' "d \\"e\\" \\n" f\\ g '' "\${x}" $y *.c`),
      ['a', 'b c', 'd "e" \\n', 'f g', '', '${x}', '$y', '*.c']);
    assert.deepEqual(splitCommandLine('a \\\n  b\n'), ['a', 'b']);
    assert.deepEqual(splitCommandLine('"x;y|z" \'a>b\''), ['x;y|z', 'a>b']);
  });

  test('refuses what only a shell would understand', () => {
    for (const [line, index] of [['a | b', 2], ['a; b', 1], ['echo $(date)', 5], ['a `b`', 2], ['a\nb', 1], ["'x", 0], ['x\\', 1]] as const) {
      assert.throws(() => splitCommandLine(line), (e: unknown) => (e as { index: number }).index === index, line);
    }
  });
});

describe('yaml-location', () => {
  const src = new YamlSource('a:\n  b: [1, {c: 2}]\n  d:\nlist:\n  - x\n', '/f.yaml');

  test('positions of values, keys, missing keys and empty values', () => {
    assert.deepEqual(src.pos(['a', 'b', 1, 'c']), { line: 2, col: 14 });
    assert.deepEqual(src.pos(['a', 'b', 1, 'c'], { key: true }), { line: 2, col: 11 });
    assert.deepEqual(src.pos(['a', 'b', 1, 'missing']), { line: 2, col: 10 });
    assert.deepEqual(src.pos(['a', 'd']), { line: 3, col: 3 });
    assert.deepEqual(src.pos(['list', 0]), { line: 5, col: 5 });
    assert.deepEqual(src.pos(['nope']), { line: 1, col: 1 });
    assert.deepEqual(src.pathAt(src.text.indexOf('2}')).path, ['a', 'b', 1, 'c']);
  });

  test('paths, suggestions, display names', () => {
    assert.equal(formatPath(['files', 0, 'from']), 'files[0].from');
    assert.equal(formatPath(['params', '1x']), 'params["1x"]');
    assert.equal(suggest('pakages', ['name', 'packages']), 'packages');
    assert.equal(suggest('ouptuts', ['outputs', 'network']), 'outputs');
    assert.equal(suggest('colour', ['name', 'base']), undefined);
    assert.equal(displayPath('/w/units/a/vmwu.yaml', '/w'), 'units/a/vmwu.yaml');
    assert.equal(displayPath('/elsewhere/vmwu.yaml', '/w'), '/elsewhere/vmwu.yaml');
  });
});
