import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, outcome, root, testHome, tmp, type CliResult } from './harness.js';
import { missingCommands } from './netns.js';

/**
 * The MPI program of the multi-VM tests (test/fixtures/mpi/collectives.c: an
 * allreduce, a ring pass and a gather), in a unit on the Debian base that
 * installs openmpi-bin, and the same program run natively for comparison. The
 * unit is built once into the shared test store, whichever test file asks first.
 */

export const MPI_UNIT = 'mpi-openmpi';
const MPICC = 'mpicc.openmpi';
const MPIRUN = ['mpirun.openmpi', '--oversubscribe'];

/** Why the MPI tests cannot run here, or false. */
export function mpiUnavailable(): string | false {
  const missing = missingCommands([MPICC, MPIRUN[0]!]);
  return missing.length ? `missing ${missing.join(', ')} (apt-get install openmpi-bin libopenmpi-dev)` : false;
}

/** The program, built on the host (the same binary goes into the unit). */
export function mpiProgram(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const prog = join(dir, 'collectives');
  execFileSync(MPICC, ['-O2', '-o', prog, join(fixtures, 'mpi', 'collectives.c')]);
  return prog;
}

/** What the program prints run natively with `np` ranks. */
export function nativeMpi(prog: string, np: number): string {
  return execFileSync(MPIRUN[0]!, [...MPIRUN.slice(1), '-np', String(np), prog], {
    env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }, encoding: 'utf8', timeout: 120_000,
  });
}

/** Builds the unit (the Debian base first if need be) under a lock in the test store: test files running side by side build it once. */
export function buildMpiUnit(): Promise<CliResult> {
  const dir = tmp('vmwu-mpi-unit-');
  mpiProgram(join(dir, 'app'));
  writeFileSync(join(dir, 'vmwu.yaml'), [
    `name: ${MPI_UNIT}`, 'version: 1.0.0', 'base: debian:bookworm', 'packages: [openmpi-bin]',
    'files:', '  - {from: ./app, to: /opt/mpi}',
    'run: [sh, -c, \'mpirun -np "$(grep -c . "$VMWU_HOSTFILE")" --hostfile "$VMWU_HOSTFILE" /opt/mpi/collectives\']', '',
  ].join('\n'));
  // node, vmwu.js and the unit's directory come in as $0, $1 and $2: no path is ever parsed by the shell.
  const script = '{ "$0" "$1" base show debian:bookworm >/dev/null 2>&1 || "$0" "$1" base build debian; } && "$0" "$1" build "$2" -q';
  return outcome(spawn('flock', [join(testHome(), '.debian-base.lock'), 'sh', '-c', script, process.execPath, join(root, 'bin', 'vmwu.js'), dir], {
    env: { ...process.env, VMWU_HOME: testHome() }, stdio: ['ignore', 'pipe', 'pipe'],
  }));
}

/** A plan of one job that runs the program over every VM's vCPUs and keeps what it prints as mpi-out.txt. */
export function mpiPlan(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const plan = join(dir, 'mpi.pln');
  writeFileSync(plan, [
    'parameter i integer range from 1 to 1', 'task main',
    '    shexec "mpirun -np $$(grep -c . $$VMWU_HOSTFILE) --hostfile $$VMWU_HOSTFILE /opt/mpi/collectives > out.txt"',
    '    copy node:out.txt root:mpi-out.txt', 'endtask', '',
  ].join('\n'));
  return plan;
}
