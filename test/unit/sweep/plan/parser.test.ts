import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { fixturesDir } from '../../../support/fixture-path.js';
import { readFileSync } from 'node:fs';
import { parsePlan, type CommandNode, type Domain, type Plan, type Template } from '../../../../src/sweep/plan/index.js';
import { isVmwuError } from '../../../../src/errors.js';

const FIXTURES = pathToFileURL(join(fixturesDir, 'plans') + '/');
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

/** Templates rendered back with ${name} markers, so command assertions read like the plan. */
function show(t: Template): string {
  return t.parts.map((p) => (p.kind === 'lit' ? p.text : `\${${p.name}}`)).join('');
}

type Shown =
  | { copy: [string, string] }
  | { exec: string[] }
  | { shexec: string }
  | { onerror: string }
  | { redirect: string };

function shown(c: CommandNode): Shown {
  switch (c.kind) {
    case 'copy':
      return { copy: [`${c.from.loc}:${show(c.from.path)}`, `${c.to.loc}:${show(c.to.path)}`] };
    case 'exec':
      return { exec: c.argv.map(show) };
    case 'shexec':
      return { shexec: show(c.cmd) };
    case 'onerror':
      return { onerror: c.mode };
    case 'redirect':
      return { redirect: `${c.stream}${c.append ? ' append' : ''} ${c.file ? show(c.file) : 'off'}` };
  }
}

const commands = (plan: Plan): Shown[] => plan.task.commands.map(shown);

function domainOf(text: string): Domain {
  return parsePlan(`${text}\ntask main\nendtask\n`, 't.pln').parameters[0].domain;
}

function plain(d: Domain): Record<string, unknown> {
  // Drops positions so domain assertions compare only what was written.
  return JSON.parse(JSON.stringify(d, (k, v: unknown) => (k === 'pos' ? undefined : v))) as Record<string, unknown>;
}

/** Asserts a PLAN_SYNTAX error at exactly `where` (file:line:col) whose message contains `text`. */
function assertPlanError(src: string, where: string, text: string): void {
  assert.throws(
    () => parsePlan(src, 'bad.pln'),
    (e: unknown) => {
      assert.ok(isVmwuError(e), `expected a VmwuError, got ${String(e)}`);
      assert.equal(e.code, 'PLAN_SYNTAX');
      assert.ok(e.message.startsWith(`bad.pln:${where}: `), `position: ${e.message}`);
      assert.ok(e.message.includes(text), `text "${text}" not in: ${e.message}`);
      assert.ok(e.hint, 'every plan error has a hint');
      return true;
    },
  );
}

const TASK = 'task main\n  exec true\nendtask\n';

// ── Nimrod/G dialect ────────────────────────────────────────────────────────

test('Nimrod/G: every parameter domain', () => {
  assert.deepEqual(plain(domainOf('parameter x text default "a b"')), { kind: 'default', value: { text: 'a b' } });
  assert.deepEqual(plain(domainOf('parameter x integer 7')), { kind: 'default', value: { text: '7' } });
  assert.deepEqual(plain(domainOf('parameter x float range from -45 to 45 step 2.5')), {
    kind: 'range',
    from: { text: '-45', value: -45 },
    to: { text: '45', value: 45 },
    step: { text: '2.5', value: 2.5 },
  });
  assert.deepEqual(plain(domainOf('parameter x float range from 0 to 1 points 5')), {
    kind: 'points',
    from: { text: '0', value: 0 },
    to: { text: '1', value: 1 },
    points: { text: '5', value: 5 },
  });
  assert.deepEqual(plain(domainOf('parameter x float random from 1 to 2')), {
    kind: 'random',
    from: { text: '1', value: 1 },
    to: { text: '2', value: 2 },
    points: null,
  });
  assert.deepEqual(plain(domainOf('parameter x integer random from 1 to 6 points 3')).points, { text: '3', value: 3 });
  assert.deepEqual(plain(domainOf('parameter x text select anyof "none" fence "blended"')), {
    kind: 'anyof',
    values: [{ text: 'none' }, { text: 'fence' }, { text: 'blended' }],
  });
  assert.deepEqual(plain(domainOf('parameter x text select oneof "euler" "rans" default "rans"')), {
    kind: 'oneof',
    values: [{ text: 'euler' }, { text: 'rans' }],
    default: { text: 'rans' },
  });
  assert.deepEqual(plain(domainOf('parameter x text select oneof "euler" "rans"')).default, null);
  assert.deepEqual(plain(domainOf('parameter x files select anyof "*.pha" "in/??.dat"')).values, [{ text: '*.pha' }, { text: 'in/??.dat' }]);
});

