import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { processesMentioning, startCli, vmwu, waitFor } from '../support/harness.js';
import { assertReach, hostResolves, reachScript, RESOLVED_TO, startFakeResolver, startNetworkTargets, type NetworkTargets } from '../support/network-targets.js';

const root = process.getuid?.() === 0;

function status(pid: number): Record<string, string> {
  return Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()];
  }));
}

/** Hands a guest script over whole: one argv word, so the agent runs it as written. */
const guest = (script: string, extra: string[] = []) => ['run', '--base', 'tiny', '--timeout', '3m', ...extra, '--', 'sh', '-c', script];

describe('a guest is confined', { concurrency: 2, timeout: 300_000 }, () => {
  let targets: NetworkTargets | undefined;
  before(async () => {
    if (root) targets = await startNetworkTargets();
  });
  after(async () => targets?.stop());

  test('QEMU runs in its seccomp sandbox; as root, vmwu starts it (and passt) as an unprivileged user with no capabilities', async () => {
    const { child, done } = startCli(guest('echo started; sleep 1000', ['--network']));
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    await waitFor('the job to start', () => stdout.includes('started'), 120_000);
    const id = /run ([0-9a-f]{12})/.exec(stderr)![1]!;
    const [pid] = processesMentioning(id);
    assert.ok(pid, 'QEMU is running');
    const s = status(pid!);
    assert.equal(s.Seccomp, '2', 'QEMU has a seccomp filter (-sandbox on)');
    assert.match(s.NoNewPrivs ?? '', /^1$/, 'QEMU cannot gain privileges');
    if (root) {
      assert.notEqual(s.Uid!.split(/\s+/)[0], '0', 'QEMU does not run as root');
      assert.equal(s.CapEff, '0000000000000000', 'QEMU has no effective capabilities');
      assert.equal(s.CapBnd, '0000000000000000', 'nor any it could regain');
      const passt = processesByComm('passt');
      assert.ok(passt.length, 'passt runs for the networked guest');
      for (const p of passt) {
        const ps = status(p);
        assert.notEqual(ps.Uid!.split(/\s+/)[0], '0', 'passt does not run as root');
        assert.equal(ps.CapEff, '0000000000000000');
      }
    }
    child.kill('SIGINT');
    await done;
    assert.deepEqual(processesMentioning(id), [], 'no QEMU left');
  });

  test('the job cannot speak on the control port: fd 3 is closed for it', async () => {
    const r = await vmwu(guest('if echo "vmwu fail forged 1.0" >&3; then echo fd3-open; else echo fd3-closed; fi 2>/dev/null'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fd3-closed/);
    assert.doesNotMatch(r.stderr, /forged/);
  });

  test('without --network the guest has loopback and no network interface', async () => {
    const r = await vmwu(guest('ls /sys/class/net; busybox wget -q -O - http://127.0.0.1:1/ ; echo lo=$?'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter((l) => !/=/.test(l) && l), ['lo']);
  });

  test('--network on the tiny base: interface, route and DNS are up; outbound works; the host\'s loopback is out of reach', { skip: !root && 'needs root for the network namespace target' }, async () => {
    const t = targets!;
    const r = await vmwu(guest(reachScript(t), ['--network']));
    assert.equal(r.code, 0, r.stderr);
    assertReach(r.stdout, t);
    if (await hostResolves()) assert.match(r.stdout, /^dns=0$/m, 'names resolve through the host\'s resolver');
  });

  test('the guest\'s DNS goes through vmwu to the host\'s resolver, even one on loopback, and nothing else there answers', { skip: !root && 'needs root for the network namespace target' }, async () => {
    const t = targets!;
    const resolver = await startFakeResolver();
    try {
      const r = await vmwu(guest(reachScript(t, { lookup: 'relayed.vmwu.test' }), ['--network']), { VMWU_GUEST_DNS: resolver.address });
      assert.equal(r.code, 0, r.stderr);
      assertReach(r.stdout, t);
      assert.match(r.stdout, /^dns=0$/m, `the name resolved:\n${r.stdout}`);
      assert.ok(r.stdout.includes(RESOLVED_TO), 'to what the host\'s resolver says');
      assert.ok(resolver.asked.includes('relayed.vmwu.test'), 'asked by vmwu for the guest');
      assert.ok(!resolver.asked.includes('direct.vmwu.test'), `the guest could not ask it directly: ${resolver.asked.join(', ')}`);
    } finally {
      await resolver.stop();
    }
  });
});

function processesByComm(name: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim().startsWith(name)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}
