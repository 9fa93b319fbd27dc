import { loadDefaults } from '../config.js';
import { VmwuError } from '../errors.js';
import { findUnit, listUnits, type UnitManifest } from '../unit/records.js';
import { parseParamPairs } from '../run/command.js';
import { resolveDatasetRefs } from '../data/records.js';
import type { Store } from '../store/store.js';
import { runJob, type RunResult } from '../run/run.js';
import { parseDuration, parseSize } from '../quantities.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { EXIT_TIMEOUT, EXIT_VMWU_ERROR, ms, printJson } from './output.js';
import { escapeForTerminal, guestOutput } from './terminal-text.js';

interface RunOptions {
  base?: string; app?: string; input: string[]; param: string[]; out?: string; keep: string[];
  memory?: string; cpus?: string; timeout?: string; maxOutput?: string; network?: boolean; cold?: boolean; json?: boolean;
  data: string[]; scratch?: string; rootSize?: string; stdin?: string; raw?: boolean;
}

export function exitCodeFor(r: RunResult): number {
  if (r.status === 'timeout') return EXIT_TIMEOUT;
  if (r.status === 'error') return EXIT_VMWU_ERROR;
  return r.exitCode ?? EXIT_VMWU_ERROR;
}

/** What a unit contributes to a run: its image, default command, params, outputs and resources. */
function unitDefaults(store: Store, ref: string) {
  const u = findUnit(store.db, ref);
  if (!u) {
    const names = listUnits(store.db).map((x) => `${x.name}:${x.version}`);
    throw new VmwuError('NO_UNIT', `no unit "${ref}"`, names.length ? `known units: ${names.join(', ')}; to boot a bare base use --base` : 'build one with `vmwu build DIR`, or boot a bare base with --base NAME');
  }
  return u;
}

export async function run(args: string[], o: RunOptions): Promise<void> {
  await withStore(async (store) => {
    const d = await loadDefaults(store.paths.root);
    const unit = o.base ? undefined : args.length ? unitDefaults(store, args[0]!) : undefined;
    if (!o.base && !unit) throw new VmwuError('NO_UNIT', 'nothing to run', 'give a unit (vmwu run mandelbrot) or a base and a command (vmwu run --base tiny -- true)');
    const given = parseParamPairs(o.param);
    const params: Record<string, string> = unit ? { ...Object.fromEntries(Object.entries(unit.params).map(([k, v]) => [k, v.default])), ...given } : given;
    if (unit) checkParamTypes(unit.params, given);
    const command = o.base ? args : args.slice(1);
    const argv = command.length ? command : unit?.run ?? [];
    const res = unit?.resources ?? {};
    const cpus = o.cpus === undefined ? res.cpus ?? d.cpus : Number(o.cpus);
    if (!Number.isInteger(cpus) || cpus < 1) throw new VmwuError('BAD_VALUE', `--cpus ${o.cpus}: expected a whole number ≥ 1`);
    const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
    const json = Boolean(o.json);
    const label = unit ? `${unit.name}:${unit.version}` : o.base!;
    const output = guestOutput(Boolean(o.raw));
    const result = await runJob(store, {
      base: unit ? unit.baseDigest : o.base!,
      layers: unit?.chain,
      argv,
      params,
      app: o.app,
      inputs: o.input,
      outDir: o.out,
      keep: o.keep.length ? o.keep : unit?.outputs.length ? unit.outputs : undefined,
      memoryMiB: o.memory ? Math.round(parseSize(o.memory, '--memory') / 1024 ** 2) : res.memoryMiB ?? d.memoryMiB,
      cpus,
      timeoutMs: o.timeout ? parseDuration(o.timeout, '--timeout') : res.timeoutMs ?? d.timeoutMs,
      maxOutputBytes: o.maxOutput ? parseSize(o.maxOutput, '--max-output') : d.maxOutputBytes,
      network: Boolean(o.network) || Boolean(unit?.network),
      cold: Boolean(o.cold),
      cpuNeeds: unit?.cpu,
      datasets: resolveDatasetRefs(store.db, [...(unit?.data ?? []), ...o.data]),
      scratchBytes: o.scratch ? parseSize(o.scratch, '--scratch') : res.scratchBytes,
      rootBytes: o.rootSize ? parseSize(o.rootSize, '--root-size') : res.rootBytes,
      stdin: o.stdin ? { host: o.stdin } : unit?.stdin ? { work: unit.stdin } : undefined,
    }, {
      signal: interrupt.signal,
      onStart: ({ id, accel }) => {
        if (!json) process.stderr.write(`vmwu: run ${id} of ${label} (${accel.accel}: ${accel.reason})\n`);
      },
      // Live output, as the job writes it: no seed system could show this during a run.
      onOutput: json ? undefined : output.write,
    }).finally(() => output.end());
    interrupt.dispose();
    if (json) {
      printJson(result);
    } else {
      const p = result.phases;
      const what = result.status === 'succeeded' || result.status === 'failed' ? `${result.status} (exit ${result.exitCode})` : result.status;
      process.stderr.write(`vmwu: ${what} in ${ms(result.totalMs)}; outputs in ${result.outDir}\n`);
      const start = result.start?.mode === 'restore' ? `restore ${ms(p.restore)}` : `boot ${ms(p.boot)}`;
      process.stderr.write(`vmwu: prepare ${ms(p.prepare)} · ${start} · stage-in ${ms(p.stageIn)} · exec ${ms(p.exec)} · stage-out ${ms(p.stageOut)} · shutdown ${ms(p.shutdown)} · collect ${ms(p.collect)}\n`);
      if (result.status === 'stopped') process.stderr.write(`vmwu: stopped at checkpoint ${result.checkpoint}; go on with: vmwu restore ${result.checkpoint}\n`);
      if (result.start?.fallback) process.stderr.write(`vmwu: booted instead of restoring: ${escapeForTerminal(result.start.fallback)}\n`);
      // The guest's agent, or QEMU, may have said why.
      if (result.error) {
        process.stderr.write(`vmwu: ${escapeForTerminal(result.error.message)}\n`);
        if (result.error.hint) process.stderr.write(`  hint: ${escapeForTerminal(result.error.hint)}\n`);
      }
    }
    process.exitCode = interrupt.exitCode ?? (result.status === 'stopped' ? 0 : exitCodeFor(result));
  });
}

/** A unit's params have types (from their defaults): refuse a value that does not fit. */
function checkParamTypes(decl: UnitManifest['params'], given: Record<string, string>): void {
  for (const [k, v] of Object.entries(given)) {
    const t = decl[k]?.type;
    const ok = t === undefined || t === 'string'
      || (t === 'int' && /^[-+]?\d+$/.test(v))
      || (t === 'float' && v.trim() !== '' && Number.isFinite(Number(v)))
      || (t === 'bool' && /^(true|false)$/.test(v));
    if (!ok) throw new VmwuError('BAD_PARAM', `--param ${k}=${v}: ${k} is a ${t} parameter`, `the unit's default is ${decl[k]!.default}`);
  }
}
