import { CtlReply, PortName } from '../../guest/protocol.js';
import { VmwuError } from '../errors.js';
import type { RunningVm } from '../vm/launch.js';
import type { CtlMessage } from './control-port.js';

/**
 * The layer cut of a one-boot build (docs/guest-protocol.md): the guest runs the
 * package step, freezes its root filesystem and says `cut`; the host snapshots
 * the root drive into a new overlay (QMP `blockdev-snapshot-sync`), so the old
 * overlay holds exactly the package step and becomes its layer; it answers
 * `thaw`, and the guest runs the app step into the new overlay.
 */

/** What the host has seen of a run, as far as a cut depends on it. */
export interface CutState {
  /** The run is a build that asked for a cut. */
  wanted: boolean;
  taken: boolean;
  /** The agent said `stagein` (its job runs) and not yet `exec` (it ended). */
  stagedIn: boolean;
  ended: boolean;
}

/**
 * Why a guest's `cut` is refused, or undefined when the host cuts. The guest is
 * untrusted, and a cut is a QMP command on the host: only the one cut the build
 * asked for is taken, and only while its job runs. Pure.
 */
export function refuseCut(s: CutState): string | undefined {
  if (!s.wanted) return 'this run asked for no layer cut';
  if (s.taken) return 'its one layer cut was taken already';
  if (!s.stagedIn) return 'its job had not started';
  if (s.ended) return 'its job had ended';
  return undefined;
}

const CUT_TIMEOUT_MS = 60_000;

/**
 * The host's side of cuts for one run: every run has one, so that a `cut` from a
 * run that asked for none is refused too. A refusal or a failed cut stops the VM
 * (the guest would wait frozen) and is the run's error; nothing of it is kept.
 */
export class LayerCutter {
  private readonly state: CutState;
  private failed: VmwuError | undefined;
  private done = false;

  /** `above`: where QEMU makes the overlay above the cut; undefined when the run asked for no cut. */
  constructor(private readonly above: string | undefined, private readonly timeoutMs = CUT_TIMEOUT_MS) {
    this.state = { wanted: above !== undefined, taken: false, stagedIn: false, ended: false };
  }

  /**
   * Whether the root was cut: QEMU made the overlay above the cut, having
   * flushed the one below, which is whole from then on, however the run ends.
   */
  get made(): boolean {
    return this.done;
  }

  /** Why the run ended at a cut, if it did. */
  get failure(): VmwuError | undefined {
    return this.failed;
  }

  /** Each control event of the run, in order. */
  onEvent(msg: CtlMessage, vm: RunningVm): void {
    if (msg.event === 'stagein') this.state.stagedIn = true;
    if (msg.event === 'exec') this.state.ended = true;
    if (msg.event !== 'cut' || this.failed) return;
    const refused = refuseCut(this.state);
    if (refused) {
      this.fail(vm, new VmwuError('BAD_LAYER_CUT', `the guest asked for a layer cut, which was refused: ${refused}`,
        'nothing of this run is kept; the guest agent does this only once, in a build: check the base (vmwu base show)'));
      return;
    }
    this.state.taken = true;
    void this.cut(vm);
  }

  /**
   * After a run whose guest succeeded: the error when a cut was asked for and
   * never came (the base's agent predates one-boot builds), else undefined.
   */
  missing(): VmwuError | undefined {
    if (!this.state.wanted || this.state.taken) return undefined;
    return new VmwuError('LAYER_CUT', 'the guest ran the build without cutting its layers: its base\'s agent predates one-boot builds',
      'rebuild the base (vmwu base build debian), or import it again with the current guest/agent');
  }

  private async cut(vm: RunningVm): Promise<void> {
    try {
      // QEMU makes the new overlay (named by the host, in the run's scratch directory) on the drive's current one, and writes only to it from now on.
      await vm.qmp.execute('blockdev-snapshot-sync', { device: 'root', 'snapshot-file': this.above, format: 'qcow2', mode: 'absolute-paths' },
        { timeoutMs: this.timeoutMs });
      this.done = true;
      vm.ports.get(PortName.ctl)!.write(`${CtlReply.thaw}\n`);
    } catch (e) {
      this.fail(vm, new VmwuError('LAYER_CUT', `cutting the build's layer failed: ${(e as Error).message}`,
        'nothing was kept; run the build again, and `vmwu doctor` if it fails again', { cause: e }));
    }
  }

  private fail(vm: RunningVm, e: VmwuError): void {
    this.failed ??= e;
    void vm.stop(500);
  }
}
