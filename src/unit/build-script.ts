import { shellQuote } from '../run/command.js';

/**
 * The shell script a build runs in the guest, as root, with the network up. Pure,
 * so what a build does can be read and tested without a VM.
 */
export interface BuildStep {
  packages: string[];
  /** Work-dir input names and their absolute destinations in the guest. */
  files: { input: string; to: string }[];
  /** Name of the setup script in the work dir, if any. */
  setup: string | null;
}

// QEMU's user-mode network is always 10.0.2.0/24 with the gateway at .2 and DNS at .3.
const network = [
  'busybox ip link set lo up',
  'busybox ip link set eth0 up',
  'busybox ip addr add 10.0.2.15/24 dev eth0',
  'busybox ip route add default via 10.0.2.2',
  'echo "nameserver 10.0.2.3" > /etc/resolv.conf',
];

export function buildScript(step: BuildStep): string {
  const lines = ['set -eu', 'export DEBIAN_FRONTEND=noninteractive', 'work=$(pwd)'];
  if (step.packages.length) {
    const pkgs = step.packages.map(shellQuote).join(' ');
    lines.push(
      ...network,
      'echo "vmwu-build: installing packages:" ' + pkgs,
      // The base ships package lists; refresh them only when they are too old to install from.
      `if ! apt-get install -y -q --no-install-recommends ${pkgs}; then`,
      '  echo "vmwu-build: install failed; refreshing package lists and retrying"',
      '  apt-get update -q',
      `  apt-get install -y -q --no-install-recommends ${pkgs}`,
      'fi',
      'apt-get clean',
    );
  }
  for (const f of step.files) {
    lines.push(`mkdir -p ${shellQuote(f.to)}`,
      `if [ -d "$work/${f.input}" ]; then cp -a "$work/${f.input}/." ${shellQuote(f.to + '/')}; else cp -a "$work/${f.input}" ${shellQuote(f.to + '/')}; fi`);
  }
  if (step.setup) lines.push('echo "vmwu-build: running setup"', 'cd /', `sh "$work/${step.setup}"`);
  lines.push('echo "vmwu-build: done"');
  return lines.join('\n') + '\n';
}
