import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './fixture-path.js';

/**
 * Container images made in tests without a daemon, as the issue asks: umoci layouts
 * from a busybox root or from nothing (a static binary), changed layer by layer,
 * with their config set by `umoci config`. Returns `oci:LAYOUT:TAG` references.
 */

const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** busybox-static from the store's apt cache (the tiny base's build downloaded it), unpacked. */
export function busyboxBinary(store: string, dir: string): string {
  const debs = join(store, 'cache', 'debs');
  const deb = readdirSync(debs).find((f) => f.startsWith('busybox-static_'))!;
  sh('dpkg', ['-x', join(debs, deb), join(dir, 'bb')]);
  return join(dir, 'bb', 'bin', 'busybox');
}

/** A new image in `layout` (tag `tag`) and its bundle unpacked for changes; `commit` repacks the changes as one layer under `next`. */
export function umociImage(layout: string, tag: string, bundle: string) {
  sh('umoci', ['init', '--layout', layout]);
  sh('umoci', ['new', '--image', `${layout}:${tag}`]);
  sh('umoci', ['unpack', '--rootless', '--image', `${layout}:${tag}`, bundle]);
  let cur = tag;
  return {
    rootfs: join(bundle, 'rootfs'),
    commit(next: string) {
      sh('umoci', ['repack', '--image', `${layout}:${next}`, bundle]);
      rmSync(bundle, { recursive: true, force: true });
      sh('umoci', ['unpack', '--rootless', '--image', `${layout}:${next}`, bundle]);
      cur = next;
      return `oci:${layout}:${next}`;
    },
    config(args: string[]) {
      sh('umoci', ['config', '--image', `${layout}:${cur}`, ...args]);
      return `oci:${layout}:${cur}`;
    },
  };
}

/** A root with busybox and its applets under /bin, and /etc/passwd and /etc/group. */
export function populateBusybox(rootfs: string, busybox: string, users = 'root:x:0:0:root:/root:/bin/sh\n', groups = 'root:x:0:\n'): void {
  for (const d of ['bin', 'etc', 'root', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  execFileSync('cp', [busybox, join(rootfs, 'bin', 'busybox')]);
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'ls', 'cat', 'id', 'pwd', 'echo', 'touch', 'env', 'tr', 'sort']) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), users);
  writeFileSync(join(rootfs, 'etc', 'group'), groups);
}

/** A static program that prints its arguments, user and $GREETING: the whole of a distroless image. */
export function staticHello(dir: string): string {
  const src = helloSource(dir);
  sh('cc', ['-static', '-Os', '-o', join(dir, 'hello'), src]);
  return join(dir, 'hello');
}

/** The same program linked against musl, dynamically: it runs only where musl's loader is /lib/ld-musl-x86_64.so.1, as on Alpine. */
export function muslHello(dir: string): string {
  sh('musl-gcc', ['-Os', '-o', join(dir, 'hello-musl'), helloSource(dir)]);
  return join(dir, 'hello-musl');
}

/** musl's libc, which is also its dynamic loader (Debian's musl package). */
export const MUSL_LIBC = '/lib/x86_64-linux-musl/libc.so';

function helloSource(dir: string): string {
  const src = join(dir, 'hello.c');
  writeFileSync(src, `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int c, char **v) {
  printf("hello");
  for (int i = 1; i < c; i++) printf(" %s", v[i]);
  printf(" uid=%d greeting=%s\\n", (int)getuid(), getenv("GREETING") ? getenv("GREETING") : "-");
  return 0;
}
`);
  return src;
}

/**
 * An image with busybox, a named non-root USER (sci, 1000, also in group lab), a
 * WORKDIR and an ENV, pulled into the store at `home` as base `name`: what a job on an
 * image base must keep wherever it runs.
 */
export function userImageBase(home: string, dir: string, name: string): void {
  const img = umociImage(join(dir, 'user-image'), 'v1', join(dir, 'user-image-bundle'));
  populateBusybox(img.rootfs, busyboxBinary(home, dir), 'root:x:0:0:root:/root:/bin/sh\nsci:x:1000:1000::/home/sci:/bin/sh\n', 'root:x:0:\nsci:x:1000:\nlab:x:2000:sci\n');
  mkdirSync(join(img.rootfs, 'data'));
  img.commit('v1');
  const ref = img.config(['--config.user', 'sci', '--config.workingdir', '/data', '--config.env', 'GREETING=hello']);
  execFileSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'base', 'pull', ref, '--name', name], { env: { ...process.env, VMWU_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A two-job plan whose jobs print their parameter, uid and $GREETING: run on userImageBase, "N 1000 hello". */
export function imageSweepPlan(dir: string): string {
  const plan = join(dir, 'image-sweep.pln');
  writeFileSync(plan, ['parameter i integer range from 1 to 2', 'task main', '    shexec "echo $i $$(id -u) $$GREETING > out.txt"', '    copy node:out.txt root:out-$i', 'endtask', ''].join('\n'));
  return plan;
}
