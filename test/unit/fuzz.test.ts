import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { corpusDir, describeFinding, fuzzTarget, TARGETS } from '../fuzz/fuzz.js';

/**
 * Coverage-guided fuzzing, bounded: each target replays its stored corpus (seeds and the
 * inputs of fixed findings), then fuzzes for VMWU_FUZZ_SECONDS (10 by default). A
 * finding fails the test with the saved input's path and the command that replays it.
 * Longer runs: scripts/fuzz.sh (docs/testing.md).
 */
const seconds = Number(process.env.VMWU_FUZZ_SECONDS ?? 10);
const seed = process.env.VMWU_FUZZ_SEED === undefined ? undefined : Number(process.env.VMWU_FUZZ_SEED);

for (const target of TARGETS) {
  test(`fuzz ${target}: every stored input and ${seconds} s of mutations end in success or a typed vmwu error`, async (t) => {
    const r = await fuzzTarget(target, { seconds, seed });
    t.diagnostic(`${target}: ${r.execs} execs in ${(r.ms / 1000).toFixed(1)} s, corpus ${r.corpus}, ${r.features} blocks, seed ${r.seed}`);
    assert.equal(r.finding, undefined, r.finding && describeFinding(target, r.finding));
    assert.equal(r.seeds, readdirSync(corpusDir(target)).length, 'every stored input is replayed');
    assert.ok(r.execs > r.seeds, 'mutated inputs ran');
  });
}
