/**
 * Issue 11, defect 1: a parameter value with a newline wrote shell lines into the
 * PBS script and submit commands into the HTCondor description that
 * `vmwu export-jobs` produced. Values with control characters are refused where
 * they enter (plan, matched file names, --param, unit params), and every writer
 * escapes them anyway, which is checked here by running the written scripts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { displayValue, escapeControlChars, hasControlChars } from '../../src/control-chars.js';
import { isVmwuError } from '../../src/errors.js';
import { exportJobsText, type ExportInput } from '../../src/executors/export.js';
import { batchScript, chunkJobs, slurmResources, type BatchScriptInput } from '../../src/executors/slurm/batch-script.js';
import { jobEnvScript, parseParamPairs } from '../../src/run/command.js';
import { loadPlan } from '../../src/sweep/experiment.js';
import { listFilesIn } from '../../src/sweep/files.js';
import { countJobs, parsePlan } from '../../src/sweep/plan/index.js';
import { compileJob, jobScript } from '../../src/sweep/script.js';
import { LocatedError } from '../../src/unit/unit-spec/yaml-location.js';
import { parseUnitSpec } from '../../src/unit/unit-spec/load.js';

const scratch = mkdtempSync(join(tmpdir(), 'vmwu-injection-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => {
  const d = join(scratch, `d${dirs++}`);
  mkdirSync(d);
  return d;
};

/** The value from the issue: a C escape in a plan string that became a shell line. */
const PAYLOAD = 'b\ntouch PWNED\n#';
const PLAN_PAYLOAD = 'parameter x text select anyof "a" "b\\ntouch PWNED\\n#"\ntask main\n  exec echo $x\nendtask\n';

const matches = (code: string, re: RegExp) => (e: unknown) => isVmwuError(e) && e.code === code && re.test(e.message);

test('the payload from the issue is refused when the plan is read, with file:line:col', () => {
  const dir = freshDir();
  const plan = join(dir, 'evil.pln');
  writeFileSync(plan, PLAN_PAYLOAD);
  assert.throws(() => loadPlan(plan), matches('PLAN_VALUE', /evil\.pln:1:35: "b\\ntouch PWNED\\n#" contains a newline \(\\n\)/));
});

test('every kind of control character in a parameter value or label is refused at its position; shell commands may still hold newlines', () => {
  const refused = (decl: string, at: string) => assert.throws(() => parsePlan(`${decl}\ntask main\nendtask\n`, 'p.pln'), matches('PLAN_VALUE', new RegExp(`^p\\.pln:${at}: `)), decl);
  refused('parameter x text default "a\\rb"', '1:26');
  refused('parameter x text default "a\\tb"', '1:26');
  refused('parameter x text default "a\\x1b[31m"', '1:26');
  refused('parameter x text default "a\\177"', '1:26');
  refused('parameter x text default "a\u2028b"', '1:26');
  refused('parameter x text default "a\u0085b"', '1:26');
  refused('parameter x text select oneof "a" "b\\nc" default "a"', '1:35');
  refused('parameter x label "two\\nlines" text default a', '1:19');
  refused('\n\nparameter  x  text  default  a\x1bb', '3:30');
  // A newline in a shell command is the shell's business: it is quoted whole into the job script.
  const plan = parsePlan('task main\n  shexec "echo a\\necho b"\nendtask\n', 'p.pln');
  assert.equal(plan.task.commands.length, 1);
});

test('a NUL byte is refused anywhere in a plan, written or escaped', () => {
  assert.throws(() => parsePlan('task main\n  shexec "a\\0b"\nendtask\n', 'p.pln'), matches('PLAN_SYNTAX', /^p\.pln:2:12: "\\0" would put a NUL byte/));
  assert.throws(() => parsePlan('task main\n  exec "a\\x00"\nendtask\n', 'p.pln'), matches('PLAN_SYNTAX', /^p\.pln:2:10: "\\x00"/));
  assert.throws(() => parsePlan('task main\n  exec a\0b\nendtask\n', 'p.pln'), matches('PLAN_SYNTAX', /^p\.pln:2:9: the plan contains a NUL byte/));
});

