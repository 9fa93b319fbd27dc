import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { expandJobs, parsePlan, type Command } from '../../../src/sweep/plan/index.js';
import { commandScript } from '../../../src/run/command.js';
import { compileJob, jobScript, SCRIPT_NAME, scriptArgv, type ScriptPlace } from '../../../src/sweep/script.js';
import { InputLayout } from '../../../guest/protocol.js';

/**
 * Runs a task's generated script with the host's sh in a fresh work dir, with fake
 * programs on PATH, as the guest's job shell does: it sources the command file
 * (which sources the script beside it, or runs `sh` of the one in the work dir)
 * and then exits.
 */
function runTask(task: string, params = '', place: ScriptPlace = 'beside'): { code: number | null; stdout: string; stderr: string; work: string } {
  const plan = parsePlan(`${params}\ntask main\n${task}\nendtask\n`, 't.pln');
  const job = expandJobs(plan, { seed: 1 }).next().value!;
  const prog = compileJob(job.commands);
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-script-'));
  const bin = join(dir, 'bin');
  const work = join(dir, 'work');
  const jobIn = join(dir, 'in');
  for (const d of [bin, work, jobIn]) mkdirSync(d);
  const fake = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  fake('ok', 'echo "ok $*"; echo "ok-err $*" >&2; exit 0');
  fake('fails', 'echo "fails $*"; echo "fails-err" >&2; exit "${1:-1}"');
  // One argument per line between brackets, so splitting and quoting show.
  fake('args', 'for a in "$@"; do printf "[%s]\\n" "$a"; done');
  const script = jobScript(prog, { experiment: 'exp', job: job.index, attempt: 2 }, place);
  writeFileSync(place === 'work' ? join(work, SCRIPT_NAME) : join(jobIn, InputLayout.script), script);
  writeFileSync(join(jobIn, InputLayout.cmd), commandScript(scriptArgv(place), {}));
  const r = spawnSync('sh', ['-c', `. ../in/${InputLayout.cmd}; echo "after the script: $?"; exit 99`], { cwd: work, env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, work };
}

test('commands run in order, sourced beside the command or by sh in the work dir (which it leaves); reaching the end is exit 0', () => {
  for (const place of ['beside', 'work'] as const) {
    const r = runTask('exec ok one\nshexec "ok two && ok three"\nexec args $$VMWU_ATTEMPT\nexec exit 0\nexec cd /', '', place);
    assert.equal(r.code, place === 'work' ? 99 : 0, r.stderr);
    assert.equal(r.stdout, `ok one\nok two\nok three\n[$VMWU_ATTEMPT]\n${place === 'work' ? 'after the script: 0\n' : ''}`);
    assert.deepEqual(readdirSync(r.work), []);
  }
  // Sourced, its exit is the job shell's: the job's status is the failing command's.
  assert.equal(runTask('exec fails 6').code, 6);
});

test('onerror fail (the default) stops at the first failing command with its status and says which', () => {
  const r = runTask('exec ok a\nexec fails 7\nexec ok never');
  assert.equal(r.code, 7);
  assert.equal(r.stdout, 'ok a\nfails 7\n');
  assert.match(r.stderr, /vmwu: command 2 failed with status 7: exec fails 7\n$/);
});

test('onerror ignore goes on after a failure and ends with 0; onerror fail applies again after it', () => {
  const r = runTask('onerror ignore\nexec fails 3\nshexec "exit 4"\nexec ok after\nonerror fail\nexec fails 5\nexec ok never');
  assert.equal(r.code, 5);
  assert.equal(r.stdout, 'fails 3\nok after\nfails 5\n');
  assert.match(r.stderr, /command 2 failed with status 3 \(onerror ignore: going on\)/);
  assert.match(r.stderr, /command 3 failed with status 4 \(onerror ignore: going on\)/);
  const ignoreAll = runTask('onerror ignore\nexec fails 3');
  assert.equal(ignoreAll.code, 0);
});

test('redirect: to truncates once then later commands append; append keeps; off restores; stdout and stderr may share a file', () => {
  const r = runTask([
    'redirect stdout to log.txt',
    'redirect stderr append to log.txt',
    'exec ok 1',
    'exec ok 2',
    'redirect stdout off',
    'redirect stderr off',
    'exec ok 3',
    'redirect stdout append to more.txt',
    'exec ok 4',
    'redirect stdout to fresh.txt',
    'exec ok 5',
  ].join('\n'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(r.work, 'log.txt'), 'utf8'), 'ok 1\nok-err 1\nok 2\nok-err 2\n');
  assert.equal(r.stdout, 'ok 3\n');
  assert.equal(readFileSync(join(r.work, 'more.txt'), 'utf8'), 'ok 4\n');
  assert.equal(readFileSync(join(r.work, 'fresh.txt'), 'utf8'), 'ok 5\n');
});

test('a failure message goes to the script\'s stderr even while stderr is redirected', () => {
  const r = runTask('redirect stderr to err.txt\nexec fails 2');
  assert.equal(r.code, 2);
  assert.equal(readFileSync(join(r.work, 'err.txt'), 'utf8'), 'fails-err\n');
  assert.match(r.stderr, /command 2 failed with status 2/);
});

test('exec keeps each word one argument: spaces, quotes, $, backslashes and globs are not re-interpreted', () => {
  const r = runTask('exec args "a b" "it\'s" "$$HOME" "*" "x\\\\y" "${v}"', 'parameter v text default "p q;r `s`"');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "[a b]\n[it's]\n[$HOME]\n[*]\n[x\\y]\n[p q;r `s`]\n");
});

