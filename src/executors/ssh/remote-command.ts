import { createHash } from 'node:crypto';

/**
 * What the submitter hands a pool host's SSH server: the `vmwu remote` command line, each word quoted
 * for the login shell, and how a host key's fingerprint is written.
 */

/** POSIX shell single-quoting: the remote login shell sees exactly this one word. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RemoteVmwu {
  /** How to start vmwu on the host: a command line of its own (e.g. `vmwu`, or `node /opt/vmwu/bin/vmwu.js`). */
  vmwu: string;
  /** The host's VMWU_HOME, or null for its default. */
  store: string | null;
}

/** The command line the SSH server runs for `vmwu remote ARGS…` on a host. */
export function remoteCommand(h: RemoteVmwu, args: string[]): string {
  const env = h.store ? `VMWU_HOME=${shQuote(h.store)} ` : '';
  return `${env}${h.vmwu} remote ${args.map(shQuote).join(' ')}`;
}

/** OpenSSH's fingerprint of a host key (`ssh-keygen -lf`): SHA256 of the key blob, unpadded base64. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}
