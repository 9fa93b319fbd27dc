import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson } from './output.js';
import { registryOptions, type RegistryFlags } from './registry-flags.js';

/** `vmwu push UNIT REF`. */
export async function push(unit: string, ref: string, o: RegistryFlags & { withBase?: boolean; withData?: boolean; sign?: string; json?: boolean }): Promise<void> {
  const { pushUnit } = await import('../bundle/push.js');
  await withStore(async (store) => {
    const r = await pushUnit(store, unit, ref, {
      withBase: o.withBase, withData: o.withData, sign: o.sign, registry: registryOptions(o),
      onStep: (s) => { if (!o.json) process.stderr.write(`vmwu: ${s}\n`); },
    });
    if (o.json) return printJson(r);
    process.stderr.write(`vmwu: pushed ${r.unit}: ${r.blobs.total} blob(s), ${formatBytes(r.bytes)}; ${r.blobs.uploaded} uploaded, ${r.blobs.present} already in the registry`
      + `${r.signature ? `; signed (${r.signature})` : ''}\n`);
    process.stdout.write(`${r.ref.replace(/^docker:\/\//, '').replace(/[:@][^/]*$/, '')}@${r.digest}\n`);
  });
}
