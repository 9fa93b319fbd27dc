import { shellQuote } from '../run/command.js';

/**
 * The shell script a build runs in the guest, as root, with the network up (by the agent). Pure,
 * so what a build does can be read and tested without a VM.
 */
export interface BuildStep {
  packages: string[];
  /** Work-dir input names and their absolute destinations in the guest. */
  files: { input: string; to: string }[];
  /** Name of the setup script in the work dir, if any. */
  setup: string | null;
}

export function buildScript(step: BuildStep): string {
  const lines = ['set -eu', 'export DEBIAN_FRONTEND=noninteractive', 'work=$(pwd)'];
  if (step.packages.length) {
    const pkgs = step.packages.map(shellQuote).join(' ');
    // The agent has brought the network up (a build asks for one).
    lines.push(
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
