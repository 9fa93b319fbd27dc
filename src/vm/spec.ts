import type { QemuUser } from './qemu-user.js';

/** What one VM needs, independent of the hypervisor that will run it. */

export type Accel = 'kvm' | 'tcg';

export interface DiskSpec {
  id: string;
  path: string;
  format: 'qcow2' | 'raw';
  /** The guest finds the disk by this serial (see guest/protocol.ts). */
  serial: string;
  readOnly?: boolean;
  /**
   * What the disk's reads fall through to, named here instead of by its header:
   * QEMU opens exactly this graph (src/vm/argv.ts) and nothing the file names.
   * Set for disks that came from another host (a checkpoint's), whose headers
   * are untrusted; absent, QEMU follows the header (vmwu's own overlays).
   */
  backing?: BackingImage;
}

/** A disk under another in an explicit graph: read-only. Without its own `backing`, a store blob: its layer chain is the store's own. */
export interface BackingImage {
  path: string;
  format: 'qcow2' | 'raw';
  backing?: BackingImage;
}

export interface VmSpec {
  name: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  boot: { kind: 'kernel'; kernel: string; initrd: string; cmdline: string } | { kind: 'bios' };
  /**
   * What QEMU loads for `-kernel` and `-initrd` instead of the boot's, for a VM
   * whose RAM comes from a saved state and so runs neither
   * (src/run/fast-start/boot-stub.ts). `boot` still names what the guest runs: a
   * checkpoint records it.
   */
  bootStub?: { kernel: string; initrd: string };
  disks: DiskSpec[];
  /** Unix sockets vmwu listens on; QEMU connects to each as a client at start-up. Absent: not wired (the accelerator probe needs none). */
  qmpSocket?: string;
  consoleSocket?: string;
  /** virtio-serial ports; a `console` one is a virtio console (a tty in the guest, /dev/hvcN). */
  ports: { name: string; socket: string; console?: boolean }[];
  pidfile?: string;
  /** Outbound-only user-mode networking (passt); only builds and jobs that ask for it get a network. */
  network: boolean;
  /** A multi-VM job's private segment (src/vm/job-segment.ts): the hub's socket for this VM, and its MAC there. */
  segment?: { socket: string; mac: string };
  /** Run QEMU (and passt) as this user; set when vmwu is root (src/vm/qemu-user.ts). */
  user?: QemuUser;
  /**
   * Keep QEMU once the guest has powered off (`-no-shutdown`) until vmwu has read
   * its resource use, then quit: a process that has exited has no /proc entry left.
   */
  holdOnShutdown?: boolean;
  /**
   * Guest RAM in a file instead of anonymous memory: a template maps it shared
   * (the RAM stays in the file, the saved state is a few KB), its clones map it
   * privately, copy-on-write (src/run/fast-start/template.ts).
   */
  memoryFile?: { path: string; shared: boolean };
  /**
   * Start paused and load this saved state (src/vm/vm-state.ts): vmwu opens it and
   * QEMU reads it from that fd, which is faster than any stream vmwu could feed.
   */
  incoming?: { state: string };
  /** `-cpu`: src/vm/cpu.ts guestCpuModel; absent: QEMU's default (checkpoints saved before models were chosen), `host` under KVM. */
  cpuModel?: string;
  /** Host TSC frequency, handed to TCG guests so they skip PIT calibration (which hangs ~15 % of boots under TCG). */
  tscKhz?: number;
}
