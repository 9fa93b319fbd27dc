import { FORCED, PROBE_FAILED, PROBE_HUNG, type AccelVerdict } from './accel.js';

/**
 * `vmwu doctor`'s account of the accelerator verdict: what vmwu tried, what failed, why
 * (as far as this host's facts tell) and the way out. Pure: the doctor gathers the facts.
 */

export interface KvmFacts {
  verdict: Pick<AccelVerdict, 'accel' | 'reason'>;
  /** /dev/kvm as vmwu's own user finds it. */
  devKvm: 'absent' | 'no access' | 'accessible';
  /** Mode bits and group of /dev/kvm, when it exists. */
  devKvmMode?: { mode: number; gid: number };
  /** /sys/module/kvm_pvm exists: the host's KVM is PVM (pagetable-based virtual machine). */
  pvm: boolean;
  /** VMWU_ACCEL as set (decideAccel honours only `kvm` and `tcg`). */
  accelEnv: string | undefined;
  /** The user QEMU runs as when that is not vmwu's own (vmwu is root and drops to it). */
  qemuUser?: string;
  /** The base whose kernel the probe boots. */
  probeBase?: string;
  probeTimeoutMs: number;
}

export interface KvmExplanation {
  tried?: string;
  failed?: string;
  why: string[];
  wayOut: string[];
}

const PVM_WHY = 'this host\'s KVM is PVM (/sys/module/kvm_pvm is loaded): it boots only guest kernels built for PVM (CONFIG_PVM_GUEST), '
  + 'and the Debian kernel that vmwu\'s bases boot is not one';
const PVM_WAY = 'a guest kernel built for PVM (CONFIG_PVM_GUEST=y) would let jobs use it';
const SKIP_PROBE = 'VMWU_ACCEL=tcg skips the probe (jobs run under TCG, as they do now, slower but the same)';

/** What follows the reason of a failed or hung probe: QEMU's last line of stderr, or the time it was given. */
function failedText(reason: string): string {
  const detail = /^[^(]*\((.*?)\)(?:: (.*))?$/s.exec(reason);
  if (!detail) return reason;
  return `${detail[2] || 'QEMU said nothing'} (QEMU: ${detail[1]})`;
}

export function explainAccel(f: KvmFacts): KvmExplanation {
  const why: string[] = [];
  const wayOut: string[] = [];
  const env = f.accelEnv;
  if (env !== undefined && env !== '' && env !== 'kvm' && env !== 'tcg') why.push(`VMWU_ACCEL=${env} is neither kvm nor tcg, so it is ignored`);

  if (f.verdict.reason === FORCED) {
    const e: KvmExplanation = { tried: `nothing: VMWU_ACCEL=${f.verdict.accel} chose ${f.verdict.accel.toUpperCase()} without a probe`, why, wayOut };
    if (f.verdict.accel === 'kvm' && f.pvm) {
      why.push(PVM_WHY);
      wayOut.push('unset VMWU_ACCEL (the probe then falls back to TCG) or set VMWU_ACCEL=tcg', PVM_WAY);
    }
    return e;
  }
  if (f.verdict.accel === 'kvm') return { why, wayOut };

  if (f.devKvm === 'absent') {
    why.push('there is no /dev/kvm: the kvm module is not loaded, the CPU has no virtualization extensions, or this is a VM without nested virtualization');
    wayOut.push('load kvm_intel or kvm_amd (or enable nested virtualization on the VM host); until then jobs run under TCG, slower but the same');
    return { tried: 'nothing: without /dev/kvm there is no KVM to probe', why, wayOut };
  }
  if (f.devKvm === 'no access') {
    why.push('vmwu\'s user cannot open /dev/kvm for reading and writing');
    wayOut.push('join the group of /dev/kvm (sudo adduser $USER kvm, then log in again)', SKIP_PROBE);
    return { tried: 'nothing: /dev/kvm is not usable by this user', why, wayOut };
  }
  const probing = f.verdict.reason.startsWith(PROBE_FAILED) || f.verdict.reason.startsWith(PROBE_HUNG);
  if (!probing) {
    // No base to probe with yet (the reason says what to do): on PVM the probe to come will fail, and why is known now.
    if (f.pvm) {
      why.push(PVM_WHY);
      wayOut.push(SKIP_PROBE, PVM_WAY);
    }
    return { tried: 'no probe yet (no base whose kernel it could boot)', why, wayOut };
  }

  const tried = `a probe boot of ${f.probeBase ? `base ${f.probeBase}'s` : 'a base\'s'} kernel under KVM (qemu -accel kvm, ${Math.round(f.probeTimeoutMs / 100) / 10} s to finish)`
    + ', then TCG when it did not';
  const hung = f.verdict.reason.startsWith(PROBE_HUNG);
  const failed = hung ? `the guest did not finish booting within ${Math.round(f.probeTimeoutMs / 100) / 10} s` : failedText(f.verdict.reason);
  const denied = !hung && /permission denied/i.test(f.verdict.reason);
  let accessFix: string | undefined;
  if (denied && f.qemuUser) {
    const m = f.devKvmMode;
    const mode = m ? ` (mode ${(m.mode & 0o777).toString(8).padStart(4, '0')}${m.gid === 0 ? ', group root' : ''})` : '';
    why.push(`QEMU runs as ${f.qemuUser} (vmwu drops root for it), and that user cannot open /dev/kvm${mode}`);
    accessFix = 'give /dev/kvm a group with read and write (chgrp kvm /dev/kvm; chmod 0660 /dev/kvm, as udev\'s default rule does): vmwu adds QEMU\'s user to it';
  } else if (denied) {
    why.push('QEMU was refused /dev/kvm');
    accessFix = 'join the group of /dev/kvm (sudo adduser $USER kvm, then log in again)';
  }
  // On PVM, access alone would not help (Debian's kernel still would not boot): no "then VMWU_ACCEL=kvm" there.
  if (accessFix && !f.pvm) wayOut.push(`${accessFix}; then VMWU_ACCEL=kvm uses KVM (this verdict stays cached for this kernel and QEMU)`);
  if (f.pvm) why.push(PVM_WHY);
  else if (!denied) why.push(hung ? 'on some hosts KVM guests hang early in boot (often nested virtualization without the features the guest kernel needs)' : 'QEMU could not run the guest under KVM (its message is above)');
  wayOut.push(SKIP_PROBE);
  if (f.pvm) wayOut.push(accessFix ? `${PVM_WAY}, once QEMU can open /dev/kvm (${accessFix})` : PVM_WAY);
  return { tried, failed, why, wayOut };
}

/** The explanation as the doctor's indented lines under `accelerator` (none when KVM works). */
export function explanationLines(e: KvmExplanation, indent = '             '): string[] {
  const lines: string[] = [];
  if (e.tried && (e.why.length || e.failed)) lines.push(`${indent}tried:   ${e.tried}`);
  if (e.failed) lines.push(`${indent}failed:  ${e.failed}`);
  for (const w of e.why) lines.push(`${indent}why:     ${w}`);
  e.wayOut.forEach((w, i) => lines.push(`${indent}${i ? '     or' : 'way out'}: ${w}`));
  return lines;
}
