import { rmSync } from 'node:fs';
import { VmwuError } from '../errors.js';
import { parseParamPairs } from '../run/command.js';
import { runJobCached } from '../run/run-cache.js';
import { runOnWarmService } from '../run/warm-service/client.js';
import { runMultiVm, type MultiVmResult } from '../run/multi-vm.js';
import { type RunResult } from '../run/job-request.js';
import { resolveRequest, runRequestOf } from '../request/resolve.js';
import { makeWorkDir } from '../store/temp-files.js';
import { parseAfter } from '../sweep/after.js';
import { checkAfter } from '../sweep/experiment.js';
import { parseInputsFrom, stageInputsFrom } from '../sweep/gather.js';
import { awaitAfter } from '../sweep/wait.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { EXIT_TIMEOUT, EXIT_VMWU_ERROR, ms, printJson } from './output.js';
import { escapeForTerminal, guestOutput } from './terminal-text.js';

/**
 * One job from the command line (`vmwu run`): the request resolved, the guest's output shown as it
 * comes, its phases' times, and the job's exit code as vmwu's.
 */

interface RunOptions {
  base?: string; app?: string; input: string[]; param: string[]; out?: string; keep: string[];
  memory?: string; cpus?: string; timeout?: string; maxOutput?: string; network?: boolean; cold?: boolean; checkpointable?: boolean; json?: boolean;
  data: string[]; scratch?: string; rootSize?: string; stdin?: string; raw?: boolean; after?: string; inputsFrom: string[];
  /** `--cache` (true: a job with a network too), `--no-cache` (false). */
  cache?: boolean;
  /** `--nodes N`: N VMs on a private network, the command on the first (src/run/multi-vm.ts); `--outputs all`: every VM's outputs. */
  nodes?: string;
  outputs?: string;
}

export function exitCodeFor(r: RunResult): number {
  if (r.status === 'timeout') return EXIT_TIMEOUT;
  if (r.status === 'error') return EXIT_VMWU_ERROR;
  return r.exitCode ?? EXIT_VMWU_ERROR;
}

export async function run(args: string[], o: RunOptions): Promise<void> {
  await withStore(async (store) => {
    const unitRef = o.base ? undefined : args[0];
    const r = await resolveRequest(store, {
      ...o, unit: unitRef, command: o.base ? args : args.slice(1), params: parseParamPairs(o.param), keep: o.keep, data: o.data,
    }, 'run');
    const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
    const json = Boolean(o.json);
    const cache = { off: o.cache === false || process.env.VMWU_RESULT_CACHE === 'off', force: o.cache === true };
    if (o.after !== undefined) {
      const after = parseAfter(o.after);
      checkAfter(store, after);
      const v = await awaitAfter(store, after, { signal: interrupt.signal, onWait: (m) => { if (!json) process.stderr.write(`vmwu: ${m}\n`); } });
      if (v !== 'go') {
        interrupt.dispose();
        if (v === 'interrupted') process.exitCode = interrupt.exitCode;
        else throw new VmwuError('AFTER_FAILED', `not run: ${typeof v === 'object' ? v.cancel : 'stopped'}`, `run it without --after, or with --after ${after.experiment}:finished`);
        return;
      }
    }
    const gather = o.inputsFrom.length ? makeWorkDir(store.paths, 'gather-') : undefined;
    let inputs: (string | { path: string; name: string })[] = o.input;
    try {
      if (gather) inputs = [...o.input, ...o.inputsFrom.flatMap((f) => stageInputsFrom(store, parseInputsFrom(f), gather))];
    } catch (e) {
      rmSync(gather!, { recursive: true, force: true });
      interrupt.dispose();
      throw e;
    }
    const output = guestOutput(Boolean(o.raw));
    const { nodes, outputsAll } = r.resources;
    const request = { ...runRequestOf(r), app: o.app, outDir: o.out, inputs };
    const jobOf = nodes
      ? (req: typeof request, hooks: Parameters<typeof runJobCached>[2]) => runMultiVm(store, req, { nodes, outputsAll }, hooks)
      // This host's warm pool service runs it when one runs (vmwu warm --keep N): in a clone kept warm for it.
      : async (req: typeof request, hooks: Parameters<typeof runJobCached>[2]) => (await runOnWarmService(store, req, hooks, cache)) ?? runJobCached(store, req, hooks, cache);
    const result: RunResult & { vms?: MultiVmResult['vms'] } = await jobOf(request, {
      signal: interrupt.signal,
      onStart: ({ id, accel }) => {
        if (!json) process.stderr.write(`vmwu: run ${id} of ${r.target.label} (${accel.accel}: ${accel.reason})\n`);
      },
      onCached: ({ source }) => {
        if (!json) process.stderr.write(`vmwu: the result cache has it: the same job succeeded as ${source}; its outputs are linked, its output shown again (--no-cache runs it)\n`);
      },
      onDamaged: (why) => {
        if (!json) process.stderr.write(`vmwu: ${escapeForTerminal(why)}; it runs\n`);
      },
      // Live output, as the job writes it: no seed system could show this during a run.
      onOutput: json ? undefined : output.write,
    }).finally(() => {
      output.end();
      if (gather) rmSync(gather, { recursive: true, force: true });
    });
    interrupt.dispose();
    if (json) {
      printJson(result);
    } else {
      const p = result.phases;
      const what = result.status === 'succeeded' || result.status === 'failed' ? `${result.status} (exit ${result.exitCode})` : result.status;
      process.stderr.write(`vmwu: ${what}${result.cachedFrom ? ' from the cache' : ''} in ${ms(result.totalMs)}; outputs in ${result.outDir}\n`);
      for (const v of result.vms ?? []) process.stderr.write(`vmwu: VM ${v.index} (${v.name}): run ${v.runId}, ${v.status}${v.error ? `: ${escapeForTerminal(v.error)}` : ''}\n`);
      if (result.cachedFrom) {
        process.exitCode = interrupt.exitCode ?? 0;
        return;
      }
      const start = result.start?.mode === 'restore' ? `restore ${ms(p.restore)}` : `boot ${ms(p.boot)}`;
      process.stderr.write(`vmwu: ${p.template ? `template ${ms(p.template)} · ` : ''}prepare ${ms(p.prepare)} · ${start} · stage-in ${ms(p.stageIn)} · exec ${ms(p.exec)} · stage-out ${ms(p.stageOut)} · shutdown ${ms(p.shutdown)} · collect ${ms(p.collect)}\n`);
      if (result.status === 'stopped') process.stderr.write(`vmwu: stopped at checkpoint ${result.checkpoint}; go on with: vmwu restore ${result.checkpoint}\n`);
      if (result.start?.fallback) process.stderr.write(`vmwu: booted instead of restoring: ${escapeForTerminal(result.start.fallback)}\n`);
      if (result.start?.cache) process.stderr.write(`vmwu: ${escapeForTerminal(result.start.cache)}\n`);
      // The guest's agent, or QEMU, may have said why.
      if (result.error) {
        process.stderr.write(`vmwu: ${escapeForTerminal(result.error.message)}\n`);
        if (result.error.hint) process.stderr.write(`  hint: ${escapeForTerminal(result.error.hint)}\n`);
      }
    }
    process.exitCode = interrupt.exitCode ?? (result.status === 'stopped' ? 0 : exitCodeFor(result));
  });
}
