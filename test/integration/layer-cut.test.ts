import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runJob } from '../../src/run/run.js';
import { type RunRequest } from '../../src/run/job-request.js';
import { openStore } from '../../src/store/store.js';
import { qemuDriver, type HypervisorDriver } from '../../src/vm/driver.js';
import { QmpError } from '../../src/vm/qmp.js';
import { processesMentioning, testHome, tmp } from '../support/harness.js';

/**
 * The layer cut on the tiny base, through runJob: what a one-boot build does
 * between its two steps (src/run/layer-cut.ts), without apt or a network.
 */
const store = openStore(testHome());
after(() => store.close());

function cutRequest(first: string, second: string): RunRequest & { keepRoot: string; cut: { argv: string[]; keep: string } } {
  const dir = tmp('vmwu-cut-');
  return {
    base: 'tiny', argv: ['sh', '-c', first], keepRoot: join(dir, 'below.qcow2'), cut: { argv: ['sh', '-c', second], keep: join(dir, 'above.qcow2') },
    memoryMiB: 256, cpus: 1, timeoutMs: 120_000, maxOutputBytes: 1024 ** 2, outDir: join(dir, 'out'),
  };
}

/** QEMU whose snapshot command fails, as a full disk or a broken QEMU would make it. */
const failingSnapshots: HypervisorDriver = {
  name: 'qemu-failing-snapshots',
  async launch(spec, o) {
    const vm = await qemuDriver.launch(spec, o);
    const execute = vm.qmp.execute.bind(vm.qmp);
    vm.qmp.execute = ((cmd: string, args?: object, opts?: object) =>
      cmd === 'blockdev-snapshot-sync' ? Promise.reject(new QmpError(cmd, 'GenericError', 'injected failure')) : execute(cmd, args, opts)) as typeof vm.qmp.execute;
    return vm;
  },
};

describe('the layer cut', { concurrency: false, timeout: 240_000 }, () => {
  test('below the cut is what the first command wrote (frozen and flushed), above it what the second wrote', async () => {
    const req = cutRequest('echo below-marker-1 > /below.txt', 'echo above-marker-2 > /above.txt; cat /below.txt');
    const r = await runJob(store, req);
    assert.equal(r.status, 'succeeded', JSON.stringify(r.error));
    assert.equal(r.cut, true);
    assert.deepEqual(r.kept, [req.keepRoot, req.cut.keep]);
    const below = readFileSync(req.keepRoot);
    const above = readFileSync(req.cut.keep);
    assert.ok(below.includes('below-marker-1'), 'the first command\'s file reached the disk before the cut');
    assert.ok(!below.includes('above-marker-2'));
    // (The overlay above may hold bytes of the one below too: qcow2 copies whole 64 KiB clusters on write.)
    assert.ok(above.includes('above-marker-2'));
    assert.equal(readFileSync(join(req.outDir!, 'stdout'), 'utf8'), 'below-marker-1\n', 'above the cut the guest sees the whole root');
    assert.match(readFileSync(join(store.paths.runs, r.id, 'guest-timings'), 'utf8'), /^cut [\d.]+$/m);
  });

  test('the second command failing keeps what is below the cut', async () => {
    const req = cutRequest('echo kept > /kept.txt', 'exit 4');
    const r = await runJob(store, req);
    assert.deepEqual([r.status, r.exitCode, r.cut], ['failed', 4, true]);
    assert.deepEqual(r.kept, [req.keepRoot]);
    assert.ok(readFileSync(req.keepRoot).includes('kept'));
    assert.ok(!existsSync(req.cut.keep));
  });

  test('the first command failing: no cut, nothing kept', async () => {
    const req = cutRequest('exit 3', 'echo never > /never.txt');
    const r = await runJob(store, req);
    assert.deepEqual([r.status, r.exitCode, r.cut, r.kept], ['failed', 3, false, []]);
    assert.ok(!existsSync(req.keepRoot));
  });

  test('a failed snapshot fails the run with LAYER_CUT: nothing kept, no QEMU left', async () => {
    const req = cutRequest('echo one > /one.txt', 'echo two');
    const r = await runJob(store, req, { driver: failingSnapshots });
    assert.equal(r.status, 'error');
    assert.equal(r.error?.code, 'LAYER_CUT');
    assert.match(r.error!.message, /injected failure/);
    assert.deepEqual([r.cut, r.kept], [false, []]);
    assert.ok(!existsSync(req.keepRoot) && !existsSync(req.cut.keep));
    assert.deepEqual(processesMentioning(r.id), []);
  });

  test('a job cannot speak on the control port: no cut, the run is untouched', async () => {
    const dir = tmp('vmwu-cut-');
    const r = await runJob(store, {
      base: 'tiny', argv: ['sh', '-c', 'for p in /dev/vport*; do (echo "vmwu cut 1" > "$p") 2>/dev/null && echo "wrote $p"; done; echo tried'],
      memoryMiB: 256, cpus: 1, timeoutMs: 120_000, maxOutputBytes: 1024 ** 2, outDir: join(dir, 'out'),
    });
    assert.equal(r.status, 'succeeded', JSON.stringify(r.error));
    assert.equal(readFileSync(join(dir, 'out', 'stdout'), 'utf8'), 'tried\n', 'every port is held by the agent');
  });
});