test('Nimrod/G: a range without step or points steps by 1, as Nimrod/G does', () => {
  const d = domainOf('parameter x integer range from 1 to 5');
  assert.equal(d.kind, 'range');
  assert.equal(d.kind === 'range' && d.step.value, 1);
});

test('Nimrod/G: label, name, type and positions', () => {
  const plan = parsePlan('\n  parameter AoA label "Angle of attack" float range from -45 to 45 step 2.5\n' + TASK, 'p.pln');
  const [p] = plan.parameters;
  assert.equal(p.name, 'AoA');
  assert.equal(p.label, 'Angle of attack');
  assert.equal(p.type, 'float');
  assert.deepEqual(p.pos, { line: 2, col: 13 });
  assert.deepEqual(p.domain.kind === 'range' && p.domain.step.pos, { line: 2, col: 73 });
  assert.equal(plan.dialect, 'nimrodg');
  assert.equal(plan.fileName, 'p.pln');
  assert.deepEqual(plan.task.pos, { line: 3, col: 1 });
});

test('Nimrod/G: every task command', () => {
  const plan = parsePlan(
    [
      'parameter x text default "v"',
      'task main',
      '  onerror fail',
      '  onerror ignore',
      '  copy root:in/${x}.dat node:input.dat',
      '  copy a.txt b.txt',
      '  copy node:out.txt root:results/',
      '  copy node:out.txt results/',
      '  copy in.txt root:copy.txt',
      '  exec ./prog -a "two words" \'single $x\' x"y"z \\$',
      '  shexec "./run ${x} > out.${jobindex} 2>&1"',
      '  redirect stdout to log.txt',
      '  redirect stderr append to err.txt',
      '  redirect stdout off',
      'endtask',
    ].join('\n'),
    'p.pln',
  );
  assert.deepEqual(commands(plan), [
    { onerror: 'fail' },
    { onerror: 'ignore' },
    { copy: ['root:in/${x}.dat', 'node:input.dat'] },
    { copy: ['root:a.txt', 'node:b.txt'] },
    { copy: ['node:out.txt', 'root:results/'] },
    { copy: ['node:out.txt', 'root:results/'] },
    { copy: ['node:in.txt', 'root:copy.txt'] },
    { exec: ['./prog', '-a', 'two words', 'single ${x}', 'xyz', '$'] },
    { shexec: './run ${x} > out.${jobindex} 2>&1' },
    { redirect: 'stdout log.txt' },
    { redirect: 'stderr append err.txt' },
    { redirect: 'stdout off' },
  ]);
  assert.deepEqual(plan.task.commands[2].pos, { line: 5, col: 3 });
});

test('Nimrod/G: comments, continuations, $$ and ${name} / $name', () => {
  const plan = parsePlan(
    [
      '// line comment',
      '# hash comment at line start',
      '   # indented hash comment',
      '/* block',
      '   comment */ parameter a integer range from 1 to 3 step 1 // trailing',
      'parameter b text default "#not-a-comment"',
      'task main /* inline */',
      '  exec echo \\',
      '      $a ${b} a#b $$HOME $${b} http://host/x',
      '  shexec "echo \\"$$PATH\\" ${jobindex} $nimrod_jobindex"',
      'endtask',
    ].join('\n'),
    'c.pln',
  );
  assert.deepEqual(
    plan.parameters.map((p) => p.name),
    ['a', 'b'],
  );
  assert.deepEqual(commands(plan), [
    { exec: ['echo', '${a}', '${b}', 'a#b', '$HOME', '${b}', 'http://host/x'] },
    { shexec: 'echo "$PATH" ${jobindex} ${nimrod_jobindex}' },
  ]);
  // The variable after a continuation keeps its own physical position.
  const exec = plan.task.commands[0];
  assert.ok(exec.kind === 'exec');
  assert.deepEqual(exec.argv[1].parts, [{ kind: 'var', name: 'a', pos: { line: 9, col: 7 } }]);
  // `$${b}` is a literal `$` followed by the text `{b}`, not a variable.
  assert.deepEqual(exec.argv[5].parts, [{ kind: 'lit', text: '${b}' }]);
});

