/**
 * Build times (issue 3): a cold Debian base; a cold unit build with one package; a
 * cache-hit rebuild; and VMM's template reuse: [python3, jq] built on an existing
 * [python3] layer against the same spec built from the bare base in a fresh store.
 *
 *   node dist/bench/build.js          (two throw-away stores in /tmp; needs network to the Debian mirror)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildDebianBase } from '../src/base/debian.js';
import { buildUnit } from '../src/unit/build.js';
import { getRun } from '../src/run/records.js';
import type { BuildResult } from '../src/unit/build.js';
import { openStore, type Store } from '../src/store/store.js';

function spec(name: string, packages: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `vmwu-bench-spec-${name}-`));
  mkdirSync(join(dir, 'app'));
  writeFileSync(join(dir, 'app', 'run.sh'), '#!/bin/sh\necho ok\n');
  writeFileSync(join(dir, 'vmwu.yaml'), `name: ${name}\nversion: 1.0.0\nbase: debian:bookworm\npackages: [${packages.join(', ')}]\nfiles:\n  - {from: ./app, to: /app}\nrun: sh /app/run.sh\n`);
  return dir;
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  const ms = performance.now() - t;
  console.log(`${label.padEnd(52)} ${(ms / 1000).toFixed(1).padStart(7)} s`);
  return { ms, value };
}

/** Where a build's boot went, phase by phase (its runs' records), and what was left to the host around it. */
function phases(store: Store, r: { ms: number; value: BuildResult }): void {
  const runs = r.value.runs.map((id) => getRun(store.db, id)!);
  const inVm = runs.reduce((n, run) => n + (run.totalMs ?? 0), 0);
  for (const run of runs) console.log(`  ${Object.entries(run.phases ?? {}).filter(([, ms]) => ms).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)}`).join(' · ')}`);
  console.log(`  host, outside the run: ${((r.ms - inVm) / 1000).toFixed(2)} s`);
}

const roots: string[] = [];
function freshStore(): Store {
  const r = mkdtempSync(join(tmpdir(), 'vmwu-bench-build-'));
  roots.push(r);
  return openStore(r);
}

try {
  const a = freshStore();
  await timed('cold Debian base (mmdebstrap minbase + kernel)', () => buildDebianBase(a));
  const one = spec('onepkg', ['bc']);
  await timed('cold unit build, one package (bc)', () => buildUnit(a, one));
  await timed('cache-hit rebuild of the same spec', () => buildUnit(a, one));
  await timed('template layer [python3] (from base)', () => buildUnit(a, spec('py', ['python3'])));
  const reuse = await timed('[python3, jq] on the [python3] template', () => buildUnit(a, spec('pyjq', ['python3', 'jq'])));
  if (!reuse.value.template) throw new Error('expected template reuse');
  phases(a, reuse);

  const b = freshStore();
  await buildDebianBase(b);
  const scratch = await timed('[python3, jq] from the bare base (fresh store)', () => buildUnit(b, spec('pyjq', ['python3', 'jq'])));
  phases(b, scratch);
  const ratio = reuse.ms / scratch.ms;
  console.log(`template reuse / from base: ${ratio.toFixed(2)}  (saves ${((1 - ratio) * 100).toFixed(0)} %; VMM saved 68-76 %)`);
  a.close();
  b.close();
} finally {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
}
