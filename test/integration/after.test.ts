import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tmp, until, vmwu } from '../support/harness.js';

/**
 * Jobs that wait for jobs: `vmwu sweep --after` waits (shown as waiting), runs once
 * the experiment it follows succeeded, and is cancelled with the reason when that
 * one failed; `vmwu run --after … --inputs-from EXP:GLOB` gathers every job's
 * results, each under its job's name.
 */

const dir = tmp('vmwu-after-');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;
const env = { VMWU_AFTER_POLL_MS: '200' };

function plan(name: string, body: string): string {
  const p = join(dir, `${name}.pln`);
  writeFileSync(p, ['parameter i integer range from 1 to 2', 'task main', body, 'endtask', ''].join('\n'));
  return p;
}

const parts = plan('parts', '    shexec "echo part $i > part.txt"\n    copy node:part.txt root:part-$i.txt');
const fails = plan('fails', '    shexec "echo no; exit 3"');
const quick = plan('quick', '    shexec "echo after $i > after.txt"\n    copy node:after.txt root:after-$i.txt');

interface Status { state: string; after: { experiment: string; condition: string } | null; endedWhy: string | null; counts: { succeeded: number; cancelled: number } }

async function status(name: string): Promise<Status> {
  const r = await vmwu(['status', name, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

async function sweep(planPath: string, name: string, extra: string[]): Promise<void> {
  const r = await vmwu(['sweep', planPath, '--base', 'tiny', '--name', name, '--retries', '0', '--memory', '128M', ...extra], env);
  assert.equal(r.code, 0, r.stderr);
}

describe('--after and --inputs-from', { concurrency: 1, timeout: 600_000 }, () => {
  test('a sweep waits, shown as waiting, runs when the one it follows succeeded; a gather run collects every job\'s results under its name', async () => {
    const first = unique('parts');
    const second = unique('next');
    await sweep(parts, first, ['--create-only']);
    await sweep(quick, second, ['--after', first, '--detach']);
    const waiting = await until(async () => { const s = await status(second); return s.state === 'waiting' && s; });
    assert.deepEqual(waiting.after, { experiment: first, condition: 'succeeded' });
    assert.equal(waiting.counts.succeeded, 0);
    const list = await vmwu(['experiments'], env);
    assert.match(list.stdout, new RegExp(`${second}\\s+waiting \\(${first}\\)`));

    const run = await vmwu(['resume', first], env);
    assert.equal(run.code, 0, run.stderr);
    const done = await until(async () => { const s = await status(second); return s.state === 'succeeded' && s; });
    assert.equal(done.counts.succeeded, 2);

    const gather = await vmwu(['run', '--base', 'tiny', '--after', second, '--inputs-from', `${first}:part.txt`, '--', 'sh', '-c', 'cat job-*/part.txt; ls'], env);
    assert.equal(gather.code, 0, gather.stderr);
    assert.equal(gather.stdout, 'part 1\npart 2\njob-1\njob-2\n');
  });

  test('when the one it follows fails: the waiting sweep is cancelled with the reason, a run is refused, :finished goes on', async () => {
    const bad = unique('fails');
    const waiter = unique('waiter');
    const anyway = unique('anyway');
    await sweep(fails, bad, ['--create-only']);
    await sweep(quick, waiter, ['--after', bad, '--detach']);
    await sweep(quick, anyway, ['--after', `${bad}:finished`, '--detach']);
    await until(async () => (await status(waiter)).state === 'waiting');
    const r = await vmwu(['resume', bad], env);
    assert.equal(r.code, 1, r.stderr);
    const cancelled = await until(async () => { const s = await status(waiter); return s.state === 'cancelled' && s; });
    assert.equal(cancelled.counts.cancelled, 2);
    assert.match(cancelled.endedWhy ?? '', new RegExp(`cancelled: the experiment it waited for, ${bad}, failed`));
    const results = await vmwu(['results', waiter, '--json'], env);
    for (const j of JSON.parse(results.stdout) as { error: string }[]) assert.match(j.error, /failed/);
    assert.equal((await until(async () => { const s = await status(anyway); return ['succeeded', 'failed', 'cancelled'].includes(s.state) && s; })).state, 'succeeded');

    const refused = await vmwu(['run', '--base', 'tiny', '--after', bad, '--', 'true'], env);
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, new RegExp(`not run: the experiment it waited for, ${bad}, failed`));
    const missing = await vmwu(['sweep', quick, '--base', 'tiny', '--after', 'no-such-experiment'], env);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /--after no-such-experiment: no experiment of that name/);
  });

  test('vmwu cancel stops a waiting sweep', async () => {
    const never = unique('never');
    const waiter = unique('cancelme');
    await sweep(parts, never, ['--create-only']);
    await sweep(quick, waiter, ['--after', never, '--detach']);
    await until(async () => (await status(waiter)).state === 'waiting');
    const c = await vmwu(['cancel', waiter], env);
    assert.equal(c.code, 0, c.stderr);
    const s = await status(waiter);
    assert.equal(s.state, 'cancelled');
    assert.equal(s.counts.cancelled, 2);
  });
});