test('Nimrod/G: double-quoted strings are C strings, with a backslash-newline splice', () => {
  const plan = parsePlan(
    ['parameter x float \\', '    range from 0 to 1 step 0.5', 'task main', '  shexec "printf \\"a\\tb\\n\\" \\', '      | grep \\d \\x41\\101 \\$x"', 'endtask'].join('\n'),
    's.pln',
  );
  assert.equal(plan.parameters[0].domain.kind, 'range');
  assert.deepEqual(commands(plan), [{ shexec: 'printf "a\tb\n"       | grep \\d AA $x' }]);
});

test('Nimrod/G: CRLF line endings and a BOM parse like LF', () => {
  const plan = parsePlan('\ufeffparameter n integer range from 1 to 2 step 1\r\ntask main\r\n  exec echo $n \\\r\n    end\r\nendtask\r\n', 'w.pln');
  assert.deepEqual(commands(plan), [{ exec: ['echo', '${n}', 'end'] }]);
});

test('Nimrod/G fixtures: mandelbrot and aerofoil', () => {
  const m = parsePlan(fixture('mandelbrot.pln'), 'mandelbrot.pln');
  assert.equal(m.dialect, 'nimrodg');
  assert.deepEqual(
    m.parameters.map((p) => [p.name, p.type, p.domain.kind]),
    [
      ['row', 'integer', 'range'],
      ['iterations', 'integer', 'default'],
      ['vmwu', 'text', 'default'],
    ],
  );
  assert.equal(m.parameters[0].label, 'First row of the strip');
  assert.deepEqual(commands(m), [
    { onerror: 'fail' },
    { copy: ['root:${vmwu}', 'node:mandelbrot.vmwu'] },
    { redirect: 'stdout launch.log' },
    { redirect: 'stderr append launch.log' },
    { exec: ['vmwu', 'run', 'mandelbrot.vmwu', '--', '-2.0', '1.0', '-1.0', '1.0', '1600', '800', '${iterations}', '0', '${row}', '1600', '100'] },
    { redirect: 'stdout off' },
    { shexec: 'tar cf strip_${row}.tar output && echo "job ${jobindex} done"' },
    { copy: ['node:strip_${row}.tar', 'root:strips/strip_${jobindex}.tar'] },
  ]);

  const a = parsePlan(fixture('aerofoil.pln'), 'aerofoil.pln');
  assert.deepEqual(
    a.parameters.map((p) => [p.name, p.type, p.domain.kind]),
    [
      ['model', 'files', 'anyof'],
      ['aoa', 'float', 'range'],
      ['winglet', 'text', 'anyof'],
      ['airspeed', 'integer', 'points'],
      ['turbulence', 'float', 'random'],
      ['solver', 'text', 'oneof'],
    ],
  );
  assert.equal(a.task.commands.length, 6);
});

// ── classic dialect ─────────────────────────────────────────────────────────

const THESIS = [
  'parameter gva text default "phaser.ova.gz";',
  'parameter index integer range from 1 to 20 step 1;',
  'task main',
  '    copy ${gva} node:..',
  '    copy ${index}.pha node:input.pha',
  '    node:execute ${HOME}/gva/GridVirtualApplianceLauncher.pl -gva ${gva} -compressed -vmm-type QEMU -cdrom-as-hard-disk -files "input.pha,phaser.mtz,phaser.pdb" > gval.out 2> gval.err',
  '    copy node:output.img output_${index}.img',
  'endtask',
  '',
].join('\n');

