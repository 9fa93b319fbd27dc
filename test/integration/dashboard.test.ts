import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { openStore, type Store } from '../../src/store/store.js';
import { getJob, listAttempts, requireExperiment } from '../../src/sweep/index.js';
import { processesMentioning, root, testHome, tmp, vmwu } from '../support/harness.js';

const CHROMIUM = '/usr/bin/chromium';

/** The little of the DOM these checks use (the project compiles without the DOM library). */
interface Win {
  document: {
    querySelector(s: string): { textContent: string | null; getAttribute(n: string): string | null } | null;
    querySelectorAll(s: string): { length: number };
  };
  Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } | undefined };
}
const shots = join(root, 'test-output');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;

async function sweepDetached(plan: string, name: string, slots: number): Promise<void> {
  const r = await vmwu(['sweep', plan, '--base', 'tiny', '--name', name, '--slots', String(slots), '--retries', '0', '--detach', '--json']);
  assert.equal(r.code, 0, r.stderr);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

describe('the dashboard in a real browser, over real VMs', { concurrency: 1, timeout: 900_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, () => {
  test('progress moves to 100 %, a running job\'s log appears live, an experiment is cancelled from the page', async () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'build-web.mjs')], { stdio: 'ignore' });
    mkdirSync(shots, { recursive: true });
    const dir = tmp('vmwu-dash-');
    const plan = join(dir, 'quick.pln');
    writeFileSync(plan, 'parameter i integer range from 1 to 4\ntask main\n    shexec "echo start; sleep 3; echo done-$jobindex"\nendtask\n');
    const slowPlan = join(dir, 'slow.pln');
    writeFileSync(slowPlan, 'parameter i integer range from 1 to 2\ntask main\n    shexec "echo sleeping $i; sleep 600"\nendtask\n');
    const quick = unique('dash');
    const slow = unique('dash-slow');
    const waiter = unique('dash-after');

    let store: Store | undefined;
    let server: RunningServer | undefined;
    let browser: Browser | undefined;
    try {
      store = openStore(testHome());
      server = await startServer(store, { port: 0 });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
      });
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      page.setDefaultTimeout(120_000); // a busy shared host only makes it slower
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));

      await sweepDetached(plan, quick, 2);
      await page.goto(server.loginUrl);
      assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
      const row = page.locator(`tr[data-exp="${quick}"]`);
      await row.waitFor();
      await shot(page, '01-experiments-start');

      // Job 4 waits for a free slot (2 slots, 4 jobs): its page is open before it starts,
      // and its output must appear while it runs ("start" without "done-4"), then the rest, without a reload.
      await page.goto(`${server.url}#/exp/${quick}/job/4`);
      await page.locator('#job-state').waitFor();
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#stdout')?.textContent?.includes('start'), undefined, { timeout: 600_000, polling: 50 });
      const during = await page.locator('#stdout').textContent();
      assert.ok(!during?.includes('done-4'), `the log was seen only after the job ended: ${during}`);
      assert.equal(getJob(store.db, quick, 4)?.state, 'running');
      await page.locator('#job-state [data-state="running"]').waitFor();
      await shot(page, '02-job-live-log');
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#stdout')?.textContent?.includes('done-4'), undefined, { timeout: 600_000 });
      await page.locator('#job-state [data-state="succeeded"]').waitFor({ timeout: 600_000 });
      // Where it ran and what its QEMU used, as in `vmwu results`.
      const row1 = page.locator('#attempts tr[data-attempt="1"]');
      await row1.locator('td.cpu', { hasText: /\d/ }).waitFor();
      assert.equal(await row1.locator('td.host').textContent(), hostname());
      assert.match((await row1.locator('td.rss').textContent()) ?? '', /^\d+(\.\d)? MiB$/);
      // Its output files download from the page.
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#attempts a', { hasText: /^stdout$/ }).first().click()]);
      const saved = join(dir, 'stdout.txt');
      await download.saveAs(saved);
      assert.match(readFileSync(saved, 'utf8'), /start\s+done-4/);

      // The experiments page reaches 100 % by server-sent events (no reload).
      await page.goto(`${server.url}#/`);
      await page.waitForFunction((n) => (globalThis as unknown as Win).document.querySelector(`tr[data-exp="${n}"] .pct`)?.textContent === '100%', quick, { timeout: 600_000 });
      assert.equal(await row.locator('[data-state]').first().getAttribute('data-state'), 'succeeded');
      await shot(page, '03-experiments-done');

      // The experiment page: jobs table, filter, both charts drawn by Chart.js.
      await page.goto(`${server.url}#/exp/${quick}`);
      await page.locator('#jobs tbody tr').first().waitFor();
      assert.equal(await page.locator('#jobs tbody tr').count(), 4);
      await page.selectOption('#filter-state', 'failed');
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelectorAll('#jobs tbody tr').length === 0);
      await page.selectOption('#filter-state', 'succeeded');
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelectorAll('#jobs tbody tr.row-succeeded').length === 4);
      await page.locator('th[data-sort="index"]').click();
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#jobs tbody tr')?.getAttribute('data-job') === '4');
      const charts = await page.evaluate(() => ['phase-chart', 'hist-chart'].map((id) =>
        (globalThis as unknown as Win).Chart.getChart(id)?.data.datasets.reduce((n, d) => n + d.data.length, 0) ?? -1));
      assert.deepEqual(charts, [4 * 6, charts[1]], 'six phases (boot or restore, stage-in, exec, stage-out, shutdown) of four jobs');
      assert.ok(charts[1]! >= 1);
      await shot(page, '04-experiment');

      // Submit a long-sleeping sweep from the page (plan file upload), then cancel it from its page.
      await page.goto(`${server.url}#/`);
      await page.locator('#submit summary').click();
      await page.setInputFiles('#submit-plan', slowPlan);
      await page.selectOption('#submit-target', 'base:tiny');
      await page.fill('#submit-name', slow);
      await page.fill('#submit-slots', '1');
      await page.fill('#submit-retries', '0');
      // Resources and the executor, as `vmwu sweep` takes them; the hosts field shows only for the SSH pool.
      await page.fill('#submit-memory', '192M');
      await page.fill('#submit-timeout', '30m');
      await page.selectOption('#submit-executor', 'ssh');
      assert.equal(await page.locator('#submit-hosts').isVisible(), true);
      await page.selectOption('#submit-executor', 'local');
      assert.equal(await page.locator('#submit-hosts').isVisible(), false);
      await page.locator('#submit-go').click();
      await page.waitForURL(`**/#/exp/${slow}`);
      assert.deepEqual([requireExperiment(store.db, slow).resources.memoryMiB, requireExperiment(store.db, slow).resources.timeoutMs], [192, 30 * 60_000]);
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#counts')?.textContent?.includes('running 1'), undefined, { timeout: 600_000 });
      await shot(page, '05-slow-running');
      // A sweep that goes after the slow one shows as waiting for it, with a link to it.
      const w = await vmwu(['sweep', plan, '--base', 'tiny', '--name', waiter, '--retries', '0', '--after', slow, '--detach', '--json'], { VMWU_AFTER_POLL_MS: '200' });
      assert.equal(w.code, 0, w.stderr);
      await page.goto(`${server.url}#/`);
      await page.locator(`tr[data-exp="${waiter}"] [data-state="waiting"]`).waitFor({ timeout: 120_000 });
      assert.equal(await page.locator(`tr[data-exp="${waiter}"] [data-after] a`).textContent(), slow);
      await shot(page, '05a-waiting');
      await page.goto(`${server.url}#/exp/${slow}`);
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#counts')?.textContent?.includes('running 1'), undefined, { timeout: 600_000 });
      // Suspend from the page: the running job is checkpointed and stopped; Resume goes on from the checkpoint.
      await page.locator('#btn-suspend').click();
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('[data-state]')?.getAttribute('data-state') === 'stopped', undefined, { timeout: 120_000 });
      const suspended = listAttempts(store.db, slow).find((a) => a.status === 'interrupted')!;
      await page.goto(`${server.url}#/exp/${slow}/job/${suspended.job}`);
      await page.locator('#attempts td.checkpoints', { hasText: /ck-[0-9a-f]{12} \(stopped\)/ }).waitFor();
      await shot(page, '05b-suspended-job');
      await page.goto(`${server.url}#/exp/${slow}`);
      await page.locator('#btn-resume').click();
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('#counts')?.textContent?.includes('running 1'), undefined, { timeout: 600_000 });
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('[data-state]')?.getAttribute('data-state') === 'running', undefined, { timeout: 120_000 });
      await page.locator('#btn-cancel').click();
      await page.waitForFunction(() => (globalThis as unknown as Win).document.querySelector('[data-state]')?.getAttribute('data-state') === 'cancelled', undefined, { timeout: 120_000 });
      await shot(page, '06-slow-cancelled');
      // The one waiting for it is cancelled, and says why.
      for (let i = 0; requireExperiment(store.db, waiter).state !== 'cancelled' && i < 600; i++) await new Promise((r) => setTimeout(r, 100));
      await page.goto(`${server.url}#/exp/${waiter}`);
      await page.locator('#ended-why', { hasText: `the experiment it waited for, ${slow}, was cancelled` }).waitFor();
      await shot(page, '06c-after-cancelled');
      // The attempt after the suspension went on from the checkpoint (recorded when it ended).
      await page.goto(`${server.url}#/exp/${slow}/job/${suspended.job}`);
      await page.locator('#attempts td.start', { hasText: /^checkpoint ck-/ }).waitFor();
      await shot(page, '06b-resumed-job');
      const runIds = listAttempts(store.db, slow).map((a) => a.runId).filter((x): x is string => Boolean(x));
      assert.ok(runIds.length >= 1);
      for (const id of runIds) {
        for (let i = 0; processesMentioning(id).length && i < 300; i++) await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(processesMentioning(id), [], `QEMU of ${id} left running`);
      }

      await page.goto(`${server.url}#/bases`);
      await page.locator('#bases td', { hasText: /^tiny$/ }).waitFor();
      await shot(page, '07-bases');
      await page.goto(`${server.url}#/units`);
      await page.locator('#units tbody tr').first().waitFor();
      await shot(page, '08-units');
      assert.deepEqual(errors, [], 'no script errors in the page');
    } finally {
      await browser?.close();
      await server?.close();
      store?.close();
      // Whatever happened, leave no VM running.
      await vmwu(['cancel', slow]).catch(() => undefined);
      await vmwu(['cancel', quick]).catch(() => undefined);
      await vmwu(['cancel', waiter]).catch(() => undefined);
    }
  });
});
