import { loadDefaults } from '../config.js';
import { VmwuError } from '../errors.js';
import { parseSize } from '../quantities.js';
import { findUnit } from '../unit/records.js';
import { withStore } from './context.js';
import { ms, printJson } from './output.js';

/** Making this host's fast-start template ahead of the first job (`vmwu warm`), so that jobs of that shape restore instead of booting. */

interface WarmOptions { base?: string; memory?: string; cpus?: string; app?: boolean; network?: boolean; json?: boolean }

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
    const r = await warmTemplate(store, {
      base: unit ? unit.baseDigest : o.base!, layers: unit?.chain,
      memoryMiB: o.memory ? Math.round(parseSize(o.memory, '--memory') / 1024 ** 2) : unit?.resources.memoryMiB ?? d.memoryMiB,
      cpus, app: Boolean(o.app), network: Boolean(o.network) || Boolean(unit?.network),
    });
    if (o.json) return printJson(r);
    process.stdout.write(r.made ? `made template ${r.key} in ${ms(r.ms)}: jobs of this shape now restore instead of booting\n` : `template ${r.key} is ready (${r.dir})\n`);
  });
}
