import { VmwuError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { remoteInfoSchema, type RemoteInfo } from './protocol.js';

/** The store's records of the SSH pool: each host as `vmwu hosts add` recorded it, whether it is drained, and which blobs it is known to hold. */

/** A pool host for `--executor ssh`, as `vmwu hosts add` recorded it. */
export interface HostRecord {
  name: string;
  user: string;
  address: string;
  port: number;
  /** Private key file; null: the SSH agent ($SSH_AUTH_SOCK). */
  keyPath: string | null;
  /** Jobs at once; null: derived from the host's cores and memory for each sweep. */
  slots: number | null;
  labels: Record<string, string>;
  /** The host key recorded when the host was added (base64 of the SSH key blob); connections must present it. */
  hostKey: string;
  fingerprint: string;
  /** How to start vmwu there. */
  vmwu: string;
  /** Its VMWU_HOME; null: its default. */
  store: string | null;
  info: RemoteInfo;
  addedAt: string;
  checkedAt: string;
  /** Since when `vmwu hosts drain` keeps jobs off it; null: in the pool. */
  drainedAt: string | null;
}

interface HostRow {
  name: string; user: string; address: string; port: number; key_path: string | null; slots: number | null; labels: string;
  host_key: string; fingerprint: string; vmwu: string; store: string | null; info: string; added_at: string; checked_at: string; drained_at: string | null;
}

const fromRow = (r: HostRow): HostRecord => ({
  name: r.name, user: r.user, address: r.address, port: r.port, keyPath: r.key_path, slots: r.slots, labels: JSON.parse(r.labels) as Record<string, string>,
  hostKey: r.host_key, fingerprint: r.fingerprint, vmwu: r.vmwu, store: r.store, info: remoteInfoSchema.parse(JSON.parse(r.info)),
  addedAt: r.added_at, checkedAt: r.checked_at, drainedAt: r.drained_at,
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `user@host[:port]` → its parts; the user defaults to the local one. */
export function parseHostSpec(spec: string, localUser: string): { user: string; address: string; port: number } {
  const m = /^(?:([^@\s:]+)@)?(\[[0-9a-fA-F:]+\]|[^@\s:[\]]+)(?::(\d{1,5}))?$/.exec(spec);
  if (!m) throw new VmwuError('BAD_HOST', `"${spec}" is not user@host[:port]`, 'for example vmwu hosts add alice@node7 or alice@10.0.0.7:2222');
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535) throw new VmwuError('BAD_HOST', `${spec}: port ${port} is out of range`);
  return { user: m[1] ?? localUser, address: m[2]!.replace(/^\[|\]$/g, ''), port };
}

export function parseLabels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const m = /^([A-Za-z0-9_.-]+)=([^,\s]*)$/.exec(l);
    if (!m) throw new VmwuError('BAD_VALUE', `--label ${l}: expected key=value (letters, digits, "_", "." and "-" in the key; no commas)`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export function checkHostName(name: string): void {
  if (!NAME.test(name)) throw new VmwuError('BAD_NAME', `"${name}" is not a valid host name for vmwu`, 'give --name with letters, digits, ".", "_" and "-"');
}

export function saveHost(db: Db, h: HostRecord): void {
  db.prepare(`INSERT INTO hosts (name, user, address, port, key_path, slots, labels, host_key, fingerprint, vmwu, store, info, added_at, checked_at)
    VALUES (@name, @user, @address, @port, @keyPath, @slots, @labels, @hostKey, @fingerprint, @vmwu, @store, @info, @addedAt, @checkedAt)
    ON CONFLICT (name) DO UPDATE SET user = excluded.user, address = excluded.address, port = excluded.port, key_path = excluded.key_path,
      slots = excluded.slots, labels = excluded.labels, host_key = excluded.host_key, fingerprint = excluded.fingerprint, vmwu = excluded.vmwu,
      store = excluded.store, info = excluded.info, checked_at = excluded.checked_at`)
    .run({ ...h, labels: JSON.stringify(h.labels), info: JSON.stringify(h.info) });
}

export function updateHostInfo(db: Db, name: string, info: RemoteInfo): void {
  db.prepare('UPDATE hosts SET info = ?, checked_at = ? WHERE name = ?').run(JSON.stringify(info), new Date().toISOString(), name);
}

/** Drains a host (a time) or puts it back into the pool (null). */
export function setHostDrained(db: Db, name: string, at: string | null): void {
  db.prepare('UPDATE hosts SET drained_at = ? WHERE name = ?').run(at, name);
}

/** The hosts being drained: placement skips them, and the runners move their jobs off. */
export function drainedHosts(db: Db): Set<string> {
  return new Set((db.prepare('SELECT name FROM hosts WHERE drained_at IS NOT NULL').all() as { name: string }[]).map((r) => r.name));
}

export function listHosts(db: Db): HostRecord[] {
  return (db.prepare('SELECT * FROM hosts ORDER BY name').all() as HostRow[]).map(fromRow);
}

export function findHost(db: Db, name: string): HostRecord | undefined {
  const r = db.prepare('SELECT * FROM hosts WHERE name = ?').get(name) as HostRow | undefined;
  return r && fromRow(r);
}

export function requireHost(db: Db, name: string): HostRecord {
  const h = findHost(db, name);
  if (h) return h;
  const names = listHosts(db).map((x) => x.name);
  throw new VmwuError('NO_HOST', `no host "${name}" in the pool`, names.length ? `known hosts: ${names.join(', ')}` : 'add one with `vmwu hosts add user@host`');
}

export function removeHost(db: Db, name: string): boolean {
  return db.prepare('DELETE FROM hosts WHERE name = ?').run(name).changes > 0;
}

/** Records what a host holds: of the digests `asked` about, it has those in `have` (and no longer the others). */
export function recordHostBlobs(db: Db, host: string, have: string[], asked: string[] = have): void {
  const tx = db.transaction(() => {
    const del = db.prepare('DELETE FROM host_blobs WHERE host = ? AND digest = ?');
    for (const d of asked) del.run(host, d);
    const ins = db.prepare('INSERT OR IGNORE INTO host_blobs (host, digest) VALUES (?, ?)');
    for (const d of have) ins.run(host, d);
  });
  tx.immediate();
}

export function hostBlobs(db: Db, host: string): Set<string> {
  return new Set((db.prepare('SELECT digest FROM host_blobs WHERE host = ?').all(host) as { digest: string }[]).map((r) => r.digest));
}
