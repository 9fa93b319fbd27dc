import { loadDefaults } from '../config.js';
import { VmwuError } from '../errors.js';
import { parseDuration, parseSize } from '../quantities.js';
import type { Store } from '../store/store.js';
import type { WarmRequest } from '../run/fast-start/warm.js';
import { interruptOn } from './interrupt.js';
import { findUnit } from '../unit/records.js';
import { withStore } from './context.js';
import { ms, printJson } from './output.js';

/** At most this many clones kept warm: each is a QEMU process waiting. */
const MAX_KEEP = 64;

/** Making this host's fast-start template ahead of the first job (`vmwu warm`), so that jobs of that shape restore instead of booting. */

interface WarmOptions { base?: string; memory?: string; cpus?: string; app?: boolean; network?: boolean; keep?: string; idle?: string; json?: boolean }

/** `vmwu warm UNIT | --base NAME`: make this host's template for such jobs now. */
export async function warm(ref: string | undefined, o: WarmOptions): Promise<void> {
  const { warmTemplate } = await import('../run/fast-start/warm.js');
  await withStore(async (store) => {
    const d = await loadDefaults(store.paths.root);
    if (!ref && !o.base) throw new VmwuError('NO_UNIT', 'nothing to warm', 'give a unit (vmwu warm mandelbrot) or a base (vmwu warm --base tiny)');
    const unit = ref ? findUnit(store.db, ref) : undefined;
    if (ref && !unit) throw new VmwuError('NO_UNIT', `no unit "${ref}"`, 'see `vmwu units`');
    const cpus = o.cpus === undefined ? unit?.resources.cpus ?? d.cpus : Number(o.cpus);
    if (!Number.isInteger(cpus) || cpus < 1) throw new VmwuError('BAD_VALUE', `--cpus ${o.cpus}: expected a whole number ≥ 1`);
    const req = {
      base: unit ? unit.baseDigest : o.base!, layers: unit?.chain,
      memoryMiB: o.memory ? Math.round(parseSize(o.memory, '--memory') / 1024 ** 2) : unit?.resources.memoryMiB ?? d.memoryMiB,
      cpus, app: Boolean(o.app), network: Boolean(o.network) || Boolean(unit?.network),
    };
    if (o.keep !== undefined) return keepWarm(store, req, o, ref ?? o.base!);
    const r = await warmTemplate(store, req);
    if (o.json) return printJson(r);
    process.stdout.write(r.made ? `made template ${r.key} in ${ms(r.ms)}: jobs of this shape now restore instead of booting\n` : `template ${r.key} is ready (${r.dir})\n`);
  });
}

/** `vmwu warm … --keep N`: this host's warm pool service for such jobs, until Ctrl-C (or --idle). */
async function keepWarm(store: Store, req: WarmRequest, o: WarmOptions, label: string): Promise<void> {
  const keep = Number(o.keep);
  if (!Number.isInteger(keep) || keep < 1 || keep > MAX_KEEP) throw new VmwuError('BAD_VALUE', `--keep ${o.keep}: expected a whole number from 1 to ${MAX_KEEP}`);
  const idleMs = o.idle === undefined ? undefined : parseDuration(o.idle, '--idle');
  const [{ warmTemplate }, { serveWarmPool }] = await Promise.all([import('../run/fast-start/warm.js'), import('../run/warm-service/serve.js')]);
  // The template first, with its own progress: the pool's clones are its.
  const made = await warmTemplate(store, req);
  if (!o.json && made.made) process.stderr.write(`vmwu: made template ${made.key} in ${ms(made.ms)}\n`);
  const interrupt = interruptOn(['SIGINT', 'SIGTERM']);
  try {
    await serveWarmPool(store, req, {
      keep, idleMs, signal: interrupt.signal,
      onReady: (info) => {
        if (o.json) printJson({ ready: true, ...info });
        else process.stderr.write(`vmwu: keeping ${keep} clone(s) of template ${info.key} warm for jobs of ${label}; \`vmwu run\` on this host uses them (${info.socket}). Ctrl-C stops${idleMs ? `; stops after ${ms(idleMs)} without a job` : ''}\n`);
      },
    });
  } finally {
    interrupt.dispose();
  }
  if (!o.json) process.stderr.write('vmwu: the warm pool is stopped; no clone is left\n');
}
