import { copyFileSync, chmodSync, linkSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { guestDir } from '../paths.js';
import { GuestModules } from '../../guest/protocol.js';
import { makeExt4FromDir } from '../image/ext4.js';
import { convertImage, imageInfo } from '../image/qemu-img.js';
import { runTool } from '../image/tool.js';
import { digestString, type Digest } from '../store/blobs.js';
import { registerBase, type Base } from '../store/bases.js';
import type { Store } from '../store/store.js';
import { fetchAndExtractDeb, resolveMetaPackage } from './debs.js';
import { makeWorkDir } from '../store/temp-files.js';
import { compileCloneHelper, compileRunAsHelper } from './guest-helpers.js';

/**
 * The tiny base (`vmwu base build tiny`), and the parts every kernel base is made of: the Debian cloud
 * kernel, vmwu's initramfs, and a root filesystem registered with them as a base.
 */

/**
 * The kernel command line of the bases vmwu builds. Past the console and the
 * reset on panic, it turns off what a one-job VM never uses and every process
 * pays for on each context switch, page and exec, which under emulation is
 * a tenth of a short job: pressure accounting, the memory cgroup's charging,
 * the TSC watchdog, and the AppArmor and TOMOYO hooks (landlock and yama stay:
 * programs use them themselves).
 */
export const defaultCmdline = 'console=ttyS0 quiet reboot=t panic=-1 psi=0 cgroup_disable=memory tsc=reliable lsm=landlock,yama';
const kernelMeta = 'linux-image-cloud-amd64';

export interface BaseBuildProgress {
  (step: string, done: number, total: number): void;
}

export interface KernelParts {
  vmlinuz: string;
  modulesDir: string;
  version: string;
}

/** The Debian cloud kernel, unpacked rootless into `work`. */
export async function fetchKernel(cacheDir: string, work: string): Promise<KernelParts> {
  const pkg = await resolveMetaPackage(kernelMeta, 'linux-image-');
  const dest = join(work, 'kernel');
  await fetchAndExtractDeb(pkg, cacheDir, dest);
  const boot = readdirSync(join(dest, 'boot'));
  const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new VmwuError('BAD_KERNEL', `${pkg} contains no vmlinuz`);
  const version = vmlinuz.slice('vmlinuz-'.length);
  return { vmlinuz: join(dest, 'boot', vmlinuz), modulesDir: join(dest, 'lib', 'modules', version, 'kernel'), version };
}

/**
 * The initramfs shared by our bases: static busybox, the virtio modules and
 * guest/init. Built with cpio from a staging directory, uncompressed, because the
 * kernel unpacks it faster than it inflates gzip under TCG.
 */
export async function buildInitramfs(kernel: KernelParts, busybox: string, helpers: { cloneHelper: string; runAs: string }, work: string, out: string): Promise<void> {
  const dir = join(work, 'initramfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'etc', 'lib/modules']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const names: string[] = [];
  for (const m of GuestModules) {
    const src = join(kernel.modulesDir, `${m}.ko`);
    if (!existsSync(src)) throw new VmwuError('BAD_KERNEL', `kernel ${kernel.version} lacks module ${m}.ko`);
    const name = m.split('/').pop()!;
    copyFileSync(src, join(dir, 'lib', 'modules', `${name}.ko`));
    names.push(name);
  }
  writeFileSync(join(dir, 'etc', 'modules.order'), names.join('\n') + '\n');
  copyFileSync(join(guestDir, 'init'), join(dir, 'init'));
  chmodSync(join(dir, 'init'), 0o755);
  // The agent also rides in the initramfs, for self-contained images (vmwu.root=none)
  // and, with busybox, its applets and the helpers, for container images (vmwu.root=image).
  const tools = join(dir, 'vmwu');
  mkdirSync(join(tools, 'bin'), { recursive: true });
  for (const [name, src] of [['agent', join(guestDir, 'agent')], ['clone-helper', helpers.cloneHelper], ['run-as', helpers.runAs]] as const) {
    copyFileSync(src, join(tools, name));
    chmodSync(join(tools, name), 0o755);
  }
  // A hard link: cpio stores the bytes once.
  linkSync(join(dir, 'bin', 'busybox'), join(tools, 'busybox'));
  for (const applet of await busyboxApplets(busybox)) if (applet !== 'busybox') symlinkSync('../busybox', join(tools, 'bin', applet));
  const { stdout } = await runTool('find', ['.', '-mindepth', '1'], { cwd: dir });
  const list = stdout.split('\n').filter(Boolean).sort().join('\n') + '\n';
  // -R 0:0: the files belong to whoever built them, but the guest expects root.
  await runTool('sh', ['-c', `cpio --quiet -o -H newc -R 0:0 > "$1"`, 'sh', out], { cwd: dir, input: list, hint: 'install cpio' });
}

/** The tiny root filesystem: busybox applets, the agent, and the directories it uses. */
function populateTinyRoot(dir: string, busybox: string, helpers: { cloneHelper: string; runAs: string }): void {
  // Modes set, not left to this process's umask (the store's is 077): a job may run as another user (docker run --user).
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'job', 'app', 'root', 'etc', 'vmwu', 'usr']) {
    mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, d), d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755);
  }
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  symlinkSync('bin', join(dir, 'sbin'));
  symlinkSync('../bin', join(dir, 'usr', 'bin'));
  symlinkSync('../bin', join(dir, 'usr', 'sbin'));
  for (const [f, text] of [['passwd', 'root:x:0:0:root:/root:/bin/sh\n'], ['group', 'root:x:0:\n'], ['hostname', 'vmwu\n']] as const) {
    writeFileSync(join(dir, 'etc', f), text);
    chmodSync(join(dir, 'etc', f), 0o644);
  }
  copyFileSync(join(guestDir, 'agent'), join(dir, 'vmwu', 'agent'));
  chmodSync(join(dir, 'vmwu', 'agent'), 0o755);
  // run-as: `vmwu docker run --user UID:GID` on the tiny base (src/docker/run.ts).
  for (const [name, src] of [['clone-helper', helpers.cloneHelper], ['run-as', helpers.runAs]] as const) {
    copyFileSync(src, join(dir, 'vmwu', name));
    chmodSync(join(dir, 'vmwu', name), 0o755);
  }
}

