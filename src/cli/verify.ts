import { existsSync, statSync } from 'node:fs';
import { withStore } from './context.js';
import { printJson } from './output.js';
import { registryOptions, type RegistryFlags } from './registry-flags.js';

/** `vmwu verify REF|BUNDLE --key PUB`: a file on disk is a bundle; anything else a registry reference. */
export async function verifyCmd(target: string, o: RegistryFlags & { key: string; json?: boolean }): Promise<void> {
  if (existsSync(target) && statSync(target).isFile()) {
    const { verifyBundle } = await import('../sign/bundle-signature.js');
    const r = await verifyBundle(target, o.key);
    if (o.json) return printJson({ target, kind: 'bundle', verified: true, ...r });
    process.stdout.write(`verified: ${target} is signed by ${o.key} (${r.signature})\n`);
    return;
  }
  const { verifyRef } = await import('../bundle/verify-ref.js');
  await withStore(async (store) => {
    const r = await verifyRef(store, target, o.key, registryOptions(o));
    if (o.json) return printJson({ target, kind: 'registry', verified: true, ...r });
    process.stdout.write(`verified: ${r.ref.replace(/^docker:\/\//, '')}@${r.digest} is signed by ${o.key} (${r.signature})\n`);
  });
}