test('classic: the GVA fixture parses, node:execute is a shell command', () => {
  const plan = parsePlan(fixture('gva-phaser.pln'), 'gva-phaser.pln');
  assert.equal(plan.dialect, 'classic');
  assert.deepEqual(
    plan.parameters.map((p) => [p.name, p.type, plain(p.domain)]),
    [
      ['gva', 'text', { kind: 'default', value: { text: 'phaser.ova.gz' } }],
      ['index', 'integer', { kind: 'range', from: { text: '1', value: 1 }, to: { text: '20', value: 20 }, step: { text: '1', value: 1 } }],
    ],
  );
  assert.deepEqual(commands(plan), [
    { copy: ['root:${gva}', 'node:..'] },
    { copy: ['root:${index}.pha', 'node:input.pha'] },
    { copy: ['root:${index}.mtz', 'node:phaser.mtz'] },
    { copy: ['root:${index}.pdb', 'node:phaser.pdb'] },
    {
      shexec:
        '/opt/gva/GridVirtualApplianceLauncher.pl -gva ${gva} -compressed -vmm-type QEMU -cdrom-as-hard-disk -files "input.pha,phaser.mtz,phaser.pdb" > gval.out 2> gval.err',
    },
    { copy: ['node:output.img', 'root:output_${index}.img'] },
    { copy: ['node:gval.out', 'root:gval_${index}.out'] },
    { copy: ['node:gval.err', 'root:gval_${index}.err'] },
  ]);
});

test('classic: the thesis plan as printed fails on ${HOME} with its line:col', () => {
  assertPlanError(THESIS, '6:18', 'undefined variable "HOME"');
  assert.throws(() => parsePlan(THESIS, 'bad.pln'), (e: unknown) => isVmwuError(e) && /environment variables are not/.test(e.message) && /\$\$HOME/.test(e.hint ?? ''));
});

test('classic: $$HOME passes a literal $HOME to the shell', () => {
  const plan = parsePlan(THESIS.replace('${HOME}', () => '$$HOME'), 'gva.pln');
  const cmd = plan.task.commands[2];
  assert.ok(cmd.kind === 'shexec');
  assert.ok(show(cmd.cmd).startsWith('$HOME/gva/GridVirtualApplianceLauncher.pl -gva ${gva} '));
});

test('classic: ; terminators, several statements per line, node:execute up to a trailing ;', () => {
  const plan = parsePlan(
    [
      'parameter a integer default 1; parameter b text default "x;y";',
      'task main;',
      '  copy in.txt node:in.txt;',
      '  node:execute ./run $a "$b" > out.txt;  ',
      '  node:execute cd dir; ./run \\',
      '     --more',
      'endtask;',
    ].join('\n'),
    'c.pln',
  );
  assert.equal(plan.dialect, 'classic');
  assert.deepEqual(
    plan.parameters.map((p) => plain(p.domain)),
    [
      { kind: 'default', value: { text: '1' } },
      { kind: 'default', value: { text: 'x;y' } },
    ],
  );
  assert.deepEqual(commands(plan), [
    { copy: ['root:in.txt', 'node:in.txt'] },
    { shexec: './run ${a} "${b}" > out.txt' },
    { shexec: 'cd dir; ./run      --more' },
  ]);
});

// ── errors ──────────────────────────────────────────────────────────────────

test('errors: task names, endtask, missing task', () => {
  assertPlanError('parameter x integer default 1\ntask mian\nendtask\n', '2:6', 'unknown task "mian": expected "main"');
  assertPlanError('task main\n  copy a b\n  endtsak\n', '3:3', 'unknown command "endtsak"');
  assertPlanError('task main\n  copy a b\n  endtsak\n', '3:3', 'did you mean "endtask"?');
  assertPlanError('task main\n  copy a b\n', '3:1', 'missing "endtask" for task main opened at 1:1');
  assertPlanError('parameter x integer default 1\n', '2:1', 'no "task main"');
  assertPlanError(`${TASK}${TASK}`, '4:1', 'duplicate task main (first declared at 1:1)');
  assertPlanError('task main extra\nendtask\n', '1:11', 'expected end of statement');
});

test('errors: truncated and malformed parameters', () => {
  assertPlanError('parameter x integer range from 1 to', '1:36', 'expected a number, found end of file');
  assertPlanError('parameter x integer range from 1 to\ntask main\nendtask\n', '1:36', 'expected a number, found end of line');
  assertPlanError('parameter x integer range from 1 to 10 step\n' + TASK, '1:44', 'expected a number');
  assertPlanError('parameter x float range from one to 10 step 1\n' + TASK, '1:30', 'expected a number, found "one"');
  assertPlanError('parameter x integer range 1 to 10\n' + TASK, '1:27', 'expected "from", found "1"');
  assertPlanError('parameter x integer range from 1 to 10 stpe 2\n' + TASK, '1:40', 'expected "step" or "points"');
  assertPlanError('parameter x\n' + TASK, '1:12', 'expected a type ("float", "integer", "text" or "files")');
  assertPlanError('parameter x string default "a"\n' + TASK, '1:13', 'unknown type "string"');
  assertPlanError('parameter 1x integer default 1\n' + TASK, '1:11', 'bad parameter name "1x"');
  assertPlanError('parameter x integer\n' + TASK, '1:20', 'expected a domain');
  assertPlanError('parameter x text select\n' + TASK, '1:24', 'expected "anyof" or "oneof"');
  assertPlanError('parameter x text select anyof\n' + TASK, '1:30', 'expected at least one value after "anyof"');
  assertPlanError('parameter x text default "a" "b"\n' + TASK, '1:30', 'expected end of statement');
});

