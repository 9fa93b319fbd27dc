import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { Socket } from 'node:net';
import { PortName } from '../../../guest/protocol.js';
import { parseCtlLine, type CtlMessage } from '../../../src/run/control-port.js';
import { LayerCutter, refuseCut } from '../../../src/run/layer-cut.js';
import { QmpError } from '../../../src/vm/qmp.js';
import type { RunningVm } from '../../../src/vm/launch.js';

/** A VM as far as a cut touches it: QMP commands, the control port's host end, stop. */
function fakeVm(execute: (cmd: string, args: unknown) => Promise<unknown> = () => Promise.resolve({})) {
  const ctl = new PassThrough();
  const written: string[] = [];
  ctl.on('data', (d: Buffer) => written.push(d.toString()));
  const calls: { cmd: string; args: unknown }[] = [];
  let stops = 0;
  const vm = {
    qmp: { execute: (cmd: string, args: unknown) => { calls.push({ cmd, args }); return execute(cmd, args); } },
    ports: new Map([[PortName.ctl, ctl as unknown as Socket]]),
    stop: () => { stops++; return Promise.resolve({ code: 0, signal: null }); },
  } as unknown as RunningVm;
  return { vm, calls, written, stops: () => stops };
}

const msg = (line: string): CtlMessage => parseCtlLine(line)!;
const settle = () => new Promise((r) => setImmediate(r));

test('the control port knows the cut event', () => {
  assert.deepEqual(parseCtlLine('vmwu cut 12.5'), { event: 'cut', args: [], guestUptime: 12.5 });
});

test('only the one cut a build asked for is taken, and only while its job runs', () => {
  const running = { wanted: true, taken: false, stagedIn: true, ended: false };
  assert.equal(refuseCut(running), undefined);
  assert.match(refuseCut({ ...running, wanted: false })!, /asked for no layer cut/);
  assert.match(refuseCut({ ...running, taken: true })!, /taken already/);
  assert.match(refuseCut({ ...running, stagedIn: false })!, /had not started/);
  assert.match(refuseCut({ ...running, ended: true })!, /had ended/);
});

test('a cut snapshots the root drive into the overlay the host named, then says thaw', async () => {
  const f = fakeVm();
  const cutter = new LayerCutter('/scratch/above.qcow2');
  for (const l of ['vmwu ready 1', 'vmwu stagein 2', 'vmwu cut 9']) cutter.onEvent(msg(l), f.vm);
  await settle();
  assert.deepEqual(f.calls, [{ cmd: 'blockdev-snapshot-sync', args: { device: 'root', 'snapshot-file': '/scratch/above.qcow2', format: 'qcow2', mode: 'absolute-paths' } }]);
  assert.deepEqual(f.written, ['thaw\n']);
  assert.equal(cutter.made, true);
  assert.equal(cutter.failure, undefined);
  assert.equal(cutter.missing(), undefined);
  assert.equal(f.stops(), 0);
});

test('an extra cut is refused: the VM is stopped and the run fails with BAD_LAYER_CUT', async () => {
  const f = fakeVm();
  const cutter = new LayerCutter('/scratch/above.qcow2');
  for (const l of ['vmwu stagein 2', 'vmwu cut 9', 'vmwu cut 10']) cutter.onEvent(msg(l), f.vm);
  await settle();
  assert.equal(f.calls.length, 1, 'no second snapshot');
  assert.equal(cutter.failure?.code, 'BAD_LAYER_CUT');
  assert.match(cutter.failure!.message, /taken already/);
  assert.equal(f.stops(), 1);
});

test('a cut in a run that asked for none, or before its job started, is refused without a QMP command', async () => {
  for (const [above, lines] of [[undefined, ['vmwu stagein 2', 'vmwu cut 3']], ['/s/a.qcow2', ['vmwu ready 1', 'vmwu cut 3']], ['/s/a.qcow2', ['vmwu stagein 1', 'vmwu exec 0 2', 'vmwu cut 3']]] as const) {
    const f = fakeVm();
    const cutter = new LayerCutter(above);
    for (const l of lines) cutter.onEvent(msg(l), f.vm);
    await settle();
    assert.equal(f.calls.length, 0, lines.join(', '));
    assert.equal(cutter.failure?.code, 'BAD_LAYER_CUT');
    assert.equal(cutter.made, false);
    assert.deepEqual(f.written, [], 'the guest is not thawed: it is stopped');
    assert.equal(f.stops(), 1);
  }
});

test('a failed snapshot fails the run with LAYER_CUT and stops the VM; nothing is thawed', async () => {
  const f = fakeVm(() => Promise.reject(new QmpError('blockdev-snapshot-sync', 'GenericError', 'Could not create file: Permission denied')));
  const cutter = new LayerCutter('/scratch/above.qcow2');
  for (const l of ['vmwu stagein 2', 'vmwu cut 9']) cutter.onEvent(msg(l), f.vm);
  await settle();
  assert.equal(cutter.failure?.code, 'LAYER_CUT');
  assert.match(cutter.failure!.message, /Permission denied/);
  assert.equal(cutter.made, false);
  assert.deepEqual(f.written, []);
  assert.equal(f.stops(), 1);
});

test('a build whose guest never cut (an agent older than one-boot builds) is an error that says to rebuild the base', () => {
  const f = fakeVm();
  const cutter = new LayerCutter('/scratch/above.qcow2');
  for (const l of ['vmwu stagein 2', 'vmwu exec 0 9']) cutter.onEvent(msg(l), f.vm);
  assert.equal(cutter.missing()?.code, 'LAYER_CUT');
  assert.match(cutter.missing()!.hint!, /rebuild the base/);
  assert.equal(new LayerCutter(undefined).missing(), undefined, 'a run that asked for no cut misses none');
});
