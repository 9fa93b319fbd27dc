import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { guestDir } from '../paths.js';
import { makeExt4FromDir } from '../image/ext4.js';
import { runTool } from '../image/tool.js';
import type { Base } from '../store/bases.js';
import type { Store } from '../store/store.js';
import { buildBootParts, registerKernelBase, type BaseBuildProgress } from './tiny.js';
import { makeWorkDir } from '../store/temp-files.js';
import { checkRootlessBuild } from './rootless-preflight.js';
import { baseAptLists } from './apt-lists.js';

/**
 * The Debian base (`vmwu base build debian`): a minbase root made by mmdebstrap, with the agent and
 * apt's package lists, on the kernel and initramfs every kernel base boots with.
 */

export interface DebianBaseOptions {
  suite?: string;
  name?: string;
  mirror?: string;
  rootSize?: number;
  progress?: BaseBuildProgress;
}

/**
 * The mmdebstrap arguments for a Debian base: minbase, plus busybox (the agent's
 * `ip` for build-time networking) and CA certificates. Package lists are kept so
 * builds can `apt-get install` without an `apt-get update`, which takes ~25 s under
 * TCG; and so is apt's cache of them (srcpkgcache.bin, made here at the host's
 * speed), which every build's apt would otherwise make anew: ~5 s under TCG.
 * The hooks put the agent in; they run the same way in root and unshare mode.
 */
export function mmdebstrapArgs(suite: string, target: string, opts: { rootless: boolean; mirror?: string; cloneHelper: string }): string[] {
  return [
    '--variant=minbase',
    '--include=busybox,ca-certificates',
    '--skip=cleanup/apt/lists',
    '--skip=cleanup/apt/cache',
    ...(opts.rootless ? ['--mode=unshare', '--format=ext2'] : ['--format=directory']),
    '--customize-hook=mkdir -p "$1/vmwu" "$1/job" "$1/app"',
    // The build host's resolver means nothing in a guest; the agent writes one when a job asks for a network.
    '--customize-hook=echo "# vmwu: the agent writes this when a job asks for a network" > "$1/etc/resolv.conf"',
    `--customize-hook=copy-in ${join(guestDir, 'agent')} ${opts.cloneHelper} /vmwu`,
    // Only the lists' cache: pkgcache.bin covers the installed packages too, so the first build would make it stale.
    '--customize-hook=rm -f "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/archives/partial/*',
    '--customize-hook=chroot "$1" env -u APT_CONFIG apt-cache -o Dir::Cache::pkgcache= gencaches',
    suite, target, ...(opts.mirror ? [opts.mirror] : []),
  ];
}

/**
 * `vmwu base build debian`: Debian minbase from mmdebstrap on the Debian cloud
 * kernel with our initramfs. As root it builds a directory and `mke2fs -d`s it;
 * otherwise mmdebstrap's unshare mode writes an ext2 image directly (needs
 * unprivileged user namespaces, /etc/subuid and genext2fs).
 */
export async function buildDebianBase(store: Store, opts: DebianBaseOptions = {}): Promise<Base> {
  const suite = opts.suite ?? 'bookworm';
  // Before the kernel download: a missing tool or sub-id range would otherwise fail it minutes in.
  if (process.getuid?.() !== 0) checkRootlessBuild();
  const total = 4;
  const work = makeWorkDir(store.paths, 'base-');
  try {
    opts.progress?.('kernel + initramfs (apt-get download, dpkg -x, cpio)', 0, total);
    const parts = await buildBootParts(store, work);
    const rootless = process.getuid?.() !== 0;
    const raw = join(work, 'root.raw');
    const size = opts.rootSize ?? 4 * 1024 ** 3;
    opts.progress?.(`mmdebstrap ${suite} (minbase)`, 1, total);
    const hint = 'install mmdebstrap (and for rootless builds genext2fs, uidmap, and /etc/subuid entries); Debian mirrors must be reachable';
    if (rootless) {
      await runTool('mmdebstrap', ['-q', ...mmdebstrapArgs(suite, raw, { rootless, mirror: opts.mirror, cloneHelper: parts.cloneHelper })], { hint });
      await runTool('resize2fs', ['-f', raw, `${Math.ceil(size / 1024)}K`]);
    } else {
      const rootDir = join(work, 'rootfs');
      await runTool('mmdebstrap', ['-q', ...mmdebstrapArgs(suite, rootDir, { rootless, mirror: opts.mirror, cloneHelper: parts.cloneHelper })], { hint });
      opts.progress?.('root filesystem (mke2fs -d)', 2, total);
      await makeExt4FromDir(raw, rootDir, size, 'vmwu-root');
      await rm(rootDir, { recursive: true, force: true });
    }
    opts.progress?.('store and register', 3, total);
    const base = await registerKernelBase(store, work, {
      name: opts.name ?? `debian:${suite}`, description: `Debian ${suite} minbase on kernel ${parts.version}`, parts, rootRaw: raw,
      packageManager: 'apt',
    });
    // Read now, rather than by the first build on the base; one that cannot be read now is read by that build.
    await baseAptLists(store, base, work).catch(() => undefined);
    opts.progress?.('done', 4, total);
    return base;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
