import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { VmwuError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { DEFAULT_HOST_TIMEOUT_MS, SshConnection } from './connection.js';
import { checkHostName, findHost, parseHostSpec, saveHost, type HostRecord } from './hosts.js';
import { REMOTE_PROTOCOL, remoteInfoSchema, type RemoteInfo } from './protocol.js';
import { fingerprint } from './remote-command.js';
import { vmwuVersion } from './remote.js';

/** Adding a host to the SSH pool (`vmwu hosts add`): probed over SSH for its vmwu, QEMU and capacity, and its host key checked or recorded. */

export interface AddHostOptions {
  spec: string;
  name?: string;
  key?: string;
  slots?: number;
  labels?: Record<string, string>;
  /** How to start vmwu on the host (default `vmwu`). */
  vmwu?: string;
  /** The host's VMWU_HOME (default: its own default). */
  store?: string;
  /** The host key fingerprint the user expects (SHA256:…); without it the first key seen is recorded (trust on first use). */
  fingerprint?: string;
  timeoutMs?: number;
}

export interface AddedHost {
  host: HostRecord;
  /** Whether the host key was recorded now (first contact) rather than checked against an earlier record. */
  keyRecorded: boolean;
  warnings: string[];
}

/** Connects, checks the host's vmwu (its protocol) and QEMU, and reads its capacity. */
export async function probeHost(t: Omit<HostRecord, 'info' | 'addedAt' | 'checkedAt' | 'labels' | 'slots' | 'fingerprint' | 'hostKey' | 'drainedAt'>, hostKey: string | null, timeoutMs: number):
  Promise<{ info: RemoteInfo; key: Buffer; warnings: string[] }> {
  const conn = await SshConnection.open(t, { hostKey, timeoutMs });
  try {
    const info = await conn.json(['info'], remoteInfoSchema);
    const warnings: string[] = [];
    if (info.protocol !== REMOTE_PROTOCOL) {
      throw new VmwuError('REMOTE_PROTOCOL', `host ${t.name} runs vmwu ${info.version} (protocol ${info.protocol}); this vmwu ${vmwuVersion()} speaks protocol ${REMOTE_PROTOCOL}`, 'install the same vmwu release on the host');
    }
    if (info.version !== vmwuVersion()) warnings.push(`host ${t.name} runs vmwu ${info.version}, this is ${vmwuVersion()} (same protocol, so it works)`);
    if (!info.qemu) throw new VmwuError('NO_QEMU', `host ${t.name} has vmwu but no QEMU`, 'install qemu-system-x86 and qemu-utils there');
    return { info, key: conn.presentedKey, warnings };
  } finally {
    conn.close();
  }
}

/**
 * `vmwu hosts add`: reachability, vmwu and QEMU on the host, its capacity, and its
 * host key: checked against --fingerprint when given, else recorded on first
 * contact; re-adding a known host checks it against the recorded key instead.
 */
export async function addHost(db: Db, o: AddHostOptions): Promise<AddedHost> {
  const { user, address, port } = parseHostSpec(o.spec, userInfo().username);
  const name = o.name ?? address;
  checkHostName(name);
  if (o.slots !== undefined && (!Number.isInteger(o.slots) || o.slots < 1)) throw new VmwuError('BAD_VALUE', `--slots ${o.slots}: expected a whole number ≥ 1`);
  const known = findHost(db, name);
  const target = { name, user, address, port, keyPath: o.key ? resolve(o.key) : null, vmwu: o.vmwu ?? 'vmwu', store: o.store ?? null };
  const { info, key, warnings } = await probeHost(target, known?.hostKey ?? null, o.timeoutMs ?? DEFAULT_HOST_TIMEOUT_MS);
  const fp = fingerprint(key);
  if (o.fingerprint && o.fingerprint !== fp) {
    throw new VmwuError('HOST_KEY_MISMATCH', `host ${name} presented ${fp}, not the expected ${o.fingerprint}; not added`, 'compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host');
  }
  const now = new Date().toISOString();
  const host: HostRecord = {
    ...target, slots: o.slots ?? null, labels: o.labels ?? {}, hostKey: key.toString('base64'), fingerprint: fp, info, addedAt: known?.addedAt ?? now, checkedAt: now,
    drainedAt: known?.drainedAt ?? null,
  };
  saveHost(db, host);
  return { host, keyRecorded: !known, warnings };
}
