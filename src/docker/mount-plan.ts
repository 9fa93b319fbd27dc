import { posix } from 'node:path';
import { VmwuError } from '../errors.js';
import { shellQuote } from '../run/command.js';
import type { BindMount } from './run-options.js';

/**
 * Bind mounts as a VM job has them: each source travels into the guest's work dir
 * as an input (`.vmwu-mount-N`) and is bind-mounted on its target before the
 * command runs (as root, before it becomes the image's user), read-only where asked.
 * Bind mounts, not links, so a target can be a directory the image already mounts
 * (cwltool mounts its scratch dir on /tmp) and `pwd` and `..` behave as in docker.
 * What a job writes under a read-write mount comes back in its outputs and is copied
 * into the source when it ends; writes under a read-only one fail, as in docker.
 * A read-only source made into an image (src/docker/volume-images.ts) comes as a
 * dataset instead: bound from where the guest mounted it, which is then taken away.
 * Pure.
 */

export interface MountPlan {
  inputs: { path: string; name: string }[];
  /** Shell lines that put each target in place. */
  setup: string[];
  /**
   * Lines that unmount them again once the command ended, children first, and take
   * away the mount points they had to make: a mount inside a read-write one (cwltool
   * puts its InitialWorkDir files into its output directory so) would otherwise come
   * back as an empty file among the outputs.
   */
  teardown: string[];
  /** The work-dir names to keep as outputs, and where each goes back to on the host. */
  copyBack: { name: string; source: string }[];
}

export const mountName = (i: number) => `.vmwu-mount-${i}`;

/** The dataset name of mount `i` when its source comes as an image (a guest path component: /data/NAME). */
export const volumeDatasetName = (i: number) => `vmwu-volume-${i}`;

/** Mounts whose source is an image: by mount index, with the file's name when the source is one file (the image holds it at its root). */
export type ImagedMounts = Map<number, { file?: string }>;

export function planMounts(mounts: BindMount[], imaged: ImagedMounts = new Map()): MountPlan {
  const plan: MountPlan = { inputs: [], setup: [], teardown: [], copyBack: [] };
  const targets = new Set<string>();
  // Parents first: a mount inside another's target must be made after it.
  const order = mounts.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.target) - depth(b.m.target));
  for (const { m, i } of order) {
    const target = posix.normalize(m.target).replace(/\/+$/, '') || '/';
    if (!posix.isAbsolute(m.target)) throw new VmwuError('DOCKER_OPTION', `docker run: invalid mount path: '${m.target}' mount path must be absolute`);
    if (target === '/') throw new VmwuError('DOCKER_OPTION', `docker run: cannot mount over ${m.target}`, 'mount under a directory of the image, e.g. /data');
    if (targets.has(target)) throw new VmwuError('DOCKER_OPTION', `docker run: ${target} is mounted twice`);
    targets.add(target);
    const name = mountName(i);
    const image = m.readOnly ? imaged.get(i) : undefined;
    const dataDir = `/data/${volumeDatasetName(i)}`;
    if (!image) plan.inputs.push({ path: m.source, name });
    const q = shellQuote(target);
    const src = shellQuote(image ? `${dataDir}${image.file ? `/${image.file}` : ''}` : `/job/work/${name}`);
    const made = `vmwu_made_${i}`;
    plan.setup.push([
      `${made}=`,
      `if [ ! -e ${q} ]; then ${made}=1; mkdir -p ${shellQuote(posix.dirname(target))} || exit 125; if [ -d ${src} ]; then mkdir ${q}; else : > ${q}; fi || exit 125; fi`,
      `mount --bind ${src} ${q} || exit 125`,
      ...(m.readOnly ? [`mount -o remount,bind,ro ${q} || exit 125`] : []),
      // The job sees the source at its target only.
      ...(image ? [`umount ${shellQuote(dataDir)} && rmdir ${shellQuote(dataDir)} || exit 125`] : []),
    ].join('\n'));
    // rmdir and rm -f, never rm -r: should the unmount fail, the mount's contents stay.
    plan.teardown.unshift(`umount ${q}; [ -z "$${made}" ] || rmdir ${q} 2>/dev/null || rm -f ${q} 2>/dev/null`);
    if (!m.readOnly) plan.copyBack.push({ name, source: m.source });
    // What came in read-only has nothing to go back: not carried out again (after every unmount: teardown runs to its end).
    else if (!image) plan.teardown.push(`rm -rf ${src}`);
  }
  return plan;
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}
