import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { debianBase, root, tmp, vmwu } from '../support/harness.js';

/**
 * examples/gromacs, as a user runs it: Debian's gromacs built into a unit, the
 * water box minimised and run at 300 K. Two runs inside vmwu (one restored from
 * the booted template, one booted cold) must give bit-identical energies; and the
 * energies must agree with GROMACS run natively on this host, or, on a host that
 * cannot run Debian's gmx (no SSE4.2 or RDTSCP), with the committed reference.
 * 200 steps rather than the example's 2,500: under TCG a step costs ~80 ms.
 */
const example = join(root, 'examples', 'gromacs');
const TEMP = 300;
const NSTEPS = 200;
/** Stated in examples/gromacs/README.md: six seeds at 300 K spread by 0.20 kJ/mol per water and 1.75 K. */
const TOLERANCE = { perWater: 1.0, temperature: 8 };
const nativeGmx = spawnSync('gmx', ['-quiet', '--version'], { stdio: 'ignore' }).status === 0;

interface RunJson { status: string; exitCode: number; outDir: string; start: { mode: string; cpu?: string } }

function energies(text: string): Record<string, number> {
  return Object.fromEntries(text.trim().split('\n').map((l) => l.split(/\s+/)).map(([k, v]) => [k!, Number(v)]));
}

function reference(): Record<string, number> {
  const line = readFileSync(join(example, 'reference.txt'), 'utf8').split('\n')
    .find((l) => l.startsWith(`T=${TEMP} nsteps=${NSTEPS} `));
  assert.ok(line, `reference.txt has a line for T=${TEMP} nsteps=${NSTEPS}`);
  const kv = Object.fromEntries(line.trim().split(/\s+/).map((p) => p.split('=') as [string, string]));
  return {
    final_potential_kJmol: Number(kv.final_potential_kJmol), mean_potential_per_water_kJmol: Number(kv.mean_potential_per_water_kJmol), mean_temperature_K: Number(kv.mean_temperature_K),
  };
}

describe('examples/gromacs: in the VM, cold against restored, and against native', { concurrency: false, timeout: 1_500_000 }, () => {
  before(async () => {
    const base = await debianBase();
    assert.equal(base.code, 0, base.stderr);
    const b = await vmwu(['build', example]);
    assert.equal(b.code, 0, b.stderr);
  });

  test('energy.txt from a restored run and a cold boot is identical, and within tolerance of native GROMACS', async () => {
    const args = ['run', 'gromacs', '--param', `temp=${TEMP}`, '--param', `nsteps=${NSTEPS}`, '--json'];
    const runs: RunJson[] = [];
    const outputs: string[] = [];
    for (const extra of [[], ['--cold']]) {
      const r = await vmwu([...args, ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as RunJson;
      assert.equal(j.status, 'succeeded');
      runs.push(j);
      outputs.push(readFileSync(join(j.outDir, 'work', 'energy.txt'), 'utf8'));
    }
    assert.deepEqual(runs.map((j) => j.start.mode), ['restore', 'boot'], 'one run restored from the template, one booted');
    assert.equal(runs[0]!.start.cpu, 'max', 'the guest got a CPU with SSE4.2 and RDTSCP');
    assert.equal(outputs[0], outputs[1], 'restored and cold runs are bit-identical (one thread, -reprod, fixed seeds)');
    const inVm = energies(outputs[0]!);
    assert.equal(inVm.nsteps, NSTEPS);
    assert.equal(inVm.waters, 348);

    let against: Record<string, number>;
    if (nativeGmx) {
      const dir = tmp('vmwu-gromacs-native-');
      const n = spawnSync('sh', [join(example, 'app', 'run.sh'), String(TEMP), String(NSTEPS)], { cwd: dir, encoding: 'utf8' });
      assert.equal(n.status, 0, n.stderr);
      against = energies(readFileSync(join(dir, 'energy.txt'), 'utf8'));
    } else {
      process.stderr.write('gromacs.test: no native gmx on this host (its CPU lacks SSE4.2 or RDTSCP); comparing with reference.txt\n');
      against = reference();
    }
    const dFinal = Math.abs(inVm.final_potential_kJmol! - against.final_potential_kJmol!) / inVm.waters!;
    const dU = Math.abs(inVm.mean_potential_per_water_kJmol! - against.mean_potential_per_water_kJmol!);
    const dT = Math.abs(inVm.mean_temperature_K! - against.mean_temperature_K!);
    assert.ok(dFinal <= TOLERANCE.perWater, `final potential: ${inVm.final_potential_kJmol} kJ/mol in the VM, ${against.final_potential_kJmol} native`);
    assert.ok(dU <= TOLERANCE.perWater, `mean potential per water: ${inVm.mean_potential_per_water_kJmol} in the VM, ${against.mean_potential_per_water_kJmol} native`);
    assert.ok(dT <= TOLERANCE.temperature, `mean temperature: ${inVm.mean_temperature_K} K in the VM, ${against.mean_temperature_K} K native`);
    // Not a comparison of two empty files: the water box is bound, and was heated towards 300 K.
    assert.ok(inVm.mean_potential_per_water_kJmol! < -30, 'a bound water box');
    assert.ok(inVm.mean_temperature_K! > 200, 'the run heated it');
  });
});
