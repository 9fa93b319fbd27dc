/**
 * What a guest network costs a run: `vmwu run --base tiny -- true` against the same
 * with `--network` (passt and vmwu's frame relay started, interface, route and
 * resolver set up by the agent). Runs alternate so machine noise hits both sides
 * alike. As root it also measures throughput through the relay: a tiny guest
 * downloads BULK_MB from a web server in a network namespace of this machine,
 * against the host downloading the same with curl (the floor), and times a DNS
 * lookup answered through vmwu.
 *
 *   node dist/bench/network.js [runs]      (VMWU_HOME must hold the tiny base)
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { startNetworkTargets } from '../test/support/network-targets.js';
import { fmt, median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 7);
const BULK_MB = 64;
const cli = join(packageRoot, 'bin', 'vmwu.js');

function run(args: string[], command = ['true']): { ms: number; stdout: string } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, 'run', '--base', 'tiny', ...args, '--', ...command], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vmwu run ${args.join(' ')} failed: ${r.stderr}`);
  return { ms: performance.now() - t, stdout: r.stdout };
}

const plain: number[] = [];
const net: number[] = [];
run([]);
for (let i = 0; i < runs; i++) {
  plain.push(run([]).ms);
  net.push(run(['--network']).ms);
}
const [p, n] = [median(plain), median(net)];
console.log(`vmwu run -- true            median ${fmt(p)}  (${runs} runs)`);
console.log(`vmwu run --network -- true  median ${fmt(n)}  (${runs} runs)`);
console.log(`network / none              ${(n / p).toFixed(3)}  (+${(n - p).toFixed(0)} ms)`);

if (process.geteuid?.() === 0) {
  const t = await startNetworkTargets();
  try {
    const url = `${t.outboundUrl}bulk/${BULK_MB * 1024 ** 2}`;
    const host: number[] = [];
    const guest: number[] = [];
    // The guest times its own download (from the first byte asked to the last received), so boot and set-up stay out of it.
    const script = `read s _ </proc/uptime; busybox wget -q -O /dev/null ${url} || exit 1; read e _ </proc/uptime; echo $(( (\${e%.*}\${e#*.} - \${s%.*}\${s#*.}) * 10 ))`;
    for (let i = 0; i < Math.min(runs, 5); i++) {
      const h0 = performance.now();
      const c = spawnSync('curl', ['-s', '-o', '/dev/null', url]);
      if (c.status !== 0) throw new Error('curl failed');
      host.push(performance.now() - h0);
      guest.push(Number(run(['--network'], ['sh', '-c', script]).stdout.trim()));
    }
    const [h, g] = [median(host), median(guest)];
    const rate = (ms: number) => `${(BULK_MB / (ms / 1000)).toFixed(1)} MB/s`;
    console.log(`host curl, ${BULK_MB} MB              median ${fmt(h)}  ${rate(h)}`);
    console.log(`tiny guest wget, ${BULK_MB} MB        median ${fmt(g)}  ${rate(g)}  (through passt and vmwu's relay, TCG)`);
    console.log(`guest / host                   ${(g / h).toFixed(2)}`);
  } finally {
    await t.stop();
  }
} else {
  console.log('(throughput through the relay: run as root, it needs a network namespace)');
}
