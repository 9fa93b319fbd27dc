import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

/** An experiment's detached runner: a `vmwu resume NAME --worker` process, which runs it through dispatch.ts like any resume. */

/**
 * Starts an experiment's background runner (`vmwu resume NAME --worker`) in its own
 * session, logging to the experiment's sweep.log, for the given store. Used by
 * `vmwu sweep --detach` and by the dashboard; returns the runner's pid.
 */
export function startWorker(storeRoot: string, name: string, dir: string): number {
  const log = openSync(join(dir, 'sweep.log'), 'a');
  try {
    const child = spawn(process.execPath, [join(packageRoot, 'bin', 'vmwu.js'), 'resume', name, '--worker'], {
      detached: true, stdio: ['ignore', log, log], env: { ...process.env, VMWU_HOME: storeRoot },
    });
    child.unref();
    return child.pid ?? 0;
  } finally {
    closeSync(log);
  }
}
