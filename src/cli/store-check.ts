import { formatBytes } from '../quantities.js';
import { checkStore, type Finding } from '../upkeep/check.js';
import { withStore } from './context.js';
import { printJson } from './output.js';
import { escapeForTerminal } from './terminal-text.js';

/** The store's consistency check as the command line shows it (`vmwu doctor --check`): what was checked, each problem and leftover with its hint. */

/** `vmwu doctor --check [--deep] [--repair] [--json]`: exit 1 when a problem is found. */
export async function storeCheck(o: { json?: boolean; deep?: boolean; repair?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const r = await checkStore(store, { deep: o.deep, repair: o.repair });
    if (o.json) {
      printJson(r);
    } else {
      const c = r.checked;
      process.stdout.write(`store        ${r.store}\n`);
      process.stdout.write(`checked      ${c.bases} base(s), ${c.layers} layer(s), ${c.units} unit(s), ${c.blobs} blob(s)${r.deep ? ` (${formatBytes(c.bytesHashed)} hashed)` : ' (not hashed: --deep)'}, ${c.runs} run(s), ${c.attempts} attempt(s)\n`);
      const line = (label: string, f: Finding) => {
        // Findings quote records and file names, which runs, imports and hosts made.
        process.stdout.write(`${label} [${f.kind}] ${escapeForTerminal(f.message)}${f.bytes !== undefined ? ` (${formatBytes(f.bytes)})` : ''}\n`);
        if (label !== 'repaired') process.stdout.write(`  hint: ${f.hint}\n`);
      };
      for (const f of r.problems) line('PROBLEM ', f);
      for (const f of r.leftovers) line('leftover', f);
      for (const f of r.repaired) line('repaired', f);
      process.stdout.write(r.ok
        ? `consistent${r.leftovers.length ? `: ${r.leftovers.length} harmless leftover(s)` : ''}\n`
        : `${r.problems.length} problem(s) found\n`);
    }
    if (!r.ok) process.exitCode = 1;
  });
}
