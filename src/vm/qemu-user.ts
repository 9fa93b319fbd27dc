import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { chmodDirNoFollow } from '../store/private-dir.js';

/**
 * Who QEMU runs as. A guest that breaks out of QEMU gets QEMU's rights, so when
 * vmwu runs as root QEMU does not: it is started as an unprivileged user, with no
 * capabilities and no way to gain any (setpriv), and inside its own seccomp
 * sandbox (`-sandbox`, src/vm/argv.ts). Run as anyone else, QEMU simply is that
 * user.
 */

export interface QemuUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups: the group of /dev/kvm, so KVM still works. */
  groups: number[];
}

/** Made by scripts/setup.sh; `nobody` when it is missing. */
export const QEMU_USER = 'vmwu-qemu';

/** An /etc/passwd entry by name. Pure, for tests. */
export function passwdEntry(passwd: string, name: string): { uid: number; gid: number } | undefined {
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** The setpriv options that become `user`, with every capability gone for good. Pure. */
export function dropArgs(user: QemuUser): string[] {
  return [
    `--reuid=${user.uid}`, `--regid=${user.gid}`,
    ...(user.groups.length ? [`--groups=${user.groups.join(',')}`] : ['--clear-groups']),
    '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
  ];
}

let cached: { key: string; user: QemuUser | undefined } | undefined;

/**
 * The user QEMU runs as when vmwu is root (`VMWU_QEMU_USER`, else `vmwu-qemu`,
 * else `nobody`); undefined when vmwu is not root.
 */
export function qemuUser(env: NodeJS.ProcessEnv = process.env, euid = process.geteuid?.()): QemuUser | undefined {
  if (euid !== 0) return undefined;
  const key = env.VMWU_QEMU_USER ?? '';
  if (cached?.key === key) return cached.user;
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const name = env.VMWU_QEMU_USER || (passwdEntry(passwd, QEMU_USER) ? QEMU_USER : 'nobody');
  const entry = passwdEntry(passwd, name);
  if (!entry) {
    throw new VmwuError('QEMU_USER', `VMWU_QEMU_USER=${name}: no such user`, `create it (useradd --system --no-create-home ${name}) or unset VMWU_QEMU_USER`);
  }
  if (entry.uid === 0) {
    throw new VmwuError('QEMU_USER', `VMWU_QEMU_USER=${name} is root: QEMU would run with every privilege`, 'name an unprivileged user');
  }
  let groups: number[] = [];
  try {
    const kvmGid = statSync('/dev/kvm').gid;
    if (kvmGid !== 0) groups = [kvmGid];
  } catch {
    // No /dev/kvm: TCG needs no group.
  }
  const user = { name, ...entry, groups };
  cached = { key, user };
  return user;
}

/** Whether `user` can reach `path`: every directory on the way searchable by it (owner, group or other bits). */
export function canReach(path: string, user: QemuUser): boolean {
  const groups = new Set([user.gid, ...user.groups]);
  const parts = resolve(path).split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = '/' + parts.slice(0, i).join('/');
    let st;
    try {
      st = statSync(dir);
    } catch {
      return false;
    }
    const ok = st.uid === user.uid ? st.mode & 0o100 : groups.has(st.gid) ? st.mode & 0o010 : st.mode & 0o001;
    if (!ok) return false;
  }
  return true;
}

/**
 * Lets anyone pass through (not list) `dir` and the directories vmwu made above
 * it, up to and including `top`; never through a link (src/store/private-dir.ts).
 */
export function openWayTo(top: string, dir: string): void {
  const t = resolve(top);
  for (let d = resolve(dir); d === t || d.startsWith(`${t}/`); d = resolve(d, '..')) chmodDirNoFollow(d, 0o711);
}