test('a matched file name with a newline is refused, naming the parameter and its pattern', () => {
  const dir = freshDir();
  writeFileSync(join(dir, 'ok.dat'), '');
  writeFileSync(join(dir, 'b\ntouch PWNED\n#.dat'), '');
  const plan = parsePlan('parameter f files select anyof "*.dat"\ntask main\n  copy root:$f node:in\nendtask\n', 'f.pln');
  assert.throws(() => countJobs(plan, { listFiles: listFilesIn(dir) }),
    matches('PLAN_FILE_NAME', /^f\.pln:1:19: parameter "f": the file "b\\ntouch PWNED\\n#\.dat" matched by "\*\.dat" has a newline/));
});

test('--param and unit param defaults with control characters are refused', () => {
  assert.throws(() => parseParamPairs([`x=${PAYLOAD}`]), matches('BAD_PARAM', /^--param x: "b\\ntouch PWNED\\n#" contains a newline/));
  assert.throws(() => parseParamPairs(['x=a\tb']), matches('BAD_PARAM', /a tab/));
  assert.deepEqual(parseParamPairs(['x=a b=c']), { x: 'a b=c' });
  const dir = freshDir();
  assert.throws(() => parseUnitSpec('name: x\nversion: 1.0.0\nbase: tiny\nparams: {n: "a\\nb"}\n', join(dir, 'vmwu.yaml')),
    (e: unknown) => e instanceof LocatedError && /vmwu\.yaml:4:13: params\.n: "a\\nb" contains a newline/.test(e.message));
});

test('display and escape: nothing a control character could do survives', () => {
  assert.equal(escapeControlChars('a\nb\tc\x1b\u2028'), 'a\\nb\\tc\\u001b\\u2028');
  assert.equal(displayValue('plain-1.5'), 'plain-1.5');
  assert.equal(displayValue('a b'), '"a b"');
  assert.equal(displayValue(''), '""');
  assert.equal(displayValue('say "hi"\\'), '"say \\"hi\\"\\\\"');
  assert.ok(!hasControlChars(displayValue(PAYLOAD)));
});

const exportInput = (params: Record<string, string>[], over: Partial<ExportInput> = {}): ExportInput => ({
  experiment: 'evil',
  jobs: params.map((p, i) => ({ index: i + 1, params: p })),
  resources: { memoryMiB: 256, cpus: 1, timeoutMs: 60_000 },
  tasksDir: '/nonexistent/vmwu/tasks', node: '/usr/bin/node', vmwuJs: '/nonexistent/vmwu.js', logDir: '/nonexistent/vmwu/logs',
  ...over,
});

