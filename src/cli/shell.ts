import { rmSync } from 'node:fs';
import { VmwuError } from '../errors.js';
import { runJob } from '../run/run.js';
import { type RunRequest } from '../run/job-request.js';
import { jobShellRequest } from '../sweep/job-shell.js';
import { resolveRequest, runRequestOf } from '../request/resolve.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { exitCodeFor } from './run.js';

/**
 * An interactive shell in a throw-away instance of a unit, a base or an experiment's job
 * (`vmwu shell`), with the local terminal handed to the guest's console.
 */

interface ShellOptions {
  base?: string; job?: string; input: string[]; data: string[]; network?: boolean; memory?: string; cpus?: string; timeout?: string;
}

/** Bash where the image has it, else the POSIX shell; a login shell, in the work dir. */
const SHELL = ['sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

/**
 * `vmwu shell UNIT | --base B | --job EXP/JOB`: an interactive root shell in a
 * throw-away instance, on a real terminal (the guest's virtio console). The
 * local terminal goes raw, so every key, Ctrl-C included, goes to the guest's
 * foreground program; `exit N` ends it and vmwu exits N.
 */
export async function shell(unitRef: string | undefined, o: ShellOptions): Promise<void> {
  if ([unitRef, o.base, o.job].filter(Boolean).length !== 1) {
    throw new VmwuError('BAD_OPTION', 'give one of UNIT, --base NAME or --job EXP/JOB', 'e.g. vmwu shell mandelbrot, vmwu shell --base tiny, vmwu shell --job mysweep/3');
  }
  await withStore(async (store) => {
    let base: Omit<RunRequest, 'argv' | 'tty'>;
    let label: string;
    let tmp: string | undefined;
    if (o.job) {
      const j = jobShellRequest(store, o.job, o);
      ({ request: base, label, tmp } = j);
      process.stderr.write(`vmwu: the job's own command is \`${j.script}\` in the work dir\n`);
    } else {
      const r = await resolveRequest(store, { unit: unitRef, base: o.base, data: o.data, network: o.network, memory: o.memory, cpus: o.cpus, timeout: o.timeout }, 'shell');
      label = r.target.label;
      base = runRequestOf(r);
    }
    const request: RunRequest = {
      ...base, argv: SHELL, inputs: [...(base.inputs ?? []), ...o.input],
      tty: { rows: process.stdout.rows || 24, cols: process.stdout.columns || 80, term: process.env.TERM || 'vt100' },
    };
    const stdin = process.stdin;
    const raw = stdin.isTTY;
    const onResize = { fn: () => undefined as void };
    process.stderr.write(`vmwu: starting a shell in ${label} (exit to leave; the instance is thrown away)\n`);
    // A closed terminal (SIGHUP) or a kill ends the session as a cancelled run: the VM is
    // stopped and the run recorded, rather than QEMU killed by our death. Ctrl-C is a byte
    // for the guest here (raw mode), not SIGINT.
    const interrupt = interruptOn(['SIGHUP', 'SIGTERM']);
    try {
      const r = await runJob(store, request, {
        signal: interrupt.signal,
        onTty: ({ stream, resize }) => {
          if (raw) stdin.setRawMode(true);
          stdin.pipe(stream);
          stream.pipe(process.stdout, { end: false });
          onResize.fn = () => resize(process.stdout.rows, process.stdout.columns);
          process.stdout.on('resize', onResize.fn);
        },
      });
      process.exitCode = r.status === 'succeeded' || r.status === 'failed' ? r.exitCode ?? 0 : exitCodeFor(r);
      if (r.error) process.stderr.write(`\nvmwu: ${r.error.message}\n`);
    } finally {
      interrupt.dispose();
      process.stdout.off('resize', onResize.fn);
      stdin.unpipe();
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });
}
