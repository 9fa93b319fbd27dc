import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { fixturesDir } from '../../../support/fixture-path.js';
import { readFileSync } from 'node:fs';
import { countJobs, expandJobs, mulberry32, parsePlan, type Job, type ListFiles } from '../../../../src/sweep/plan/index.js';
import { isVmwuError } from '../../../../src/errors.js';

const FIXTURES = pathToFileURL(join(fixturesDir, 'plans') + '/');
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');
const TASK = 'task main\nendtask\n';

/** The values a single-parameter plan sweeps over, in job order. */
function values(decl: string, seed = 1): string[] {
  const plan = parsePlan(`${decl}\n${TASK}`, 'v.pln');
  const name = plan.parameters[0].name;
  return [...expandJobs(plan, { seed })].map((j) => j.params[name]);
}

test('float step range: -45 to 45 step 2.5 is 37 values, both ends included', () => {
  const v = values('parameter aoa float range from -45 to 45 step 2.5');
  assert.equal(v.length, 37);
  assert.deepEqual(v.slice(0, 4), ['-45', '-42.5', '-40', '-37.5']);
  assert.equal(v[18], '0');
  assert.equal(v[36], '45');
  assert.equal(countJobs(parsePlan(`parameter aoa float range from -45 to 45 step 2.5\n${TASK}`, 'v.pln')), 37);
});

