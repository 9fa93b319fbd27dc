import { existsSync, readFileSync } from 'node:fs';
import type { Store } from '../store/store.js';
import { instancePaths, removeInstanceFiles } from './instance.js';
import { identityAlive, processCmdline } from './process-identity.js';
import { activeRuns, finishRun } from './records.js';

/**
 * Cleans up after a vmwu that died mid-run (kill -9, power loss): its QEMU is
 * killed (only if the pid still runs QEMU for that very run), its throw-away disks
 * are removed, and its record is closed as an error. Runs on every start.
 */
export async function reapOrphans(store: Store): Promise<string[]> {
  const reaped: string[] = [];
  for (const run of activeRuns(store.db)) {
    if (identityAlive(run.owner)) continue;
    const p = instancePaths(run.runDir, run.id);
    const pids = new Set<number>();
    if (run.qemuPid) pids.add(run.qemuPid);
    if (existsSync(p.pidfile)) {
      const n = Number(readFileSync(p.pidfile, 'utf8').trim());
      if (Number.isInteger(n) && n > 0) pids.add(n);
    }
    for (const pid of pids) {
      if (processCmdline(pid).some((a) => a.includes(run.runDir) || a.includes(p.sockDir))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await removeInstanceFiles(p);
    finishRun(store.db, run.id, {
      status: 'error', exitCode: null, phases: run.phases, totalMs: null,
      error: `the vmwu process that ran this job (${run.owner.split(':')[0]}) died; reaped at ${new Date().toISOString()}`,
    });
    reaped.push(run.id);
  }
  return reaped;
}
