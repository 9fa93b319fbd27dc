import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeDeadStages, STAGE_GRACE_MS } from '../../../src/store/memory-stage.js';
import { WORK_DIR_OWNER } from '../../../src/store/temp-files.js';

test('a stage whose writer is dead goes only once it is old: a young one may be a live writer\'s that the judge cannot see', () => {
  const shm = mkdtempSync(join(tmpdir(), 'vmwu-shm-'));
  try {
    const dead = '999999999:1';
    const stage = (name: string, ageMs: number) => {
      const dir = join(shm, `vmwu-${process.getuid!()}-stage-${name}`);
      mkdirSync(dir);
      writeFileSync(join(dir, WORK_DIR_OWNER), dead);
      const t = (Date.now() - ageMs) / 1000;
      utimesSync(dir, t, t);
      return dir;
    };
    const young = stage('young', 60_000);
    const old = stage('old', STAGE_GRACE_MS + 60_000);
    removeDeadStages(shm);
    assert.equal(existsSync(young), true);
    assert.equal(existsSync(old), false);
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});
