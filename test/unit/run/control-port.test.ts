import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ControlPort, CTL_BYTES_CAP, KEPT_FAILURES, LineSplitter, parseCtlLine } from '../../../src/run/control-port.js';
import { PhaseClock } from '../../../src/run/phase-clock.js';

test('control lines parse; malformed ones are ignored', () => {
  assert.deepEqual(parseCtlLine('vmwu ready 1.52'), { event: 'ready', args: [], guestUptime: 1.52 });
  assert.deepEqual(parseCtlLine('vmwu exec 3 2.10'), { event: 'exec', args: ['3'], guestUptime: 2.1 });
  assert.deepEqual(parseCtlLine('vmwu fail no disk with serial vmwu-in 1.0'), { event: 'fail', args: ['no', 'disk', 'with', 'serial', 'vmwu-in'], guestUptime: 1 });
  assert.equal(parseCtlLine('vmwu bogus 1.0'), undefined);
  assert.equal(parseCtlLine('hello'), undefined);
  assert.equal(parseCtlLine('vmwu ready ' + 'x'.repeat(5000)), undefined);
});

test('the line splitter joins chunks and drops over-long lines', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push('vmwu re');
  s.push('ady 1\nvmwu stagein 2\nvm');
  s.push('wu exec 0 3\n');
  s.push('y'.repeat(10_000));
  s.push('\nvmwu off 4\n');
  assert.deepEqual(lines, ['vmwu ready 1', 'vmwu stagein 2', 'vmwu exec 0 3', 'vmwu off 4']);
});

test('phases are the gaps between marks; a missing mark folds into the next phase', () => {
  let now = 0;
  const c = new PhaseClock(() => now);
  c.mark('start'); now = 10; c.mark('prepared'); now = 2010; c.mark('ready'); now = 2060; c.mark('stagein');
  now = 3060; c.mark('exec'); now = 3100; c.mark('stageout'); now = 3300; c.mark('exited'); now = 3320; c.mark('collected');
  assert.deepEqual(c.phases(), { template: 0, prepare: 10, boot: 2000, restore: 0, stageIn: 50, exec: 1000, stageOut: 40, shutdown: 200, collect: 20 });
  assert.equal(c.total(), 3320);
  const d = new PhaseClock(() => now);
  now = 0; d.mark('start'); now = 5; d.mark('prepared'); now = 9000; d.mark('exited');
  assert.deepEqual(d.phases(), { template: 0, prepare: 5, boot: 0, restore: 0, stageIn: 0, exec: 0, stageOut: 0, shutdown: 8995, collect: 0 });
  now = 9001; d.mark('exited');
  assert.equal(d.phases().shutdown, 8995, 'the first mark of a name wins');
  const r = new PhaseClock(() => now);
  r.startedBy = 'restore';
  now = 0; r.mark('start'); now = 10; r.mark('prepared'); now = 400; r.mark('ready');
  assert.equal(r.phases().restore, 390, 'a restored guest spends the time until ready restoring');
  assert.equal(r.phases().boot, 0);
  const t = new PhaseClock(() => now);
  t.startedBy = 'restore';
  now = 0; t.mark('start'); now = 20; t.mark('templating'); now = 3020; t.mark('templated'); now = 3050; t.mark('prepared'); now = 3300; t.mark('ready');
  assert.deepEqual([t.phases().template, t.phases().prepare, t.phases().restore], [3000, 50, 250], 'making the template is a phase of its own, out of the preparation');
});

test('the control port keeps a bounded amount whatever the guest writes (the review\'s 627 MB of `vmwu fail`)', () => {
  let seen = 0;
  const port = new ControlPort(() => seen++);
  const line = `vmwu fail ${'x'.repeat(4000)} 1.0\n`;
  const chunk = line.repeat(256); // ~1 MB
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 100; i++) port.push(chunk);
  assert.equal(port.failures.length, KEPT_FAILURES);
  assert.ok(seen * line.length <= CTL_BYTES_CAP, `only the first ${CTL_BYTES_CAP} bytes were read (${seen} messages)`);
  assert.ok(process.memoryUsage().heapUsed - before < 32 * 1024 * 1024, 'nothing of the 100 MB was kept');
  const fresh = new ControlPort(() => undefined);
  fresh.push('vmwu ready 0.5\nvmwu fail no disk 1.0\n');
  assert.deepEqual(fresh.failures, ['no disk']);
});