test('errors: bad ranges with line:col', () => {
  assertPlanError('\nparameter x integer range from 20 to 1 step 1\n' + TASK, '2:45', 'step 1 goes the wrong way');
  assertPlanError('parameter x float range from 0 to 1 step -0.1\n' + TASK, '1:42', 'needs a positive step');
  assertPlanError('parameter x float range from 0 to 1 step 0\n' + TASK, '1:42', 'step must not be 0');
  assertPlanError('parameter x float range from 0 to 1 points 0\n' + TASK, '1:44', 'points must be a whole number of at least 1, found 0');
  assertPlanError('parameter x float range from 0 to 1 points 2.5\n' + TASK, '1:44', 'points must be a whole number');
  assertPlanError('parameter x float random from 0 to 1 points 0\n' + TASK, '1:45', 'points must be a whole number');
  assertPlanError('parameter x float random from 2 to 1\n' + TASK, '1:36', 'random range is empty');
  assertPlanError('parameter x integer range from 1.5 to 10 step 1\n' + TASK, '1:32', 'integer bound must be a whole number, found 1.5');
  assertPlanError('parameter x integer range from 1 to 10 step 0.5\n' + TASK, '1:45', 'integer step must be a whole number, found 0.5');
  assertPlanError('parameter x integer range from 1 to 10 points 4.0\n' + TASK, '1:47', 'points must be a whole number');
  assertPlanError('parameter x integer range from 1 to 10 points 3\n' + TASK, '1:47', 'are not whole numbers');
  assertPlanError('parameter x integer random from 0 to 1.5\n' + TASK, '1:38', 'integer bound must be a whole number');
});

test('errors: a word quoted in a message shows its control characters escaped, so a terminal does not act on them', () => {
  assertPlanError('parameter x text default a\n\x1b[2Jboom\n' + TASK, '2:1', 'unknown statement "\\u001b[2Jboom"');
});

// Found by fuzzing (test/fuzz/corpus/plan/regress-*): these plans parsed, and their jobs got "Infinity", "NaN" or another integer than written.
test('errors: numbers a double cannot compute with exactly, with line:col', () => {
  assertPlanError('parameter x float random from 1 to 1e999 points 2\n' + TASK, '1:36', 'number 1e999 is out of range');
  assertPlanError('parameter x float range from -1e400 to 0 step 1\n' + TASK, '1:30', 'number -1e400 is out of range');
  assertPlanError('parameter x integer range from 1 to 99999999999999999999\n' + TASK, '1:37', 'integer bound 99999999999999999999 is too large to be exact');
  assertPlanError('parameter x integer range from 0 to 10 step 9007199254740993\n' + TASK, '1:45', 'integer step 9007199254740993 is too large');
  assertPlanError('parameter x float random from -1e308 to 1e308\n' + TASK, '1:41', 'too wide to draw from');
  assertPlanError('parameter x integer random from -9007199254740991 to 9007199254740991\n' + TASK, '1:54', 'too wide to draw from');
  assertPlanError('parameter x float range from -1e308 to 1e308 points 3\n' + TASK, '1:53', 'cannot be computed: the numbers are too large');
});

