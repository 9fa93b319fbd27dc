import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { stageOut } from '../../../src/sweep/staging.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function workDir(): { work: string; results: string } {
  const d = mkdtempSync(join(tmpdir(), 'vmwu-stageout-'));
  dirs.push(d);
  mkdirSync(join(d, 'work', 'out'), { recursive: true });
  return { work: join(d, 'work'), results: join(d, 'results') };
}

const MiB = 1024 * 1024;

test('stage-out: links to one file cannot multiply a job\'s output past its cap (the review\'s 1 MiB + 200 links)', async () => {
  const { work, results } = workDir();
  writeFileSync(join(work, 'big'), Buffer.alloc(MiB, 7));
  for (let i = 0; i < 200; i++) symlinkSync('../big', join(work, 'out', `l${i}`));
  await assert.rejects(stageOut([{ from: 'out', to: 'out', onerror: 'fail' }], work, results, { maxBytes: 4 * MiB }),
    (e: unknown) => isVmwuError(e) && e.code === 'OUTPUT_TOO_LARGE' && /output cap of 4194304 bytes/.test(e.message));
  assert.deepEqual(readdirSync(results), [], 'nothing half-copied is left in results/');
});

test('stage-out: a link that stays inside the copied directory is kept as a link and costs nothing', async () => {
  const { work, results } = workDir();
  writeFileSync(join(work, 'out', 'data'), Buffer.alloc(MiB, 1));
  for (let i = 0; i < 200; i++) symlinkSync('data', join(work, 'out', `l${i}`));
  mkdirSync(join(work, 'out', 'sub'));
  symlinkSync('../data', join(work, 'out', 'sub', 'up'));
  assert.deepEqual(await stageOut([{ from: 'out', to: 'r', onerror: 'fail' }], work, results, { maxBytes: 2 * MiB }), ['r']);
  assert.equal(readlinkSync(join(results, 'r', 'l7')), 'data');
  assert.equal(readlinkSync(join(results, 'r', 'sub', 'up')), '../data');
  assert.equal(readFileSync(join(results, 'r', 'sub', 'up')).length, MiB);
});

test('stage-out: the cap is shared by all of a job\'s copies; links to files elsewhere in the work dir are copied and counted', async () => {
  const { work, results } = workDir();
  writeFileSync(join(work, 'a'), Buffer.alloc(3 * MiB));
  symlinkSync('../a', join(work, 'out', 'a-link'));
  assert.deepEqual(await stageOut([{ from: 'out', to: 'o', onerror: 'fail' }], work, results, { maxBytes: 4 * MiB }), ['o']);
  assert.ok(lstatSync(join(results, 'o', 'a-link')).isFile(), 'a link leaving the copied directory lands as the file it names');
  await assert.rejects(stageOut([{ from: 'a', to: 'x', onerror: 'fail' }, { from: 'out', to: 'y', onerror: 'fail' }], work, results, { maxBytes: 4 * MiB }),
    (e: unknown) => isVmwuError(e) && e.code === 'OUTPUT_TOO_LARGE');
});

test('stage-out: links leaving the work dir, or to another directory (a loop), are refused', async () => {
  const { work, results } = workDir();
  writeFileSync(join(work, '..', 'secret'), 'S');
  symlinkSync('../../secret', join(work, 'out', 'leak'));
  await assert.rejects(stageOut([{ from: 'out', to: 'o', onerror: 'fail' }], work, results, { maxBytes: MiB }), (e: unknown) => isVmwuError(e) && e.code === 'PATH_ESCAPE');
  rmSync(join(work, 'out', 'leak'));
  symlinkSync('..', join(work, 'out', 'loop'));
  await assert.rejects(stageOut([{ from: 'out', to: 'o', onerror: 'fail' }], work, results, { maxBytes: MiB }), (e: unknown) => isVmwuError(e) && e.code === 'STAGE_OUT' && /link to a directory/.test(e.message));
  assert.deepEqual(readdirSync(results).filter((n) => n !== 'o'), []);
});
