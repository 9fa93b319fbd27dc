import { shellQuote } from '../run/command.js';
import type { PackageManager } from '../store/bases.js';

/**
 * The shell script a build runs in the guest, as root, with the network up (by the agent). Pure,
 * so what a build does can be read and tested without a VM.
 */

export interface BuildStep {
  packages: string[];
  /**
   * Work-dir input names, their absolute destinations in the guest and the source's
   * own name: a directory's contents go into `to`; a file becomes `to`, or goes into
   * it under its own name when `to` ends in `/` or is a directory already (as cp does).
   */
  files: { input: string; to: string; name: string }[];
  /** Name of the setup script in the work dir, if any. */
  setup: string | null;
  /** Package lists pruned to what `packages` may pull in (src/unit/build-lists.ts), tried first: their work-dir name and how many stanzas they hold. */
  lists?: { dir: string; stanzas: number };
}

export function buildScript(step: BuildStep, packageManager: PackageManager = 'apt'): string {
  const lines = ['set -eu', 'export DEBIAN_FRONTEND=noninteractive', 'work=$(pwd)'];
  if (step.packages.length && packageManager === 'apk') {
    // Alpine: apk fetches its index itself; --no-cache keeps it out of the layer.
    const pkgs = step.packages.map(shellQuote).join(' ');
    lines.push('echo "vmwu-build: installing packages:" ' + pkgs, `apk add --no-cache ${pkgs}`);
  } else if (step.packages.length) {
    const pkgs = step.packages.map(shellQuote).join(' ');
    // The agent has brought the network up (a build asks for one). What apt
    // writes only for itself stays out of the layer: the .debs go to the job
    // disk (the agent mounts /job apart from the root), and the cache of the
    // installed packages (pkgcache.bin, ~37 MB, stale after this install anyway)
    // is kept in memory; the base's cache of the package lists is used as it is.
    // dpkg-preconfigure (debconf, in Perl: ~1 s under TCG) is left out: it
    // would only ask debconf's questions early, and noninteractive debconf
    // answers them with their defaults when the packages are configured anyway.
    lines.push(
      'archives="$work/../apt-archives"',
      'mkdir -p "$archives/partial"',
      'chown _apt "$archives/partial" 2>/dev/null || true',
      `echo '#clear DPkg::Pre-Install-Pkgs;' > "$work/../apt.conf"`,
      'apt_get() { apt-get -c "$work/../apt.conf" -y -q --no-install-recommends -o Dir::Cache::pkgcache= -o "Dir::Cache::Archives=$archives/" "$@"; }',
      'echo "vmwu-build: installing packages:" ' + pkgs,
      'installed=',
      // Lists that hold only what these packages may pull in: apt decides the same install
      // in a fraction of the time it takes over all of Debian's. Whatever they lack, the whole lists have.
      ...(step.lists ? [
        `echo "vmwu-build: apt is given only the ${step.lists.stanzas} package versions these may pull in"`,
        `mkdir -p "$work/${step.lists.dir}/partial"`,
        `if apt_get -o "Dir::State::Lists=$work/${step.lists.dir}" -o Dir::Cache::srcpkgcache= install ${pkgs}; then installed=1; `
        + 'else echo "vmwu-build: install from the packages\' own lists failed; retrying from the whole lists"; fi',
      ] : []),
      // The base ships package lists; refresh them only when they are too old to install from.
      `if [ -z "$installed" ] && ! apt_get install ${pkgs}; then`,
      '  echo "vmwu-build: install failed; refreshing package lists and retrying"',
      '  apt_get update',
      `  apt_get install ${pkgs}`,
      'fi',
    );
  }
  for (const f of step.files) {
    const dir = f.to.replace(/\/$/, '');
    const asFile = f.to.endsWith('/') ? `${f.to}${f.name}` : f.to;
    const parent = asFile.slice(0, asFile.lastIndexOf('/')) || '/';
    lines.push(`if [ -d "$work/${f.input}" ]; then mkdir -p ${shellQuote(dir)} && cp -a "$work/${f.input}/." ${shellQuote(`${dir}/`)}; `
      + `elif [ -d ${shellQuote(dir)} ]; then cp -a "$work/${f.input}" ${shellQuote(`${dir}/${f.name}`)}; `
      + `else mkdir -p ${shellQuote(parent)} && cp -a "$work/${f.input}" ${shellQuote(asFile)}; fi`);
  }
  if (step.setup) lines.push('echo "vmwu-build: running setup"', 'cd /', `sh "$work/${step.setup}"`);
  lines.push('echo "vmwu-build: done"');
  return lines.join('\n') + '\n';
}
