import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson } from './output.js';
import { registryOptions, type RegistryFlags } from './registry-flags.js';
import { escapeForTerminal } from './terminal-text.js';

/** `vmwu pull REF`. */
export async function pull(ref: string, o: RegistryFlags & { verify?: string; force?: boolean; json?: boolean }): Promise<void> {
  const { pullUnit } = await import('../bundle/pull.js');
  await withStore(async (store) => {
    const r = await pullUnit(store, ref, {
      verify: o.verify, force: o.force, registry: registryOptions(o),
      onStep: (s) => { if (!o.json) process.stderr.write(escapeForTerminal(`vmwu: ${s}\n`)); },
    });
    if (o.json) return printJson(r);
    // Names from the registry: someone else wrote them.
    process.stderr.write(escapeForTerminal(`vmwu: fetched ${r.fetched} of ${r.blobs.total} blob(s) (${formatBytes(r.bytes)}); ${r.blobs.total - r.fetched} were in the store`
      + `${r.base.imported ? `; imported base ${r.base.name}` : `; base ${r.base.name} was already here`}${r.changed ? '' : '; the unit was already here'}`
      + `${r.signature ? `; signature verified (${r.signature})` : ''}\n`));
    process.stdout.write(`${escapeForTerminal(r.unit)}\n`);
  });
}
