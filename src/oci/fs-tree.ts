import { VmwuError } from '../errors.js';

/**
 * What an image's root filesystem holds, as paths and kinds (and symlink targets),
 * mirrored while its layers are applied: where a path really lands when a
 * directory on the way is a symlink (resolved inside the root, as the guest would),
 * and what a removal takes with it. Pure.
 */

export type NodeKind = 'dir' | 'file' | 'symlink' | 'other';

interface TreeNode {
  kind: NodeKind;
  target?: string;
  children?: Map<string, TreeNode>;
}

const MAX_LINKS = 40;

export class FsTree {
  private readonly root: TreeNode = { kind: 'dir', children: new Map() };

  private node(path: string[]): TreeNode | undefined {
    let n: TreeNode | undefined = this.root;
    for (const c of path) {
      n = n?.children?.get(c);
      if (!n) return undefined;
    }
    return n;
  }

  kind(path: string[]): NodeKind | undefined {
    return this.node(path)?.kind;
  }

  /**
   * The real directory that `dir` names: every symlink on the way followed inside
   * the root (absolute targets from the root, `..` stopping at it). Components that
   * do not exist yet are returned in `missing`, to be made as directories.
   */
  resolveDir(dir: string[]): { path: string[]; missing: string[] } {
    let cur: string[] = [];
    const pending = [...dir];
    let links = 0;
    while (pending.length) {
      const c = pending.shift()!;
      if (c === '.' || c === '') continue;
      if (c === '..') { cur = cur.slice(0, -1); continue; }
      const n = this.node([...cur, c]);
      if (!n) return { path: cur, missing: [c, ...pending.filter((x) => x !== '' && x !== '.')] };
      if (n.kind === 'symlink') {
        if (++links > MAX_LINKS) throw new VmwuError('BAD_IMAGE_LAYER', `too many symbolic links on the way to /${dir.join('/')}`, 'the image has a symlink loop');
        const t = n.target!;
        if (t.startsWith('/')) cur = [];
        pending.unshift(...t.split('/'));
        continue;
      }
      if (n.kind !== 'dir') throw new VmwuError('BAD_IMAGE_LAYER', `/${[...cur, c].join('/')} is not a directory, but a later entry goes below it`, 'the image is damaged');
      cur = [...cur, c];
    }
    return { path: cur, missing: [] };
  }

  /** What `path` is once every symlink, the last one too, is followed; undefined if it leads nowhere. */
  lookup(path: string[]): NodeKind | undefined {
    let p = path;
    for (let links = 0; links <= MAX_LINKS; links++) {
      let real: string[];
      try {
        const r = this.resolveDir(p.slice(0, -1));
        if (r.missing.length) return undefined;
        real = [...r.path, p[p.length - 1]!];
      } catch {
        return undefined;
      }
      const n = this.node(real);
      if (n?.kind !== 'symlink') return n?.kind;
      p = n.target!.startsWith('/') ? n.target!.split('/') : [...real.slice(0, -1), ...n.target!.split('/')];
      p = p.filter((c) => c !== '' && c !== '.');
    }
    return undefined;
  }

  add(path: string[], kind: NodeKind, target?: string): void {
    const parent = this.node(path.slice(0, -1));
    if (!parent?.children) throw new Error(`internal: no directory /${path.slice(0, -1).join('/')}`);
    const existing = parent.children.get(path[path.length - 1]!);
    if (existing?.kind === 'dir' && kind === 'dir') return;
    parent.children.set(path[path.length - 1]!, { kind, ...(target !== undefined ? { target } : {}), ...(kind === 'dir' ? { children: new Map() } : {}) });
  }

  /** Removes a path and all below it; returns what was removed, deepest first, with kinds. */
  remove(path: string[]): { path: string[]; kind: NodeKind }[] {
    const n = this.node(path);
    if (!n || path.length === 0) return [];
    const out: { path: string[]; kind: NodeKind }[] = [];
    const walk = (p: string[], x: TreeNode) => {
      if (x.children) for (const [name, c] of x.children) walk([...p, name], c);
      out.push({ path: p, kind: x.kind });
    };
    walk(path, n);
    this.node(path.slice(0, -1))!.children!.delete(path[path.length - 1]!);
    return out;
  }

  /** The names directly in a directory. */
  children(dir: string[]): string[] {
    return [...(this.node(dir)?.children?.keys() ?? [])];
  }

  has(path: string[]): boolean {
    return this.node(path) !== undefined;
  }
}
