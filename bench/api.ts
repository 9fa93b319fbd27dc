/**
 * Dashboard API latency (issue 6): p50/p95 of the experiment page's API calls for
 * a 10,000-job experiment, and the dashboard's first load in Chromium. No VM
 * boots: the experiment is planned with createExperiment and its attempts are
 * written straight into the store (half finished, with phase timings).
 *
 *   node scripts/build-web.mjs && node dist/bench/api.js [requests]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { packageRoot } from '../src/paths.js';
import { startServer } from '../src/server/index.js';
import { registerBase } from '../src/store/bases.js';
import type { Digest } from '../src/store/blobs.js';
import { openStore } from '../src/store/store.js';
import { quantile } from './stats.js';
import { createExperiment } from '../src/sweep/index.js';

const N = Number(process.argv[2] ?? 200);
const CHROMIUM = '/usr/bin/chromium';
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function get(url: string, token: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume().on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`${url}: ${res.statusCode}`))));
    }).on('error', reject).end();
  });
}

const q = quantile;

const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-api-'));
const store = openStore(join(work, 'store'));
try {
  execFileSync(process.execPath, [join(packageRoot, 'scripts', 'build-web.mjs')], { stdio: 'ignore' });
  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  writeFileSync(join(work, 'big.pln'), 'parameter a integer range from 1 to 100\nparameter b integer range from 1 to 100\ntask main\n  exec echo $a $b\nendtask\n');
  let t0 = performance.now();
  await createExperiment(store, { planPath: join(work, 'big.pln'), base: 'fake', name: 'big' });
  const planMs = performance.now() - t0;
  // Half the jobs finished (one attempt each, with phases), the rest pending.
  const ins = store.db.prepare(`INSERT INTO attempts (experiment, job, attempt, run_id, owner, status, exit_code, out_dir, started_at, finished_at, phases, total_ms)
    VALUES ('big', ?, 1, ?, 'bench', ?, ?, ?, ?, ?, ?, ?)`);
  const upd = store.db.prepare(`UPDATE experiment_jobs SET state = ?, attempts = 1, exit_code = ?, started_at = ?, finished_at = ? WHERE experiment = 'big' AND idx = ?`);
  store.db.transaction(() => {
    const now = new Date().toISOString();
    for (let i = 1; i <= 5000; i++) {
      const ok = i % 17 !== 0;
      const ph = { prepare: 20, boot: 800 + (i % 300), stageIn: 30, exec: 1000 + ((i * 37) % 2000), stageOut: 40, shutdown: 100, collect: 10 };
      const total = Object.values(ph).reduce((s, x) => s + x, 0);
      ins.run(i, `run-${i}`, ok ? 'succeeded' : 'failed', ok ? 0 : 1, join(work, 'out', String(i)), now, now, JSON.stringify(ph), total);
      upd.run(ok ? 'succeeded' : 'failed', ok ? 0 : 1, now, now, i);
    }
  })();

  const server = await startServer(store, { port: 0 });
  try {
    const calls: [string, string][] = [
      ['status', 'api/experiments/big'],
      ['jobs page 1', 'api/experiments/big/jobs?limit=50'],
      ['jobs sort=duration desc, offset 5000', 'api/experiments/big/jobs?sort=duration&dir=desc&offset=5000&limit=50'],
      ['jobs state=failed & param a=7', 'api/experiments/big/jobs?state=failed&param.a=7'],
      ['timings (phases + histogram)', 'api/experiments/big/timings'],
      ['experiments list', 'api/experiments'],
    ];
    console.log(`10,000-job experiment (5,000 finished), planned in ${planMs.toFixed(0)} ms; ${N} sequential requests per call`);
    for (const [label, path] of calls) {
      for (let i = 0; i < 5; i++) await get(server.url + path, server.token);
      const xs: number[] = [];
      for (let i = 0; i < N; i++) xs.push(await get(server.url + path, server.token));
      console.log(`  ${label.padEnd(40)} p50 ${q(xs, 0.5).toFixed(2)} ms  p95 ${q(xs, 0.95).toFixed(2)} ms`);
    }

    if (existsSync(CHROMIUM)) {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
      });
      try {
        const loads: number[] = [];
        for (let i = 0; i < 7; i++) {
          const ctx = await browser.newContext();
          const page = await ctx.newPage();
          await page.goto(server.loginUrl); // sets the cookie
          t0 = performance.now();
          await page.goto(`${server.url}#/exp/big`);
          await page.locator('#jobs tbody tr').first().waitFor();
          await page.waitForFunction(() => {
            const C = (globalThis as unknown as { Chart: { getChart(id: string): unknown } }).Chart;
            return Boolean(C.getChart('phase-chart') && C.getChart('hist-chart'));
          });
          loads.push(performance.now() - t0);
          await ctx.close();
        }
        console.log(`  dashboard first load of the experiment page (table + both charts), Chromium: median ${q(loads, 0.5).toFixed(0)} ms, max ${Math.max(...loads).toFixed(0)} ms (7 loads)`);
      } finally {
        await browser.close();
      }
    } else {
      console.log(`  (no ${CHROMIUM}: browser load time skipped)`);
    }
  } finally {
    await server.close();
  }
} finally {
  store.close();
  rmSync(work, { recursive: true, force: true });
}
