import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { listCheckpoints } from '../run/checkpoint/records.js';
import { requestRunControl } from '../run/run-control.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { resolveRun } from './logs.js';
import { ms, printJson, table } from './output.js';
import { exitCodeFor } from './run.js';
import { escapeForTerminal, guestOutput } from './terminal-text.js';

/** The checkpoint commands: `vmwu checkpoint` asks a running job's vmwu to take one, `vmwu restore` goes on from one here, `vmwu checkpoints` lists them. */

/** `vmwu checkpoint RUN [--stop]`: asks the run's vmwu (on this host) to save it. */
export async function checkpoint(ref: string, o: { stop?: boolean; json?: boolean }): Promise<void> {
  const socket = await withStore(async (store) => {
    const run = resolveRun(store, ref);
    if (run.status !== 'running' || !run.control) {
      throw new VmwuError('NOT_RUNNING', `run ${run.id} is ${run.status}${run.status === 'running' ? ' but takes no requests (started by an older vmwu, or still starting)' : ''}`,
        'only a running job can be checkpointed');
    }
    return run.control;
  });
  const rec = await requestRunControl(socket, { op: 'checkpoint', stop: Boolean(o.stop) });
  if (o.json) return printJson(rec);
  process.stdout.write(`${rec.id}\n`);
  process.stderr.write(`vmwu: checkpoint ${rec.id} of run ${rec.runId} (${formatBytes(rec.bytes)}, saved in ${ms(rec.saveMs)}); the job ${rec.stopped ? 'stopped: go on with' : 'goes on; to restart from here:'} vmwu restore ${rec.id}\n`);
  // Its RAM went through QEMU's migration stream: say how the next job's need not.
  if (!rec.memory) process.stderr.write('  hint: a job started with --checkpointable keeps its RAM in a file of its own: its checkpoints save and restore it at memory speed\n');
}

/** `vmwu restore CHECKPOINT [--out DIR]`: goes on with the job to its end, here. */
export async function restore(ref: string, o: { out?: string; json?: boolean; raw?: boolean }): Promise<void> {
  const { restoreRun } = await import('../run/checkpoint/restore.js');
  await withStore(async (store) => {
    const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
    const output = guestOutput(Boolean(o.raw));
    const r = await restoreRun(store, ref, { outDir: o.out }, {
      signal: interrupt.signal,
      onStart: ({ id }) => {
        if (!o.json) process.stderr.write(`vmwu: run ${id} goes on from checkpoint ${ref}\n`);
      },
      onOutput: o.json ? undefined : output.write,
    }).finally(() => output.end());
    interrupt.dispose();
    if (o.json) printJson(r);
    else {
      const what = r.status === 'succeeded' || r.status === 'failed' ? `${r.status} (exit ${r.exitCode})` : r.status;
      process.stderr.write(`vmwu: ${what} in ${ms(r.totalMs)}; outputs in ${r.outDir}\n`);
      if (r.error) process.stderr.write(`vmwu: ${escapeForTerminal(r.error.message)}\n${r.error.hint ? `  hint: ${escapeForTerminal(r.error.hint)}\n` : ''}`);
    }
    process.exitCode = r.status === 'stopped' ? 0 : exitCodeFor(r);
  });
}

/** `vmwu checkpoints [RUN]` */
export async function checkpoints(ref: string | undefined, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const rows = listCheckpoints(store.db, ref ? resolveRun(store, ref).id : undefined);
    if (o.json) return printJson(rows);
    process.stdout.write(table([['CHECKPOINT', 'RUN', 'CREATED', 'SIZE', 'STOPPED', 'FROM', 'JOB'], ...rows.map((c) => [
      c.id, c.runId, c.createdAt, formatBytes(c.bytes), c.stopped ? 'yes' : 'no', c.origin, c.experiment ? `${c.experiment}#${c.job}.${c.attempt}` : '',
    ])]));
  });
}
