import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { debianBase, fixtures, tmp, vmwu } from '../support/harness.js';
import { missingCommands } from '../support/netns.js';

/**
 * MPI with no set-up (issue 24): a program doing an allreduce, a ring pass and a
 * gather, built on the host with each MPI's mpicc, runs as `mpirun -np 4 --hostfile
 * $VMWU_HOSTFILE` in a 4-VM job of a unit that installs Debian's openmpi-bin
 * (the ranks start on the other VMs through vmwu-rsh: no sshd, no keys). Its
 * output equals the same program run natively with mpirun -np 4 on the host.
 */
// MPICH (Debian's 4.0.2, ch4:ucx) starts its ranks the same way, but they hang in
// MPI_Finalize across VMs under TCG most of the time: not tested until that is found.
const mpis = [
  { name: 'openmpi', pkg: 'openmpi-bin', mpicc: 'mpicc.openmpi', mpirun: ['mpirun.openmpi', '--oversubscribe'] },
];
const missing = missingCommands(mpis.flatMap((m) => [m.mpicc, m.mpirun[0]!]));
const skip = missing.length ? `missing ${missing.join(', ')} (apt-get install openmpi-bin libopenmpi-dev)` : false;
if (skip) process.stderr.write(`\n!!! SKIPPING the MPI tests: ${skip} !!!\n\n`);

const dir = tmp('vmwu-mpi-');

describe('MPI across the VMs of one job', { skip, concurrency: 1, timeout: 1_200_000 }, () => {
  before(async () => {
    const b = await debianBase();
    assert.equal(b.code, 0, b.stderr);
  });

  for (const m of mpis) {
    test(`${m.name}: mpirun -np 4 over 4 VMs gives what it gives natively`, async () => {
      const unit = join(dir, m.name);
      mkdirSync(join(unit, 'app'), { recursive: true });
      const prog = join(unit, 'app', 'collectives');
      execFileSync(m.mpicc, ['-O2', '-o', prog, join(fixtures, 'mpi', 'collectives.c')]);
      const native = execFileSync(m.mpirun[0]!, [...m.mpirun.slice(1), '-np', '4', prog], {
        env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }, encoding: 'utf8', timeout: 120_000,
      });
      assert.match(native, /^ranks 4\nallreduce 30\nring 61\ngather 0 1 8 27\n$/);
      writeFileSync(join(unit, 'vmwu.yaml'), [
        `name: mpi-${m.name}`, 'version: 1.0.0', 'base: debian:bookworm', `packages: [${m.pkg}]`,
        'files:', '  - {from: ./app, to: /opt/mpi}',
        'run: [sh, -c, \'mpirun -np 4 --hostfile "$VMWU_HOSTFILE" /opt/mpi/collectives\']', '',
      ].join('\n'));
      const built = await vmwu(['build', unit, '-q']);
      assert.equal(built.code, 0, built.stderr);
      const r = await vmwu(['run', '--nodes', '4', '--memory', '256M', '--timeout', '5m', `mpi-${m.name}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, native);
      assert.equal((r.stderr.match(/^vmwu: VM \d \(node\d\): run [0-9a-f]{12}/gm) ?? []).length, 4, r.stderr);
    });
  }
});
