import { PortName } from '../../guest/protocol.js';
import type { RunningVm } from '../vm/launch.js';
import type { VmSpec } from '../vm/spec.js';
import { ControlPort, type CtlMessage } from './control-port.js';
import { type PhaseClock } from './phase-clock.js';
import type { InstancePaths } from './instance.js';
import { CONSOLE_CAP, LOG_CAP, sinkToFile } from './logsink.js';

/** A launched instance's streams wired up: its stdout, stderr and console into capped log files, and its control port's events to the phase clock. */

/** A launched instance with its streams wired: logs to files (capped), control events to the phase clock. */
export interface Started {
  vm: RunningVm;
  /** What it was launched as: a checkpoint records it. */
  spec: VmSpec;
  /** The template's root overlay the instance's own sits on, when it is a clone. */
  parent?: string;
  /** Bytes of stdout and stderr taken so far. */
  logged: { stdout: { bytes: number }; stderr: { bytes: number } };
  ctl: ControlPort;
  /** Settle when the VM's streams have closed and the log files are written. */
  sinks: Promise<unknown>;
  /** True once the agent says ready; false if the VM ended first. */
  ready: Promise<boolean>;
}

export interface StreamHooks {
  onOutput?(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Each control event, with the VM it came from (a layer cut acts on it). */
  onEvent?(msg: CtlMessage, vm: RunningVm): void;
}

export function attachStreams(vm: RunningVm, spec: VmSpec, p: InstancePaths, clock: PhaseClock, hooks: StreamHooks,
  logged: Started['logged'] = { stdout: { bytes: 0 }, stderr: { bytes: 0 } }): Started {
  const sinks = Promise.all([
    sinkToFile(vm.ports.get(PortName.stdout)!, p.logs.stdout, LOG_CAP, (c) => hooks.onOutput?.('stdout', c), logged.stdout),
    sinkToFile(vm.ports.get(PortName.stderr)!, p.logs.stderr, LOG_CAP, (c) => hooks.onOutput?.('stderr', c), logged.stderr),
    sinkToFile(vm.console, p.logs.console, CONSOLE_CAP),
  ]);
  let onReady: (ok: boolean) => void = () => undefined;
  const ready = new Promise<boolean>((resolve) => {
    onReady = resolve;
    void vm.exited.then(() => resolve(false));
  });
  const ctl = new ControlPort((msg) => {
    clock.mark(msg.event);
    if (msg.event === 'ready') onReady(true);
    // The agent says `off` once what it wrote is flushed to its disks: QEMU quits now rather than after the guest's reset.
    if (msg.event === 'off') void vm.stop();
    hooks.onEvent?.(msg, vm);
  });
  vm.ports.get(PortName.ctl)!.setEncoding('utf8').on('data', (d: string) => ctl.push(d));
  return { vm, spec, logged, ctl, sinks, ready };
}
