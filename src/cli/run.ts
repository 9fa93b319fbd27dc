import { loadDefaults } from '../config.js';
import { VmwuError } from '../errors.js';
import { parseParamPairs } from '../run/command.js';
import { runJob, type RunResult } from '../run/run.js';
import { parseDuration, parseSize } from '../run/units.js';
import { withStore } from './context.js';
import { EXIT_TIMEOUT, EXIT_VMWU_ERROR, ms, printJson } from './output.js';

interface RunOptions {
  base: string; app?: string; input: string[]; param: string[]; out?: string; keep: string[];
  memory?: string; cpus?: string; timeout?: string; maxOutput?: string; network?: boolean; json?: boolean;
}

export function exitCodeFor(r: RunResult): number {
  if (r.status === 'timeout') return EXIT_TIMEOUT;
  if (r.status === 'error') return EXIT_VMWU_ERROR;
  return r.exitCode ?? EXIT_VMWU_ERROR;
}

export async function run(command: string[], o: RunOptions): Promise<void> {
  await withStore(async (store) => {
    const d = await loadDefaults(store.paths.root);
    const cpus = o.cpus === undefined ? d.cpus : Number(o.cpus);
    if (!Number.isInteger(cpus) || cpus < 1) throw new VmwuError('BAD_VALUE', `--cpus ${o.cpus}: expected a whole number ≥ 1`);
    const ac = new AbortController();
    let signalled: NodeJS.Signals | undefined;
    const onSignal = (s: NodeJS.Signals) => {
      signalled = s;
      ac.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const json = Boolean(o.json);
    const result = await runJob(store, {
      base: o.base,
      argv: command,
      params: parseParamPairs(o.param),
      app: o.app,
      inputs: o.input,
      outDir: o.out,
      keep: o.keep.length ? o.keep : undefined,
      memoryMiB: o.memory ? Math.round(parseSize(o.memory, '--memory') / 1024 ** 2) : d.memoryMiB,
      cpus,
      timeoutMs: o.timeout ? parseDuration(o.timeout, '--timeout') : d.timeoutMs,
      maxOutputBytes: o.maxOutput ? parseSize(o.maxOutput, '--max-output') : d.maxOutputBytes,
      network: Boolean(o.network),
    }, {
      signal: ac.signal,
      onStart: ({ id, accel }) => {
        if (!json) process.stderr.write(`vmwu: run ${id} on ${o.base} (${accel.accel}: ${accel.reason})\n`);
      },
      // Live output, as the job writes it: no seed system could show this during a run.
      onOutput: json ? undefined : (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
    });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (json) {
      printJson(result);
    } else {
      const p = result.phases;
      const what = result.status === 'succeeded' || result.status === 'failed' ? `${result.status} (exit ${result.exitCode})` : result.status;
      process.stderr.write(`vmwu: ${what} in ${ms(result.totalMs)}; outputs in ${result.outDir}\n`);
      process.stderr.write(`vmwu: prepare ${ms(p.prepare)} · boot ${ms(p.boot)} · stage-in ${ms(p.stageIn)} · exec ${ms(p.exec)} · stage-out ${ms(p.stageOut)} · shutdown ${ms(p.shutdown)} · collect ${ms(p.collect)}\n`);
      if (result.error) {
        process.stderr.write(`vmwu: ${result.error.message}\n`);
        if (result.error.hint) process.stderr.write(`  hint: ${result.error.hint}\n`);
      }
    }
    process.exitCode = signalled ? 128 + (signalled === 'SIGINT' ? 2 : 15) : exitCodeFor(result);
  });
}