test('errors: parameter types and values', () => {
  assertPlanError('parameter x integer default 1.5\n' + TASK, '1:29', 'expected an integer, found "1.5"');
  assertPlanError('parameter x float select anyof 1 two 3\n' + TASK, '1:34', 'expected a number, found "two"');
  assertPlanError('parameter x text range from 1 to 2 step 1\n' + TASK, '1:18', '"range" needs a float or integer parameter, not text');
  assertPlanError('parameter x files random from 1 to 2\n' + TASK, '1:19', '"random" needs a float or integer parameter, not files');
  assertPlanError('parameter x files default "a.dat"\n' + TASK, '1:19', 'files parameters take `select anyof PATTERN…`');
  // Found by fuzzing (test/fuzz/corpus/plan/regress-empty-file-pattern.pln): picomatch threw a TypeError when the sweep listed files.
  assertPlanError('parameter x files select anyof "*.dat" ""\n' + TASK, '1:40', 'parameter "x": empty file pattern');
  assertPlanError('parameter x text select oneof "a" "b" default "c"\n' + TASK, '1:47', 'default "c" is not one of the listed values');
  assertPlanError('parameter x text default "$y"\n' + TASK, '1:27', 'variables cannot be used in parameter values');
  assertPlanError('parameter jobindex integer default 1\n' + TASK, '1:11', '"jobindex" is reserved');
  assertPlanError('parameter a integer default 1\nparameter b integer default 2\nparameter a text default "x"\n' + TASK, '3:11', 'duplicate parameter "a" (first declared at 1:11)');
});

test('errors: unknown keywords list what was expected', () => {
  assertPlanError('paramter x integer default 1\n' + TASK, '1:1', 'unknown statement "paramter": expected "parameter" or "task" (did you mean "parameter"?)');
  assertPlanError('endtask\n', '1:1', 'expected "parameter" or "task"');
  assertPlanError(
    'task main\n  run ./x\nendtask\n',
    '2:3',
    'unknown command "run": expected "copy", "exec", "shexec", "node:execute", "onerror", "redirect" or "endtask"',
  );
  assertPlanError('task main\n  parameter x integer default 1\nendtask\n', '2:3', 'unknown command "parameter"');
  assertPlanError('task main\n  copy a b\ntask main\n', '3:1', 'unknown command "task": expected "copy", "exec", "shexec", "node:execute", "onerror", "redirect" or "endtask" (is "endtask" missing above?)');
  assertPlanError('task main\n  onerror retry\nendtask\n', '2:11', 'expected "fail" or "ignore", found "retry"');
  assertPlanError('task main\n  redirect stdin to x\nendtask\n', '2:12', 'expected "stdout" or "stderr"');
  assertPlanError('task main\n  redirect stdout x\nendtask\n', '2:19', 'expected "to", "append" or "off"');
  assertPlanError('task main\n  redirect stdout append\nendtask\n', '2:25', 'expected "to", found end of line');
  assertPlanError('task main\n  copy a\nendtask\n', '2:9', 'expected a destination path, found end of line');
  assertPlanError('task main\n  copy a b c\nendtask\n', '2:12', 'expected end of statement');
  assertPlanError('task main\n  copy node: b\nendtask\n', '2:8', 'expected a path after "node:"');
  assertPlanError('task main\n  exec\nendtask\n', '2:7', 'expected a program');
  assertPlanError('task main\n  shexec "a" "b"\nendtask\n', '2:14', 'shexec takes one quoted command');
  assertPlanError('task main\n  node:execute   \nendtask\n', '2:15', 'expected a shell command after node:execute');
});

test('errors: variables and lexical problems', () => {
  assertPlanError('parameter x integer default 1\ntask main\n  exec echo ${x} $y\nendtask\n', '3:18', 'undefined variable "y"');
  assertPlanError('task main\n  exec echo "${HOME}"\nendtask\n', '2:14', 'undefined variable "HOME"');
  assertPlanError('task main\n  copy $src node:x\nendtask\n', '2:8', 'undefined variable "src"');
  assertPlanError('task main\n  redirect stdout to out.$n\nendtask\n', '2:26', 'undefined variable "n"');
  assertPlanError('task main\n  shexec "echo $ 1"\nendtask\n', '2:16', '"$" must start a variable');
  assertPlanError('task main\n  exec echo ${1x}\nendtask\n', '2:13', 'bad variable reference');
  assertPlanError('task main\n  exec echo ${x\nendtask\n', '2:13', 'bad variable reference');
  assertPlanError('task main\n  shexec "echo hi\nendtask\n', '2:10', 'unterminated string: missing closing "');
  assertPlanError("task main\n  exec echo 'hi\nendtask\n", '2:13', "unterminated string: missing closing '");
  assertPlanError('task main\nendtask\n/* never closed\n', '3:1', 'unterminated /* comment');
});
