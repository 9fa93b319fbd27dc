import { launchQemu, type RunningVm } from './launch.js';
import type { VmSpec } from './spec.js';

/**
 * What the run path needs from a hypervisor. QEMU is the one driver today; the
 * interface is where another (Firecracker, cloud-hypervisor) or a remote one (an
 * executor that boots on another host) plugs in without touching src/run.
 */

export interface HypervisorDriver {
  readonly name: string;
  /** Starts the VM described by `spec`; resolves once its QMP and streams are connected. */
  launch(spec: VmSpec, opts?: { startTimeoutMs?: number }): Promise<RunningVm>;
}

export const qemuDriver: HypervisorDriver = {
  name: 'qemu',
  launch: launchQemu,
};
