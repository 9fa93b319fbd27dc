import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { instancePaths, removeInstanceFiles, runLogPaths } from './instance.js';
import { describeOwner, identityState, processCmdline } from '../store/process-identity.js';
import { activeRuns, finishRun, type RunRecord } from './records.js';

/** Runs whose vmwu died on this host settled at every start: their QEMU killed, their scratch removed, their records closed as errors. */

/** Throw-away files a run of a store from before node-local scratch kept in its run dir. */
const LEGACY_FILES = ['root.qcow2', 'input.img', 'output.img', 'app.img', 'qemu.pid', 'qmp.sock', 'console.sock', 'ctl.sock', 'stdout.sock', 'stderr.sock'];

async function removeFiles(run: RunRecord): Promise<void> {
  if (run.scratchDir) await removeInstanceFiles(instancePaths(run.scratchDir, runLogPaths(run.runDir), run.id));
  else await Promise.all(LEGACY_FILES.map((f) => rm(join(run.runDir, f), { force: true })));
}

/**
 * Cleans up after a vmwu of this host that died mid-run (kill -9, power loss, a
 * reboot): its QEMU is killed (only if the pid still runs QEMU for that very run),
 * its scratch is removed, and its record is closed as an error. Runs on every
 * start. Runs of other hosts are theirs to settle: their processes and their
 * scratch are not visible here, whatever the pids say.
 */
export async function reapOrphans(store: Store): Promise<string[]> {
  const reaped: string[] = [];
  for (const run of activeRuns(store.db)) {
    if (identityState(run.owner) !== 'dead') continue;
    const pids = new Set<number>();
    if (run.qemuPid) pids.add(run.qemuPid);
    const pidfile = join(run.scratchDir ?? run.runDir, 'qemu.pid');
    if (existsSync(pidfile)) {
      const n = Number(readFileSync(pidfile, 'utf8').trim());
      if (Number.isInteger(n) && n > 0) pids.add(n);
    }
    for (const pid of pids) {
      if (processCmdline(pid).some((a) => a.includes(run.scratchDir ?? run.runDir) || a.includes(`vmwu-${run.id}`))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await removeFiles(run);
    finishRun(store.db, run.id, {
      status: 'error', exitCode: null, phases: run.phases, totalMs: null,
      error: `the vmwu process that ran this job (${describeOwner(run.owner)}) died; reaped at ${new Date().toISOString()}`,
    });
    reaped.push(run.id);
  }
  return reaped;
}