test('float step range: 0 to 1 step 0.1 is 11 values without float noise', () => {
  assert.deepEqual(values('parameter x float range from 0 to 1 step 0.1'), ['0', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1']);
  assert.deepEqual(values('parameter x float range from -0.3 to 0.3 step 0.1'), ['-0.3', '-0.2', '-0.1', '0', '0.1', '0.2', '0.3']);
  assert.deepEqual(values('parameter x float range from 0 to 1 step 0.3'), ['0', '0.3', '0.6', '0.9']);
  assert.deepEqual(values('parameter x float range from 1 to 0 step -0.25'), ['1', '0.75', '0.5', '0.25', '0']);
  assert.deepEqual(values('parameter x float range from 2 to 2 step 1'), ['2']);
  assert.deepEqual(values('parameter x float range from 0 to 3e-3 step 1e-3'), ['0', '0.001', '0.002', '0.003']);
});

test('points: N evenly spaced values including both ends', () => {
  assert.deepEqual(values('parameter x float range from 0 to 1 points 5'), ['0', '0.25', '0.5', '0.75', '1']);
  assert.deepEqual(values('parameter x float range from 0 to 1 points 4'), ['0', '0.333333333333333', '0.666666666666667', '1']);
  const sym = values('parameter x float range from -1 to 1 points 21');
  assert.equal(sym.length, 21);
  assert.deepEqual([sym[0], sym[9], sym[10], sym[11], sym[20]], ['-1', '-0.1', '0', '0.1', '1']);
  assert.deepEqual(values('parameter x float range from 3 to 7 points 1'), ['3']);
  assert.deepEqual(values('parameter x integer range from 50 to 600 points 12'), ['50', '100', '150', '200', '250', '300', '350', '400', '450', '500', '550', '600']);
  assert.deepEqual(values('parameter x integer range from 10 to 1 points 4'), ['10', '7', '4', '1']);
});

test('integer ranges', () => {
  assert.deepEqual(values('parameter i integer range from 1 to 20 step 1'), Array.from({ length: 20 }, (_, k) => String(k + 1)));
  assert.deepEqual(values('parameter i integer range from 1 to 10 step 3'), ['1', '4', '7', '10']);
  assert.deepEqual(values('parameter i integer range from 1 to 9 step 3'), ['1', '4', '7']);
  assert.deepEqual(values('parameter i integer range from 3 to -3 step -2'), ['3', '1', '-1', '-3']);
  assert.deepEqual(values('parameter i integer range from 1 to 4'), ['1', '2', '3', '4']);
});

test('defaults and selects: literal values as written', () => {
  assert.deepEqual(values('parameter t text default "phaser.ova.gz"'), ['phaser.ova.gz']);
  assert.deepEqual(values('parameter t float 1.50'), ['1.50']);
  assert.deepEqual(values('parameter t text select anyof "none" "fence" "blended"'), ['none', 'fence', 'blended']);
  assert.deepEqual(values('parameter t integer select anyof 3 1 2'), ['3', '1', '2']);
  assert.deepEqual(values('parameter t text select oneof "euler" "rans" default "rans"'), ['rans']);
  assert.deepEqual(values('parameter t text select oneof "euler" "rans"'), ['euler']);
});

test('random: reproducible for a seed, different for another, within bounds', () => {
  const decl = 'parameter r float random from 0 to 1 points 4';
  const a = values(decl, 42);
  assert.deepEqual(a, values(decl, 42));
  assert.notDeepEqual(a, values(decl, 7));
  // Pinned: a resumed experiment must see these exact values, so a changed PRNG is a breaking change.
  assert.deepEqual(a, ['0.557435067603365', '0.124918914400041', '0.797899515368044', '0.751854163594544']);

  const f = values('parameter r float random from -5 to 5 points 200', 3).map(Number);
  assert.ok(f.every((x) => x >= -5 && x < 5));
  const d = values('parameter d integer random from 1 to 6 points 300', 9).map(Number);
  assert.ok(d.every((x) => Number.isInteger(x) && x >= 1 && x <= 6));
  assert.deepEqual([...new Set(d)].sort(), [1, 2, 3, 4, 5, 6]);
  assert.equal(values('parameter r float random from 1 to 2').length, 1);
});

// Found by fuzzing (test/fuzz/corpus/plan/regress-random-points-1e9): all draws were made up front, so this hung.
test('random: values are drawn as jobs need them, so a huge points count still yields its first job', () => {
  const plan = parsePlan(`parameter r float random from 0 to 1 points 1000000000\n${TASK}`, 'r.pln');
  assert.equal(countJobs(plan), 1_000_000_000);
  const first = expandJobs(plan, { seed: 5 }).next();
  assert.equal(first.done, false);
  // The same stream as a short sweep with that seed: drawing lazily changes no value.
  assert.equal((first.value as Job).params.r, values('parameter r float random from 0 to 1 points 3', 5)[0]);
});

test('random: each parameter has its own stream, so other parameters do not shift its draws', () => {
  const alone = values('parameter r float random from 0 to 1 points 3', 5);
  const plan = parsePlan(`parameter q float random from 0 to 1 points 2\nparameter r float random from 0 to 1 points 3\n${TASK}`, 'v.pln');
  const withOther = [...expandJobs(plan, { seed: 5 })].slice(0, 3).map((j) => j.params.r);
  assert.deepEqual(withOther, alone);
  assert.equal(countJobs(plan), 6);
});

test('mulberry32 is the published algorithm', () => {
  const next = mulberry32(0);
  assert.deepEqual([next(), next(), next()], [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197]);
});

test('files: globs resolved through the injected listFiles, sorted and de-duplicated', () => {
  const seen: string[][] = [];
  const listFiles: ListFiles = (patterns) => {
    seen.push(patterns);
    return ['models/NACA2412.dat', 'models/custom-b.dat', 'models/NACA0012.dat', 'models/NACA2412.dat'];
  };
  const plan = parsePlan(`parameter model files select anyof "models/NACA*.dat" "models/custom-*.dat"\n${TASK}`, 'f.pln');
  assert.equal(countJobs(plan, { listFiles }), 3);
  assert.deepEqual(
    [...expandJobs(plan, { seed: 1, listFiles })].map((j) => j.params.model),
    ['models/NACA0012.dat', 'models/NACA2412.dat', 'models/custom-b.dat'],
  );
  assert.deepEqual(seen[0], ['models/NACA*.dat', 'models/custom-*.dat']);
});

test('files: no match and no lister are clear errors', () => {
  const plan = parsePlan(`parameter model files select anyof "*.pha"\n${TASK}`, 'f.pln');
  assert.throws(
    () => countJobs(plan, { listFiles: () => [] }),
    (e: unknown) => isVmwuError(e) && e.code === 'PLAN_NO_FILES' && e.message === 'f.pln:1:23: no files match "*.pha" for parameter "model"',
  );
  assert.throws(() => expandJobs(plan, { seed: 1 }), (e: unknown) => isVmwuError(e) && e.code === 'PLAN_EXPAND' && e.message.startsWith('f.pln:1:11: '));
});

test('cross product: first parameter varies slowest, indexes are 1-based', () => {
  const plan = parsePlan(`parameter a text select anyof "x" "y"\nparameter b integer range from 1 to 3 step 1\n${TASK}`, 'x.pln');
  assert.equal(countJobs(plan), 6);
  assert.deepEqual(
    [...expandJobs(plan, { seed: 1 })].map((j) => [j.index, j.params.a, j.params.b]),
    [
      [1, 'x', '1'],
      [2, 'x', '2'],
      [3, 'x', '3'],
      [4, 'y', '1'],
      [5, 'y', '2'],
      [6, 'y', '3'],
    ],
  );
});

test('a plan without parameters is one job', () => {
  const plan = parsePlan('task main\n  exec hostname\nendtask\n', 'one.pln');
  assert.equal(countJobs(plan), 1);
  assert.deepEqual([...expandJobs(plan, { seed: 0 })], [{ index: 1, params: {}, commands: [{ kind: 'exec', argv: ['hostname'] }] }]);
});

test('substitution: $name, ${name}, ${jobindex}, ${nimrod_jobindex} and $$', () => {
  const plan = parsePlan(
    [
      'parameter n integer range from 1 to 2 step 1',
      'parameter msg text default "two words"',
      'task main',
      '  exec echo $n ${n}.pha $msg "[$msg]" $$HOME cost$$$n',
      '  shexec "echo ${jobindex} ${nimrod_jobindex} $$PATH > out.$jobindex"',
      '  copy node:out.${nimrod_jobindex} results/out_${n}.txt',
      '  redirect stderr append to err.${n}',
      '  redirect stdout off',
      '  onerror ignore',
      'endtask',
    ].join('\n'),
    's.pln',
  );
  const jobs = [...expandJobs(plan, { seed: 1 })];
  assert.deepEqual(jobs[1], {
    index: 2,
    params: { n: '2', msg: 'two words' },
    commands: [
      // A substituted value is one argument, never re-split on its spaces.
      { kind: 'exec', argv: ['echo', '2', '2.pha', 'two words', '[two words]', '$HOME', 'cost$2'] },
      { kind: 'shexec', cmd: 'echo 2 2 $PATH > out.2' },
      { kind: 'copy', from: { loc: 'node', path: 'out.2' }, to: { loc: 'root', path: 'results/out_2.txt' } },
      { kind: 'redirect', stream: 'stderr', append: true, file: 'err.2' },
      { kind: 'redirect', stream: 'stdout', append: false, file: null },
      { kind: 'onerror', mode: 'ignore' },
    ],
  });
});

test('Mandelbrot fixture: 8 strips', () => {
  const plan = parsePlan(fixture('mandelbrot.pln'), 'mandelbrot.pln');
  assert.equal(countJobs(plan), 8);
  const jobs = [...expandJobs(plan, { seed: 1 })];
  assert.deepEqual(
    jobs.map((j) => j.params.row),
    ['0', '100', '200', '300', '400', '500', '600', '700'],
  );
  assert.deepEqual(jobs[2], {
    index: 3,
    params: { row: '200', iterations: '100', vmwu: 'mandelbrot.vmwu' },
    commands: [
      { kind: 'onerror', mode: 'fail' },
      { kind: 'copy', from: { loc: 'root', path: 'mandelbrot.vmwu' }, to: { loc: 'node', path: 'mandelbrot.vmwu' } },
      { kind: 'redirect', stream: 'stdout', append: false, file: 'launch.log' },
      { kind: 'redirect', stream: 'stderr', append: true, file: 'launch.log' },
      { kind: 'exec', argv: ['vmwu', 'run', 'mandelbrot.vmwu', '--', '-2.0', '1.0', '-1.0', '1.0', '1600', '800', '100', '0', '200', '1600', '100'] },
      { kind: 'redirect', stream: 'stdout', append: false, file: null },
      { kind: 'shexec', cmd: 'tar cf strip_200.tar output && echo "job 3 done"' },
      { kind: 'copy', from: { loc: 'node', path: 'strip_200.tar' }, to: { loc: 'root', path: 'strips/strip_3.tar' } },
    ],
  });
});

test('GVA fixture (classic): 20 jobs, results staged back to root', () => {
  const plan = parsePlan(fixture('gva-phaser.pln'), 'gva-phaser.pln');
  assert.equal(countJobs(plan), 20);
  const jobs = [...expandJobs(plan, { seed: 1 })];
  assert.equal(jobs.length, 20);
  assert.deepEqual(jobs[6], {
    index: 7,
    params: { gva: 'phaser.ova.gz', index: '7' },
    commands: [
      { kind: 'copy', from: { loc: 'root', path: 'phaser.ova.gz' }, to: { loc: 'node', path: '..' } },
      { kind: 'copy', from: { loc: 'root', path: '7.pha' }, to: { loc: 'node', path: 'input.pha' } },
      { kind: 'copy', from: { loc: 'root', path: '7.mtz' }, to: { loc: 'node', path: 'phaser.mtz' } },
      { kind: 'copy', from: { loc: 'root', path: '7.pdb' }, to: { loc: 'node', path: 'phaser.pdb' } },
      {
        kind: 'shexec',
        cmd: '/opt/gva/GridVirtualApplianceLauncher.pl -gva phaser.ova.gz -compressed -vmm-type QEMU -cdrom-as-hard-disk -files "input.pha,phaser.mtz,phaser.pdb" > gval.out 2> gval.err',
      },
      { kind: 'copy', from: { loc: 'node', path: 'output.img' }, to: { loc: 'root', path: 'output_7.img' } },
      { kind: 'copy', from: { loc: 'node', path: 'gval.out' }, to: { loc: 'root', path: 'gval_7.out' } },
      { kind: 'copy', from: { loc: 'node', path: 'gval.err' }, to: { loc: 'root', path: 'gval_7.err' } },
    ],
  });
});

test('aerofoil fixture: files x 37 angles x 3 winglets x 12 speeds x 2 random draws', () => {
  const plan = parsePlan(fixture('aerofoil.pln'), 'aerofoil.pln');
  const listFiles: ListFiles = () => ['models/NACA0012.dat', 'models/NACA2412.dat'];
  assert.equal(countJobs(plan, { listFiles }), 2 * 37 * 3 * 12 * 2);
  let last: Job | undefined;
  for (const job of expandJobs(plan, { seed: 2024, listFiles })) last = job;
  assert.ok(last);
  assert.equal(last.index, 5328);
  const { turbulence, ...rest } = last.params;
  assert.deepEqual(rest, { model: 'models/NACA2412.dat', aoa: '45', winglet: 'blended', airspeed: '600', solver: 'rans' });
  assert.ok(Number(turbulence) >= 1 && Number(turbulence) < 2);
  assert.deepEqual(last.commands[4], { kind: 'shexec', cmd: `./solve --rans model.dat 45 blended 600 ${turbulence} > out.5328` });
});

test('10,000 jobs: counted arithmetically and expanded lazily', () => {
  const plan = parsePlan(
    'parameter x integer range from 1 to 100 step 1\nparameter y float range from 0 to 9.9 step 0.1\ntask main\n  exec ./sim $x $y ${jobindex}\nendtask\n',
    'big.pln',
  );
  assert.equal(countJobs(plan), 10_000);
  let n = 0;
  let last: Job | undefined;
  for (const job of expandJobs(plan, { seed: 1 })) {
    n++;
    last = job;
  }
  assert.equal(n, 10_000);
  assert.deepEqual(last, { index: 10_000, params: { x: '100', y: '9.9' }, commands: [{ kind: 'exec', argv: ['./sim', '100', '9.9', '10000'] }] });
});

test('expandJobs validates when called, before the first job is taken', () => {
  const plan = parsePlan(`parameter r float random from 0 to 1\n${TASK}`, 'r.pln');
  assert.throws(() => expandJobs(plan, { seed: 1.5 }), (e: unknown) => isVmwuError(e) && e.code === 'PLAN_EXPAND');
  assert.throws(() => expandJobs(plan, { seed: Number.NaN }), (e: unknown) => isVmwuError(e) && e.code === 'PLAN_EXPAND');
  assert.equal(countJobs(plan), 1);
});
