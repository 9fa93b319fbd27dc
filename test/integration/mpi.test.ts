import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tmp, vmwu } from '../support/harness.js';
import { buildMpiUnit, mpiProgram, mpiUnavailable, MPI_UNIT, nativeMpi } from '../support/mpi-unit.js';

/**
 * MPI with no set-up (issue 24): a program doing an allreduce, a ring pass and a
 * gather, built on the host with OpenMPI's mpicc, runs as `mpirun -np 4 --hostfile
 * $VMWU_HOSTFILE` in a 4-VM job of a unit that installs Debian's openmpi-bin (the
 * ranks start on the other VMs through vmwu-rsh: no sshd, no keys). Its output
 * equals the same program run natively with mpirun -np 4 on the host. The same
 * across two SSH hosts is in ssh.test.ts, across two Slurm nodes in slurm-cluster.test.ts.
 */
// MPICH (Debian's 4.0.2, ch4:ucx) starts its ranks the same way, but they hang in
// MPI_Finalize across VMs under TCG most of the time: not tested until that is found.
const skip = mpiUnavailable();
if (skip) process.stderr.write(`\n!!! SKIPPING the MPI tests: ${skip} !!!\n\n`);

describe('MPI across the VMs of one job', { skip, concurrency: 1, timeout: 1_200_000 }, () => {
  before(async () => {
    const b = await buildMpiUnit();
    assert.equal(b.code, 0, b.stderr);
  });

  test('openmpi: mpirun -np 4 over 4 VMs gives what it gives natively', async () => {
    const native = nativeMpi(mpiProgram(tmp('vmwu-mpi-')), 4);
    assert.match(native, /^ranks 4\nallreduce 30\nring 61\ngather 0 1 8 27\n$/);
    const r = await vmwu(['run', '--nodes', '4', '--memory', '256M', '--timeout', '5m', MPI_UNIT]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, native);
    assert.equal((r.stderr.match(/^vmwu: VM \d \(node\d\): run [0-9a-f]{12}/gm) ?? []).length, 4, r.stderr);
  });
});
