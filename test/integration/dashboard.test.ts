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
import { createExperiment, getJob, listAttempts, requireExperiment, runExperiment, type Executor } from '../../src/sweep/index.js';
import { processesMentioning, root, testHome, tmp, vmwu } from '../support/harness.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

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
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
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
      assert.deepEqual(charts, [4 * 7, charts[1]], 'seven phases (template, boot or restore, stage-in, exec, stage-out, shutdown) of four jobs');
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
  test('a multi-VM job (--nodes 2): its attempt lists node0 and node1 with their machine, status, phases and usage; a VM\'s error shows as text', async () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'build-web.mjs')], { stdio: 'ignore' });
    mkdirSync(shots, { recursive: true });
    const dir = tmp('vmwu-dash-vms-');
    // One job of two VMs (two QEMUs on this 2-core host): node0 asks node1 its name.
    const plan = join(dir, 'pair.pln');
    writeFileSync(plan, 'parameter i integer range from 1 to 1\ntask main\n    shexec "echo $i $$(/run/vmwu/rsh node1 hostname)"\nendtask\n');
    const pair = unique('dash-vms');
    const hostile = unique('dash-vms-evil');
    const evil = '<img src=x onerror="globalThis.pwned=1"><b>node1</b> & "died"';

    let store: Store | undefined;
    let server: RunningServer | undefined;
    let browser: Browser | undefined;
    try {
      const r = await vmwu(['sweep', plan, '--base', 'tiny', '--name', pair, '--nodes', '2', '--memory', '128M', '--slots', '1', '--retries', '0', '--json']);
      assert.equal(r.code, 0, r.stderr);
      store = openStore(testHome());
      assert.equal(getJob(store.db, pair, 1)?.state, 'succeeded');
      const recorded = listAttempts(store.db, pair, 1).at(-1)!.vms;
      assert.deepEqual(recorded?.map((v) => [v.name, v.status, v.machine]), [['node0', 'succeeded', hostname()], ['node1', 'succeeded', hostname()]]);

      // A job whose VM failed with guest-made text in its error (a fake executor: no VM boots).
      await createExperiment(store, { planPath: plan, base: 'tiny', name: hostile, retries: 0, slots: 1 });
      const fake: Executor = {
        name: 'fake-vms',
        async runAttempt() {
          const phases = { prepare: 1, boot: 900, restore: 0, stageIn: 20, exec: 300, stageOut: 20, shutdown: 40, collect: 1 };
          return {
            runId: null, status: 'failed', exitCode: null, phases, totalMs: 1282, error: { code: 'VM_FAILED', message: 'node1 failed' },
            vms: [
              { index: 0, name: 'node0', machine: hostname(), runId: 'fake-vm-0', status: 'error', error: 'stopped: node1 failed', start: 'restore', phases, totalMs: 1282, usage: { cpuMs: 1500, maxRssKiB: 65_536, source: 'proc' } },
              { index: 1, name: 'node1', machine: '<i>peer</i>', runId: 'fake-vm-1', status: 'failed', error: evil },
            ],
          };
        },
      };
      assert.equal((await runExperiment(store, hostile, { executor: fake, pollMs: 10, host: () => ({ cores: 2, availableMemMiB: 100_000 }) })).state, 'failed');

      server = await startServer(store, { port: 0 });
      // The API gives each attempt its VMs.
      const api = await fetch(new URL(`/api/experiments/${pair}/jobs/1`, server.url), { headers: { authorization: `Bearer ${server.token}` } });
      assert.equal(api.status, 200);
      const body = await api.json() as { attempts: { vms: { name: string; status: string; machine: string }[] | null }[] };
      assert.deepEqual(body.attempts.at(-1)!.vms!.map((v) => [v.name, v.status, v.machine]), [['node0', 'succeeded', hostname()], ['node1', 'succeeded', hostname()]]);

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      page.setDefaultTimeout(120_000);
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.loginUrl);
      // The experiments page has drawn (else its late rendering could replace the job's page).
      await page.locator(`tr[data-exp="${pair}"]`).waitFor();
      await page.goto(`${server.url}#/exp/${pair}/job/1`);
      await page.locator('#job-state [data-state="succeeded"]').waitFor().catch(async (e: unknown) => { await shot(page, '09-multi-vm-job-timeout'); throw e; });
      const vms = page.locator('#attempts tr[data-vms-of="1"] table.vms');
      await vms.locator('tr[data-vm="node1"]').waitFor();
      assert.equal(await vms.locator('tbody tr').count(), 2);
      for (const name of ['node0', 'node1']) {
        const row = vms.locator(`tr[data-vm="${name}"]`);
        assert.equal(await row.locator('td.vm-name').textContent(), name);
        assert.equal(await row.locator('td.vm-machine').textContent(), hostname());
        assert.equal(await row.locator('td.vm-status [data-state]').getAttribute('data-state'), 'succeeded');
        assert.equal(await row.locator('td.vm-error').textContent(), '');
        assert.match((await row.locator('td.vm-start').textContent()) ?? '', /^(template|boot)$/, `${name}: restored or booted`);
        assert.match((await row.locator('td.vm-cpu').textContent()) ?? '', /^\d+(\.\d)? (ms|s|min)$/, `${name}: CPU time`);
        assert.match((await row.locator('td.vm-rss').textContent()) ?? '', /^\d+(\.\d)? MiB$/, `${name}: peak RSS`);
        assert.match((await row.locator('td[data-phase="exec"]').textContent()) ?? '', /^\d+(\.\d)? (ms|s|min)$/, `${name}: exec phase`);
      }
      await shot(page, '09-multi-vm-job');

      // The failed VM's error and a machine name with markup are text, never HTML.
      await page.goto(`${server.url}#/exp/${hostile}/job/1`);
      await page.locator('#job-state [data-state="failed"]').waitFor();
      const bad = page.locator('#attempts tr[data-vms-of="1"] table.vms tr[data-vm="node1"]');
      await bad.waitFor();
      assert.equal(await bad.locator('td.vm-error').textContent(), evil);
      assert.equal(await bad.locator('td.vm-machine').textContent(), '<i>peer</i>');
      assert.equal(await bad.locator('td.vm-status [data-state]').getAttribute('data-state'), 'failed');
      assert.equal(await page.locator('#attempts img, #attempts b, #attempts i').count(), 0, 'markup from a VM became elements');
      assert.equal(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned), undefined);
      const node0 = page.locator('#attempts tr[data-vms-of="1"] table.vms tr[data-vm="node0"]');
      assert.equal(await node0.locator('td.vm-cpu').textContent(), '1.5 s');
      assert.equal(await node0.locator('td.vm-rss').textContent(), '64.0 MiB');
      assert.equal(await node0.locator('td[data-phase="boot"]').textContent(), '900 ms');
      assert.equal(await node0.locator('td.vm-start').textContent(), 'template');
      assert.equal(await bad.locator('td.vm-start').textContent(), '-');
      await shot(page, '10-multi-vm-failed');
      assert.deepEqual(errors, [], 'no script errors in the page');
    } finally {
      await browser?.close();
      await server?.close();
      store?.close();
      await vmwu(['cancel', pair]).catch(() => undefined);
    }
  });

  test('image outputs: thumbnails on the job page open full size, the experiment\'s gallery links each to its job, an SVG\'s script never runs, wide tables scroll in their box', async () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'build-web.mjs')], { stdio: 'ignore' });
    mkdirSync(shots, { recursive: true });
    const dir = tmp('vmwu-dash-img-');
    const plan = join(dir, 'strips.pln');
    writeFileSync(plan, 'parameter row0 integer range from 0 to 300 step 100\ntask main\n    shexec "true"\nendtask\n');
    const name = unique('dash-img');
    // What the page's scripts can see of images (the project compiles without the DOM library).
    interface ImgWin {
      document: { querySelectorAll(s: string): ArrayLike<{ naturalWidth: number; getAttribute(n: string): string | null }>; documentElement: { scrollWidth: number } };
      innerWidth: number;
      pwned?: number;
    }
    let store: Store | undefined;
    let server: RunningServer | undefined;
    let browser: Browser | undefined;
    try {
      store = openStore(testHome());
      // A fake executor (no VM boots) leaves a PPM strip per job, a PNG in job 1 and an SVG that tries to run a script.
      await createExperiment(store, { planPath: plan, base: 'tiny', name, retries: 0, slots: 1 });
      const strip = (v: number) => Buffer.concat([Buffer.from('P6\n1600 100\n255\n'), Buffer.alloc(1600 * 100 * 3, v)]);
      const fake: Executor = {
        name: 'fake-images',
        async runAttempt(_s, ctx) {
          const work = join(ctx.outDir, 'work');
          mkdirSync(work, { recursive: true });
          writeFileSync(join(work, 'strip.ppm'), strip(40 * ctx.job.index));
          if (ctx.job.index === 1) {
            writeFileSync(join(work, 'evil.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" onload="top.pwned=1"><script>top.pwned=2</script><rect width="40" height="20"/></svg>');
            writeFileSync(join(work, 'liar.png'), '<html><script>top.pwned=3</script></html>');
          }
          return { runId: null, status: 'succeeded', exitCode: 0, phases: null, totalMs: 1 };
        },
      };
      assert.equal((await runExperiment(store, name, { executor: fake, pollMs: 10, host: () => ({ cores: 2, availableMemMiB: 100_000 }) })).state, 'succeeded');

      server = await startServer(store, { port: 0 });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 800, height: 900 } });
      page.setDefaultTimeout(120_000);
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.loginUrl);
      await page.locator(`tr[data-exp="${name}"]`).waitFor();

      await page.goto(`${server.url}#/exp/${name}`);
      await page.locator('#gallery figure').nth(4).waitFor();
      assert.equal(await page.locator('#gallery figure').count(), 5, 'four strips and the SVG; not the liar');
      await page.waitForFunction(() => Array.from((globalThis as unknown as ImgWin).document.querySelectorAll('#gallery img')).every((i) => i.naturalWidth > 0));
      const widths = await page.evaluate(() => Array.from((globalThis as unknown as ImgWin).document.querySelectorAll('#gallery img')).map((i) => [i.getAttribute('data-preview'), i.naturalWidth]));
      assert.deepEqual(widths.filter(([p]) => p === 'work/strip.ppm').map(([, w]) => w), [320, 320, 320, 320], 'PPM thumbnails are PNGs scaled down by the server');
      assert.equal(await page.locator('#gallery figure[data-job="3"] figcaption a').getAttribute('href'), `#/exp/${name}/job/3`);
      await shot(page, '11-gallery');
      await page.locator('#gallery figure[data-job="2"] img').click();
      await page.locator('#lightbox img').waitFor();
      await page.waitForFunction(() => ((globalThis as unknown as ImgWin).document.querySelectorAll('#lightbox img')[0]?.naturalWidth ?? 0) === 1600);
      await shot(page, '12-full-size');
      await page.keyboard.press('Escape');
      assert.equal(await page.locator('#lightbox').count(), 0);

      await page.goto(`${server.url}#/exp/${name}/job/1`);
      await page.locator('#attempts img.thumb[data-preview="work/evil.svg"]').waitFor();
      await page.locator('#attempts img.thumb[data-preview="work/evil.svg"]').click();
      await page.locator('#lightbox img').waitFor();
      await page.keyboard.press('Escape');
      // The liar's thumbnail is gone (the server found no image in it); its download link stays.
      await page.waitForFunction(() => (globalThis as unknown as ImgWin).document.querySelectorAll('#attempts img.thumb[data-preview="work/liar.png"]').length === 0);
      assert.equal(await page.locator('#attempts a', { hasText: /^work\/liar\.png$/ }).count(), 1);
      assert.equal(await page.evaluate(() => (globalThis as unknown as ImgWin).pwned), undefined, 'no script in an output ran');
      const [scroll, inner] = await page.evaluate(() => [(globalThis as unknown as ImgWin).document.documentElement.scrollWidth, (globalThis as unknown as ImgWin).innerWidth]);
      assert.ok(scroll! <= inner!, `the attempts table widened the page (${scroll} > ${inner})`);
      await shot(page, '13-job-thumbnails');
      assert.deepEqual(errors, [], 'no script errors in the page');
    } finally {
      await browser?.close();
      await server?.close();
      store?.close();
    }
  });
});