test('exec of a builtin behaves like a program: exec exit 3 fails the job, it does not end the script silently', () => {
  const r = runTask('onerror ignore\nexec exit 3\nexec ok still');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'ok still\n');
});

test('shexec runs one shell command line, with pipes and redirections of its own', () => {
  const r = runTask('shexec "ok a | tr a-z A-Z > up.txt; echo done"');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(r.work, 'up.txt'), 'utf8'), 'OK A\n');
  assert.equal(r.stdout, 'done\n');
});

test('node→node copies run in the guest in order and obey onerror', () => {
  const r = runTask('shexec "echo x > a.txt"\ncopy node:a.txt node:b.txt\nonerror ignore\ncopy node:missing node:c.txt\nexec ok end');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(r.work, 'b.txt'), 'utf8'), 'x\n');
  assert.equal(r.stdout, 'ok end\n');
});

test('copies between root and node become stage-in and stage-out lists, with their onerror mode and directory destinations', () => {
  const cmds: Command[] = [
    { kind: 'copy', from: { loc: 'root', path: 'data/in.txt' }, to: { loc: 'node', path: 'in.txt' } },
    { kind: 'copy', from: { loc: 'root', path: 'solver.tgz' }, to: { loc: 'node', path: '.' } },
    { kind: 'onerror', mode: 'ignore' },
    { kind: 'copy', from: { loc: 'node', path: 'out.7' }, to: { loc: 'root', path: 'results/' } },
    { kind: 'copy', from: { loc: 'node', path: './sub/../o.txt' }, to: { loc: 'root', path: 'o-7.txt' } },
  ];
  const p = compileJob(cmds);
  assert.deepEqual(p.stageIn, [
    { from: 'data/in.txt', to: 'in.txt', onerror: 'fail', n: 1 },
    { from: 'solver.tgz', to: 'solver.tgz', onerror: 'fail', n: 2 },
  ]);
  assert.deepEqual(p.stageOut, [
    { from: 'out.7', to: 'results/out.7', onerror: 'ignore', n: 4 },
    { from: 'o.txt', to: 'o-7.txt', onerror: 'ignore', n: 5 },
  ]);
  assert.equal(p.steps.length, 0);
});

test('copy paths that leave the experiment or the work dir are refused with a clear error', () => {
  const bad = (from: string, to: string) => assert.throws(
    () => compileJob([{ kind: 'copy', from: { loc: from.startsWith('node:') ? 'node' : 'root', path: from.slice(5) }, to: { loc: to.startsWith('node:') ? 'node' : 'root', path: to.slice(5) } }], 'job 1'),
    (e: unknown) => isVmwuError(e) && ['PATH_ESCAPE', 'PLAN_COPY'].includes(e.code) && e.message.startsWith('job 1, command 1'),
  );
  bad('node:out.txt', 'root:/etc/passwd');
  bad('node:out.txt', 'root:../out.txt');
  bad('node:out.txt', 'root:a/../../out.txt');
  bad('root:/etc/passwd', 'node:x');
  bad('root:../secret', 'node:x');
  bad('node:/etc/shadow', 'root:x');
  bad('root:a', 'root:b');
  bad('root:a', 'node:..');
  bad('root:a', `node:${SCRIPT_NAME}`);
});
