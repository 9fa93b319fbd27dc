import { FsTree, type NodeKind } from './fs-tree.js';
import { badEntry, checkLinkTarget, entryPath, whiteoutOf, type EntryPlace } from './layer-paths.js';

/**
 * One image layer as a debugfs script that applies it to the ext4 root below it:
 * whiteouts first (they hide only what lower layers hold), then every entry with its
 * owner, mode, time and extended attributes, the way `umoci unpack` or Docker apply
 * a layer. Pure: `tree` mirrors the filesystem and is updated as the script would.
 */

export interface LayerEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs: Map<string, Buffer>;
  /** A regular file's content, staged on the host. */
  content?: string;
}

const TYPE_BITS: Record<LayerEntry['type'], number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, link: 0, char: 0o020000, block: 0o060000, fifo: 0o010000 };
const KIND: Record<LayerEntry['type'], NodeKind> = { file: 'file', dir: 'dir', symlink: 'symlink', link: 'file', char: 'other', block: 'other', fifo: 'other' };
const XATTR_NAME = /^(user|trusted|security)\.[\x21-\x7e]{1,250}$|^system\.posix_acl_(access|default)$/;

/** debugfs quoting: inside double quotes, a quote is written twice. */
function dq(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

const abs = (p: string[]) => `/${p.join('/')}`;

export interface LayerScriptInput {
  entries: LayerEntry[];
  /** Names the layer in errors: "layer 2 (sha256:…)". */
  layer: string;
  /** Stages an extended attribute's value for `ea_set -f`; returns its host path. */
  valueFile(value: Buffer): string;
}

export function layerScript(tree: FsTree, input: LayerScriptInput): string[] {
  const lines: string[] = [];
  let cwd = '';
  const cd = (dir: string[]) => {
    const d = abs(dir);
    if (d !== cwd) lines.push(`cd ${dq(d)}`);
    cwd = d;
  };
  const removeAll = (path: string[]) => {
    for (const r of tree.remove(path)) lines.push(`${r.kind === 'dir' ? 'rmdir' : 'rm'} ${dq(abs(r.path))}`);
  };
  /** The real parent of `path` (symlinks on the way followed), its missing directories made. */
  const parentOf = (path: string[]): string[] => {
    const { path: real, missing } = tree.resolveDir(path.slice(0, -1));
    let cur = real;
    for (const m of missing) {
      cd(cur);
      lines.push(`mkdir ${dq(m)}`);
      cur = [...cur, m];
      tree.add(cur, 'dir');
      lines.push(`sif ${dq(abs(cur))} mode 040755`, `sif ${dq(abs(cur))} uid 0`, `sif ${dq(abs(cur))} gid 0`);
    }
    return cur;
  };

  const parsed = input.entries.map((e) => {
    const at: EntryPlace = { layer: input.layer, name: e.name };
    return { e, at, path: entryPath(e.name, at) };
  });
  for (const { path } of parsed) {
    const w = whiteoutOf(path);
    if (!w) continue;
    if (w.kind === 'path') {
      const real = [...tree.resolveDir(w.path.slice(0, -1)).path, w.path[w.path.length - 1]!];
      if (tree.has(real)) removeAll(real);
    } else {
      const { path: dir, missing } = tree.resolveDir(w.dir);
      if (!missing.length && tree.kind(dir) === 'dir') for (const c of tree.children(dir)) removeAll([...dir, c]);
    }
  }

  for (const { e, at, path } of parsed) {
    if (whiteoutOf(path)) continue;
    let target: string[];
    if (path.length === 0) {
      if (e.type !== 'dir') throw badEntry(at, 'names the root but is not a directory');
      target = [];
    } else {
      const parent = parentOf(path);
      const name = path[path.length - 1]!;
      target = [...parent, name];
      const existing = tree.kind(target);
      if (!(existing === 'dir' && e.type === 'dir') && existing !== undefined) removeAll(target);
      if (existing !== 'dir' || e.type !== 'dir') {
        cd(parent);
        switch (e.type) {
          case 'dir': lines.push(`mkdir ${dq(name)}`); break;
          // No staged content: a listing being mirrored (mirrorLayers), whose lines are not run.
          case 'file': lines.push(`write ${dq(e.content ?? '')} ${dq(name)}`); break;
          case 'symlink':
            checkLinkTarget(path.slice(0, -1), e.linkname ?? '', at);
            lines.push(`symlink ${dq(name)} ${dq(e.linkname!)}`);
            break;
          case 'link': {
            const to = entryPath(e.linkname ?? '', at);
            const toReal = [...tree.resolveDir(to.slice(0, -1)).path, to[to.length - 1] ?? ''];
            const kind = tree.kind(toReal);
            if (!to.length || kind === undefined) throw badEntry(at, `is a hard link to ${JSON.stringify(e.linkname)}, which the image does not hold`);
            if (kind === 'dir') throw badEntry(at, 'is a hard link to a directory');
            lines.push(`ln ${dq(abs(toReal))} ${dq(name)}`);
            tree.add(target, kind);
            // The link shares its target's inode, owner and mode; e2fsck counts the links.
            continue;
          }
          case 'char': case 'block':
            lines.push(`mknod ${dq(name)} ${e.type === 'char' ? 'c' : 'b'} ${e.devmajor ?? 0} ${e.devminor ?? 0}`);
            break;
          case 'fifo': lines.push(`mknod ${dq(name)} p`); break;
        }
        tree.add(target, KIND[e.type], e.type === 'symlink' ? e.linkname : undefined);
      }
    }
    const p = dq(abs(target));
    // A symlink's own bits mean nothing to Linux, which shows 0777 for every one.
    const perm = e.type === 'symlink' ? 0o777 : e.mode & 0o7777;
    lines.push(`sif ${p} mode 0${(TYPE_BITS[e.type] | perm).toString(8)}`, `sif ${p} uid ${e.uid}`, `sif ${p} gid ${e.gid}`,
      `sif ${p} mtime @${Math.max(0, Math.min(Math.floor(e.mtime), 0xffffffff))}`);
    for (const [k, v] of e.xattrs) {
      if (!XATTR_NAME.test(k)) throw badEntry(at, `has an extended attribute with a name vmwu does not set (${JSON.stringify(k)})`);
      lines.push(`ea_set -f ${dq(input.valueFile(v))} ${p} ${dq(k)}`);
    }
  }
  return lines;
}
