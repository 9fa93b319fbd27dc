import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isVmwuError } from '../../src/errors.js';
import { describeFinding, fuzzTarget, TARGETS, type FuzzReport, type TargetName } from './fuzz.js';
import type { FuzzTarget } from './target.js';

/**
 * Fuzzes the targets one after the other and prints executions per target:
 *   node dist/test/fuzz/cli.js [--seconds 300] [--corpus-out .vmwu-fuzz] [--seed N] [--timeout MS] [--target NAME]...
 * Replays saved inputs (a finding, a corpus file) in this process, printing the outcome:
 *   node dist/test/fuzz/cli.js --target NAME --run FILE...
 * Exits 1 when a target has a finding.
 */
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: 'string', default: '300' },
    seed: { type: 'string' },
    timeout: { type: 'string' },
    'corpus-out': { type: 'string' },
    target: { type: 'string', multiple: true },
    run: { type: 'boolean' },
  },
});
const targets = (values.target ?? [...TARGETS]) as TargetName[];
for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`unknown target ${t}: one of ${TARGETS.join(', ')}`);

if (values.run) {
  if (targets.length !== 1) throw new Error('--run needs one --target');
  const target = (await import(`./targets/${targets[0]}.js`) as { default: FuzzTarget }).default;
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const scratch = mkdtempSync(join(tmpdir(), 'vmwu-fuzz-run-'));
  let failed = false;
  try {
    await target.setup?.(scratch);
    for (const file of positionals) {
      try {
        await target.run(readFileSync(file).subarray(0, target.maxLen));
        console.log(`${file}: accepted`);
      } catch (e) {
        if (isVmwuError(e)) {
          console.log(`${file}: refused with ${e.code}: ${e.message}`);
        } else {
          failed = true;
          console.log(`${file}: FINDING\n${(e as Error)?.stack ?? String(e)}`);
        }
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

const seconds = Number(values.seconds);
const reports: FuzzReport[] = [];
for (const t of targets) {
  const r = await fuzzTarget(t, {
    seconds, seed: values.seed === undefined ? undefined : Number(values.seed), timeoutMs: values.timeout === undefined ? undefined : Number(values.timeout),
    corpusOut: values['corpus-out'],
    onStats: (s) => console.log(`  ${t}: ${s.execs} execs, corpus ${s.corpus}, ${s.features} features`),
  });
  reports.push(r);
  console.log(`${t}: ${r.execs} execs in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.execs / (r.ms / 1000))}/s), ${r.seeds} stored inputs replayed, corpus ${r.corpus}, ${r.features} features, seed ${r.seed}${r.finding ? ' — FINDING' : ''}`);
  if (r.finding) console.log(describeFinding(t, r.finding));
}
console.log('\ntarget      execs   execs/s  corpus  features  result');
for (const r of reports) {
  console.log(`${r.target.padEnd(10)} ${String(r.execs).padStart(7)} ${String(Math.round(r.execs / (r.ms / 1000))).padStart(9)} ${String(r.corpus).padStart(7)} ${String(r.features).padStart(9)}  ${r.finding ? r.finding.kind : 'ok'}`);
}
process.exit(reports.some((r) => r.finding) ? 1 : 0);