/** Every control character, and the payloads of the issue (a shell line, HTCondor commands). */
const HOSTILE = [
  { x: PAYLOAD, y: 'ok' },
  { x: 'a\r\ntouch PWNED2', y: '\nexecutable = /bin/sh\nqueue 1000\n' },
  { x: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\x7f\x85\u2028\u2029', y: '$(touch PWNED3)`touch PWNED4`' },
];

test('PBS: hostile values stay inside their comment line; sh runs the script without running them', () => {
  const benign = exportJobsText('pbs', exportInput(HOSTILE.map(() => ({ x: 'v', y: 'w' }))));
  const text = exportJobsText('pbs', exportInput(HOSTILE));
  assert.ok(!hasControlChars(text.replaceAll('\n', '')), 'no control character but the line ends');
  assert.equal(text.split('\n').length, benign.split('\n').length, 'one line per job, as with plain values');
  const lines = text.split('\n');
  const first = lines.findIndex((l) => l.startsWith('# job  parameters'));
  for (let i = first; i <= first + HOSTILE.length; i++) assert.match(lines[i]!, /^# /);
  assert.deepEqual(lines.filter((l) => !l.startsWith('#')), benign.split('\n').filter((l) => !l.startsWith('#')));
  // Run it for real: without PBS_ARRAYID it stops at its check; an injected line would have run before.
  const dir = freshDir();
  writeFileSync(join(dir, 'evil.pbs'), text);
  assert.equal(spawnSync('sh', ['-n', 'evil.pbs'], { cwd: dir }).status, 0, 'sh parses it');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const r = spawnSync('sh', ['evil.pbs'], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /no PBS_ARRAYID/);
  assert.deepEqual(readdirSync(dir), ['evil.pbs'], 'no PWNED file');
});

test('HTCondor: hostile values add no command (executable, queue …) to the submit description', () => {
  const benign = exportJobsText('htcondor', exportInput(HOSTILE.map(() => ({ x: 'v', y: 'w' }))));
  const text = exportJobsText('htcondor', exportInput(HOSTILE));
  // condor_submit reads one command per line; comments start with #.
  const commands = (t: string) => t.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  assert.deepEqual(commands(text), commands(benign));
  assert.equal(commands(text).filter((l) => /^\s*(executable|queue)\b/i.test(l)).length, 2);
  assert.ok(!hasControlChars(text.replaceAll('\n', '')));
});

test('a store path with a newline is refused by the export writers, not written', () => {
  for (const format of ['pbs', 'htcondor'] as const) {
    assert.throws(() => exportJobsText(format, exportInput([{ x: '1' }], { logDir: '/s/x\nqueue 7' })), matches('BAD_PATH', /the log directory: "\/s\/x\\nqueue 7" contains a newline/));
    assert.throws(() => exportJobsText(format, exportInput([{ x: '1' }], { node: '/usr/bin/node\n#' })), matches('BAD_PATH', /the node binary/));
  }
});

test('Slurm: options and paths with a line break are refused; none reaches an #SBATCH line', () => {
  const base: BatchScriptInput = {
    experiment: 'e', round: 1, chunk: chunkJobs([1, 2], 1001)[0]!, resources: slurmResources({ memoryMiB: 256, cpus: 1, timeoutMs: 60_000 }),
    options: {}, tasksDir: '/s/t', node: '/usr/bin/node', vmwuJs: '/v.js', logDir: '/s/l',
  };
  assert.doesNotThrow(() => batchScript(base));
  assert.throws(() => batchScript({ ...base, options: { partition: 'p\ntouch PWNED' } }), matches('BAD_VALUE', /--partition: "p\\ntouch PWNED" contains a newline/));
  assert.throws(() => batchScript({ ...base, options: { account: 'a\r' } }), matches('BAD_VALUE', /--account/));
  assert.throws(() => batchScript({ ...base, options: { extra: ['--qos=x\u2028y'] } }), matches('BAD_VALUE', /--slurm-opt/));
  assert.throws(() => batchScript({ ...base, logDir: '/s/l\n#' }), matches('BAD_VALUE', /the log directory/));
});

test('the guest job script and job.env keep hostile values as single words (defence in depth)', () => {
  const prog = compileJob([
    { kind: 'exec', argv: ['printf', '%s|', PAYLOAD] },
    { kind: 'shexec', cmd: 'printf "%s|" "$x"' },
  ]);
  const dir = freshDir();
  const script = jobScript(prog, { experiment: 'e', job: 1, attempt: 1 });
  writeFileSync(join(dir, 'job.env'), jobEnvScript({ x: PAYLOAD }, {}));
  writeFileSync(join(dir, 'job.sh'), script);
  const r = spawnSync('sh', ['-c', '. ./job.env && sh ./job.sh'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${PAYLOAD}|${PAYLOAD}|`);
  assert.ok(!existsSync(join(dir, 'PWNED')));
});
