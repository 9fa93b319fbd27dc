import { statfsSync } from 'node:fs';

/** Whether the store is on a network filesystem (by statfs), where SQLite cannot use WAL and the store must be used from one machine at a time. */

/**
 * Filesystems whose clients on different machines share no page cache, no shared
 * memory and often no coherent locks: SQLite's WAL mode cannot work there, and a
 * database used from two of their clients at once can lose writes silently. By
 * statfs f_type (linux/magic.h and the filesystems' own sources). FUSE covers
 * sshfs, s3fs, gcsfuse and most userspace network filesystems.
 */
const NETWORK_FS: Record<number, string> = {
  0x6969: 'nfs',
  0x517b: 'smb',
  0xfe534d42: 'smb2',
  0xff534d42: 'cifs',
  0x65735546: 'fuse',
  0x0bd00bd0: 'lustre',
  0x47504653: 'gpfs',
  0x19830326: 'beegfs',
  0x00c36400: 'ceph',
  0x5346414f: 'afs',
  0x6b414653: 'afs',
  0x01021997: '9p',
  0x7461636f: 'ocfs2',
  0x01161970: 'gfs2',
  0xaad7aaea: 'panfs',
  0x20030528: 'orangefs',
  0x564c: 'ncp',
};

/** Local filesystems worth naming in messages; anything not listed is local too. */
const LOCAL_NAMES: Record<number, string> = {
  0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x01021994: 'tmpfs', 0x794c7630: 'overlayfs', 0x2fc12fc1: 'zfs',
  0xf2f52010: 'f2fs', 0x858458f6: 'ramfs',
};

export interface FsKind {
  /** statfs f_type. */
  type: number;
  name: string;
  network: boolean;
}

export function classifyFs(type: number): FsKind {
  // statfs types are unsigned 32-bit; some Node versions hand them back negative.
  const t = type >>> 0;
  const net = NETWORK_FS[t];
  if (net) return { type: t, name: net, network: true };
  return { type: t, name: LOCAL_NAMES[t] ?? `0x${t.toString(16)}`, network: false };
}

/** The kind of filesystem `path` lives on. VMWU_ASSUME_NETWORK_FS=1 treats any as a network one (to test that path on a laptop). */
export function filesystemOf(path: string, env: NodeJS.ProcessEnv = process.env): FsKind {
  const kind = classifyFs(statfsSync(path).type);
  return env.VMWU_ASSUME_NETWORK_FS === '1' && !kind.network ? { ...kind, name: `${kind.name} (treated as network)`, network: true } : kind;
}