export async function busyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await runTool(busybox, ['--list']);
  return stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

/** The kernel and initramfs blobs every kernel base boots with. */
export interface BootParts {
  kernel: { digest: Digest; size: number };
  initrd: { digest: Digest; size: number };
  version: string;
  busybox: string;
  /** The static clone helper (guest/clone-helper.c), for the root filesystem. */
  cloneHelper: string;
  /** The static run-as helper (guest/run-as.c). */
  runAs: string;
}

export async function buildBootParts(store: Store, work: string): Promise<BootParts> {
  const debs = join(store.paths.cache, 'debs');
  const kernel = await fetchKernel(debs, work);
  await fetchAndExtractDeb('busybox-static', debs, join(work, 'busybox'));
  const busybox = join(work, 'busybox', 'bin', 'busybox');
  const initrd = join(work, 'initrd.cpio');
  const cloneHelper = await compileCloneHelper(work);
  const runAs = await compileRunAsHelper(work);
  await buildInitramfs(kernel, busybox, { cloneHelper, runAs }, work, initrd);
  return {
    kernel: await store.blobs.putFile(kernel.vmlinuz),
    initrd: await store.blobs.putFile(initrd, { move: true }),
    version: kernel.version,
    busybox,
    cloneHelper,
    runAs,
  };
}

/** Converts a raw root filesystem to qcow2, stores it, and registers the base. */
export async function registerKernelBase(store: Store, work: string, b: { name: string; description: string; parts: BootParts; rootRaw: string; packageManager?: Base['packageManager'] }): Promise<Base> {
  const qcow = join(work, 'root.qcow2');
  await convertImage(b.rootRaw, 'raw', qcow, 'qcow2', { stored: true });
  await rm(b.rootRaw, { force: true });
  const info = await imageInfo(qcow, 'qcow2');
  const r = await store.blobs.putFile(qcow, { move: true });
  const { parts } = b;
  const manifest = { arch: 'x86_64', os: 'linux', boot: 'kernel', kernel: parts.kernel.digest, initrd: parts.initrd.digest, root: r.digest, cmdline: defaultCmdline };
  return registerBase(store.db, {
    name: b.name, digest: digestString(JSON.stringify(manifest)), arch: 'x86_64', os: 'linux',
    description: b.description, boot: 'kernel', kernel: parts.kernel.digest, initrd: parts.initrd.digest, root: r.digest,
    cmdline: defaultCmdline, size: parts.kernel.size + parts.initrd.size + r.size, virtualSize: info.virtualSize,
    packageManager: b.packageManager ?? null,
  });
}

/**
 * `vmwu base build tiny`: a Debian cloud kernel, our initramfs, and an ext4 root
 * with static busybox and the agent. Everything is rootless.
 */
export async function buildTinyBase(store: Store, opts: { name?: string; rootSize?: number; progress?: BaseBuildProgress } = {}): Promise<Base> {
  const total = 3;
  const work = makeWorkDir(store.paths, 'base-');
  try {
    opts.progress?.('kernel + initramfs (apt-get download, dpkg -x, cpio)', 0, total);
    const parts = await buildBootParts(store, work);
    opts.progress?.('root filesystem (mke2fs -d)', 1, total);
    const rootDir = join(work, 'rootfs');
    populateTinyRoot(rootDir, parts.busybox, parts);
    for (const applet of await busyboxApplets(parts.busybox)) {
      if (applet !== 'busybox' && !existsSync(join(rootDir, 'bin', applet))) symlinkSync('busybox', join(rootDir, 'bin', applet));
    }
    const raw = join(work, 'root.raw');
    await makeExt4FromDir(raw, rootDir, opts.rootSize ?? 1024 ** 3, 'vmwu-root');
    opts.progress?.('store and register', 2, total);
    const base = await registerKernelBase(store, work, {
      name: opts.name ?? 'tiny', description: `busybox on Debian kernel ${parts.version}`, parts, rootRaw: raw,
    });
    opts.progress?.('done', 3, total);
    return base;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
