import { VmwuError } from '../errors.js';
import { onPath } from './host.js';
import { dropArgs, type QemuUser } from './qemu-user.js';

/** The setpriv prefix that every QEMU and passt starts under, so that none outlives vmwu and, when vmwu is root, none runs as root. */

/**
 * The command prefix that ties QEMU's life to ours: `setpriv --pdeathsig KILL`
 * makes the kernel kill QEMU if vmwu dies, even by SIGKILL, so a crash cannot
 * leave a guest running. Reaping on the next start covers hosts without setpriv.
 * With `user`, setpriv also drops to that user first (the death signal is set
 * after the drop, so it survives it).
 */
export function supervisedCommand(argv: string[], user?: QemuUser): [string, string[]] {
  const setpriv = onPath('setpriv');
  if (!setpriv) {
    if (user) throw new VmwuError('NO_SETPRIV', `vmwu runs as root and needs setpriv to start QEMU as ${user.name}`, 'install util-linux');
    return [argv[0]!, argv.slice(1)];
  }
  return [setpriv, [...(user ? dropArgs(user) : []), '--pdeathsig', 'KILL', '--', ...argv]];
}
