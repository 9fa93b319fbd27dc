/**
 * The lines every batch script (Slurm, PBS) runs first on its node: a node that
 * cannot run work units fails its task with a one-line reason, before anything
 * boots. Expects NODE, VMWU_JS and host to be set by the script.
 */
export function nodeCheckLines(qemuHint = ''): string[] {
  return [
    'if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then',
    `  echo "vmwu: node $host cannot run work units: qemu-system-x86_64 is not on PATH${qemuHint}" >&2`,
    '  exit 3',
    'fi',
    'if [ ! -x "$NODE" ] || [ ! -f "$VMWU_JS" ]; then',
    '  echo "vmwu: node $host cannot run work units: vmwu is not installed at $VMWU_JS (with node $NODE)" >&2',
    '  exit 3',
    'fi',
  ];
}
