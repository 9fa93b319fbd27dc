import { VmwuError } from '../errors.js';
import type { RegistryOptions } from '../oci/registry-options.js';

/** The registry flags of `base pull`, `login`, `push` and `pull`, as skopeo spells them, made into options. */

export interface RegistryFlags {
  creds?: string;
  authfile?: string;
  certDir?: string;
  tlsVerify?: string;
}

export function registryOptions(o: RegistryFlags): RegistryOptions {
  let tlsVerify: boolean | undefined;
  if (o.tlsVerify !== undefined) {
    if (!/^(true|false)$/.test(o.tlsVerify)) throw new VmwuError('BAD_OPTION', `--tls-verify=${o.tlsVerify}: expected true or false`);
    tlsVerify = o.tlsVerify === 'true';
  }
  return { ...(o.creds ? { creds: o.creds } : {}), ...(o.authfile ? { authFile: o.authfile } : {}), ...(o.certDir ? { certDir: o.certDir } : {}), ...(tlsVerify !== undefined ? { tlsVerify } : {}) };
}
