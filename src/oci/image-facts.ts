import type { PackageManager } from '../store/bases.js';
import type { FsTree } from './fs-tree.js';

/**
 * What vmwu needs to know of an image's filesystem: whether it has a shell, and which
 * package manager builds on it can use (apt, apk) or it has instead. Pure.
 */

const DRIVEN: [string[], PackageManager][] = [[['usr', 'bin', 'apt-get'], 'apt'], [['sbin', 'apk'], 'apk'], [['usr', 'bin', 'apk'], 'apk']];
const OTHERS: [string[], string][] = [
  [['usr', 'bin', 'dnf'], 'dnf'], [['usr', 'bin', 'microdnf'], 'microdnf'], [['usr', 'bin', 'yum'], 'yum'],
  [['usr', 'bin', 'zypper'], 'zypper'], [['usr', 'bin', 'pacman'], 'pacman'], [['usr', 'bin', 'conda'], 'conda'],
];

export interface ImageFacts {
  shell: boolean;
  packageManager: PackageManager | null;
  otherPackageManager?: string;
}

export function imageFacts(tree: FsTree): ImageFacts {
  const file = (p: string[]) => tree.lookup(p) === 'file';
  const pm = DRIVEN.find(([p]) => file(p))?.[1] ?? null;
  const other = pm ? undefined : OTHERS.find(([p]) => file(p))?.[1];
  return { shell: file(['bin', 'sh']), packageManager: pm, ...(other ? { otherPackageManager: other } : {}) };
}
