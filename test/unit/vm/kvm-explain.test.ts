import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainAccel, explanationLines, type KvmFacts } from '../../../src/vm/kvm-explain.js';

const denied = 'KVM probe boot failed (exit 1): qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied';
const base: KvmFacts = {
  verdict: { accel: 'tcg', reason: 'KVM probe boot failed (exit 1): qemu-system-x86_64: KVM_RUN failed: Invalid argument' },
  devKvm: 'accessible', devKvmMode: { mode: 0o20660, gid: 108 }, pvm: false, accelEnv: undefined, probeBase: 'tiny', probeTimeoutMs: 6000,
};

test('a failed probe on a PVM host: what was tried, what failed, that PVM boots only PVM guest kernels, and both ways out', () => {
  const e = explainAccel({ ...base, pvm: true });
  assert.match(e.tried!, /probe boot of base tiny's kernel under KVM \(qemu -accel kvm, 6 s to finish\), then TCG/);
  assert.equal(e.failed, 'qemu-system-x86_64: KVM_RUN failed: Invalid argument (QEMU: exit 1)');
  assert.equal(e.why.length, 1);
  assert.match(e.why[0]!, /KVM is PVM \(\/sys\/module\/kvm_pvm is loaded\): it boots only guest kernels built for PVM \(CONFIG_PVM_GUEST\)/);
  assert.match(e.why[0]!, /the Debian kernel that vmwu's bases boot is not one/);
  assert.equal(e.wayOut.length, 2);
  assert.match(e.wayOut[0]!, /^VMWU_ACCEL=tcg skips the probe/);
  assert.match(e.wayOut[1]!, /guest kernel built for PVM/);
  const lines = explanationLines(e, '  ');
  assert.deepEqual(lines.map((l) => l.slice(0, 11)), ['  tried:   ', '  failed:  ', '  why:     ', '  way out: ', '       or: ']);
});

test('the same failure without PVM: no PVM talk, the TCG way out only', () => {
  const e = explainAccel(base);
  assert.ok(e.why.every((w) => !/PVM/.test(w)));
  assert.match(e.why[0]!, /could not run the guest under KVM/);
  assert.deepEqual(e.wayOut.length, 1);
  assert.ok(e.wayOut.every((w) => !/PVM/.test(w)));
});

test('a hung probe says how long it was given', () => {
  const e = explainAccel({ ...base, verdict: { accel: 'tcg', reason: 'KVM probe boot hung (no exit within 6000 ms); using TCG' } });
  assert.equal(e.failed, 'the guest did not finish booting within 6 s');
  assert.match(e.why[0]!, /hang early in boot/);
  const onPvm = explainAccel({ ...base, pvm: true, verdict: { accel: 'tcg', reason: 'KVM probe boot hung (no exit within 6000 ms); using TCG' } });
  assert.match(onPvm.why[0]!, /PVM/);
});

test('QEMU\'s user refused /dev/kvm (vmwu is root): the mode, the group fix and, on PVM, PVM too', () => {
  const e = explainAccel({ ...base, pvm: true, qemuUser: 'vmwu-qemu', devKvmMode: { mode: 0o20600, gid: 0 }, verdict: { accel: 'tcg', reason: denied } });
  assert.equal(e.failed, 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied (QEMU: exit 1)');
  assert.match(e.why[0]!, /QEMU runs as vmwu-qemu .* cannot open \/dev\/kvm \(mode 0600, group root\)/);
  assert.match(e.why[1]!, /PVM/);
  // On PVM, opening /dev/kvm alone would not boot Debian's kernel: no "then VMWU_ACCEL=kvm".
  assert.match(e.wayOut[0]!, /^VMWU_ACCEL=tcg/);
  assert.match(e.wayOut[1]!, /built for PVM .*once QEMU can open \/dev\/kvm \(.*chmod 0660 \/dev\/kvm/);
  assert.ok(e.wayOut.every((w) => !/VMWU_ACCEL=kvm/.test(w)));
  const noPvm = explainAccel({ ...base, qemuUser: 'vmwu-qemu', devKvmMode: { mode: 0o20600, gid: 0 }, verdict: { accel: 'tcg', reason: denied } });
  assert.equal(noPvm.why.length, 1);
  assert.match(noPvm.wayOut[0]!, /chmod 0660 \/dev\/kvm.*then VMWU_ACCEL=kvm uses KVM/);
  assert.match(noPvm.wayOut[1]!, /^VMWU_ACCEL=tcg/);
  const notRoot = explainAccel({ ...base, verdict: { accel: 'tcg', reason: denied } });
  assert.match(notRoot.why[0]!, /refused \/dev\/kvm/);
  assert.match(notRoot.wayOut[0]!, /adduser \$USER kvm/);
});

test('no /dev/kvm, or no access to it: nothing was tried, and the reason why', () => {
  const absent = explainAccel({ ...base, devKvm: 'absent', pvm: true, verdict: { accel: 'tcg', reason: 'no /dev/kvm on this host' } });
  assert.match(absent.tried!, /^nothing/);
  assert.match(absent.why[0]!, /no \/dev\/kvm/);
  assert.equal(absent.failed, undefined);
  const noAccess = explainAccel({ ...base, devKvm: 'no access', verdict: { accel: 'tcg', reason: 'no read/write access to /dev/kvm (join the kvm group)' } });
  assert.match(noAccess.wayOut[0]!, /adduser \$USER kvm/);
});

test('no base to probe with yet: silent, except on PVM, where the coming failure is foretold', () => {
  const verdict = { accel: 'tcg' as const, reason: 'no base to probe KVM with yet (build one: vmwu base build tiny)' };
  assert.deepEqual(explanationLines(explainAccel({ ...base, verdict })), []);
  const pvm = explainAccel({ ...base, verdict, pvm: true });
  assert.match(pvm.why[0]!, /PVM/);
  assert.match(pvm.wayOut[0]!, /VMWU_ACCEL=tcg/);
});

test('KVM works: nothing to explain', () => {
  assert.deepEqual(explanationLines(explainAccel({ ...base, verdict: { accel: 'kvm', reason: 'KVM probe boot finished in 900 ms' } })), []);
});

test('VMWU_ACCEL: forced tcg needs no words; forced kvm on PVM warns; a value other than kvm or tcg is said to be ignored', () => {
  assert.deepEqual(explanationLines(explainAccel({ ...base, accelEnv: 'tcg', verdict: { accel: 'tcg', reason: 'forced by VMWU_ACCEL' } })), []);
  const kvm = explainAccel({ ...base, pvm: true, accelEnv: 'kvm', verdict: { accel: 'kvm', reason: 'forced by VMWU_ACCEL' } });
  assert.match(kvm.tried!, /VMWU_ACCEL=kvm chose KVM without a probe/);
  assert.match(kvm.why[0]!, /PVM/);
  assert.match(kvm.wayOut[0]!, /VMWU_ACCEL=tcg/);
  const odd = explainAccel({ ...base, accelEnv: 'KVM' });
  assert.match(odd.why[0]!, /VMWU_ACCEL=KVM is neither kvm nor tcg, so it is ignored/);
});
