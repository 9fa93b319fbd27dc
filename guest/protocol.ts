/**
 * The contract between the host and the guest agent (guest/agent, guest/init).
 * Both sides must agree on these names; docs/guest-protocol.md explains them.
 */

/** virtio-blk serial numbers: the guest finds each disk by role, never by probe order. */
export const DiskSerial = {
  root: 'vmwu-root',
  input: 'vmwu-in',
  output: 'vmwu-out',
  app: 'vmwu-app',
  /** A build's own ext4 disk, mounted at /job: no job file reaches the root disk a build keeps as layers. Also a run's --scratch. */
  job: 'vmwu-job',
} as const;

/** Dataset disks are `vmwu-data<n>`; job.env names each (VMWU_DATA_<n>), and the agent mounts it read-only at /data/NAME. */
export const dataDiskSerial = (n: number): string => `vmwu-data${n}`;

/** virtio-console port names (`virtserialport,name=…`). */
export const PortName = {
  ctl: 'vmwu.ctl',
  stdout: 'vmwu.stdout',
  stderr: 'vmwu.stderr',
  /** `vmwu shell`: a virtio console (the guest's /dev/hvc0), the shell's terminal. */
  tty: 'vmwu.tty',
} as const;

/**
 * Control events, one per line: `vmwu <event> [args…] <guest uptime seconds>`.
 * The host timestamps each on arrival; that is where phase timings come from.
 */
export const CtlEvent = ['idle', 'primed', 'ready', 'stagein', 'cut', 'exec', 'stageout', 'off', 'fail'] as const;
export type CtlEventName = (typeof CtlEvent)[number];

/**
 * The host's answers on the control port, one line each: `go …` wakes a clone
 * (src/run/fast-start/clone.ts goLine); `thaw` says the layer is cut after the guest's
 * `cut` (src/run/layer-cut.ts).
 */
export const CtlReply = { thaw: 'thaw' } as const;

/** Kernel modules the initramfs loads, in dependency order (virtio is modular in Debian's cloud kernel). */
export const GuestModules = [
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_mmio',
  // PCI transport: firmware-booted (q35) images see virtio devices on PCI.
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci',
  'drivers/block/virtio_blk',
  'drivers/char/virtio_console',
  'net/core/failover',
  'drivers/net/net_failover',
  'drivers/net/virtio_net',
  // Datasets are erofs images (src/data/add.ts); erofs needs libcrc32c.
  'lib/libcrc32c',
  'fs/erofs/erofs',
] as const;

/** Where the input disk's tar puts things (relative to the guest's /job/in). */
export const InputLayout = {
  env: 'job.env',
  cmd: 'cmd',
  /** A build's second command: run after the layer cut, when `cmd` succeeded. */
  cmdAfterCut: 'cmd-after-cut',
  /** `--stdin FILE`: the job's standard input (the command opens it: `exec <../in/stdin`). */
  stdin: 'stdin',
  /** A shell script the command may source (`. ../in/script`): a sweep job's, which so is no file of its work dir. */
  script: 'script',
  inputs: 'inputs',
} as const;

/**
 * The guest's view of its network when a job or build asks for one (passt on the
 * host, src/vm/network.ts): a fixed private address, a gateway, and a DNS address
 * that passt forwards to the host's resolver. The agent sets them up from
 * VMWU_NET_* in job.env.
 */
export const GuestNetwork = {
  address: '10.0.2.15',
  prefixLength: 24,
  gateway: '10.0.2.2',
  dns: '10.0.2.3',
} as const;

/**
 * In a container image's root (kernel command line vmwu.root=image), where vmwu's own
 * tools are: busybox and its applets (bin/), the agent, and the helpers wake and
 * run-as, in a tmpfs guest/init mounts. Nothing of it is in the image's layers.
 */
export const ImageTools = {
  dir: '/.vmwu',
  runAs: '/.vmwu/run-as',
  /** The kernel command line word that boots an image's root this way. */
  cmdline: 'vmwu.root=image',
} as const;
