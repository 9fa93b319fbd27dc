import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GRACE_MS } from '../../src/upkeep/gc.js';
import { builtinDefaults } from '../../src/config.js';
import { nodeDirs } from '../../src/run/node-dirs.js';
import { outputDiskBytes } from '../../src/run/prepare.js';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * Fast start on real guests: a job restored from a template gives what a cold
 * boot gives; clones do not share random bytes or write into the template; a
 * damaged template or a rebuilt unit never gets used. This file's templates are
 * its own (its own scratch), so damaging them touches no other test.
 */
const scratch = tmp('vmwu-fast-');
chmodSync(scratch, 0o711);
const env = { VMWU_SCRATCH: scratch };
const templatesDir = join(nodeDirs(undefined, testHome(), { VMWU_SCRATCH: scratch }).cache, 'templates');

interface RunJson {
  status: string; exitCode: number | null; outDir: string;
  phases: Record<string, number>;
  start?: { mode: string; template?: string; fallback?: string };
}

async function runJson(args: string[], e: NodeJS.ProcessEnv = env): Promise<RunJson> {
  const r = await vmwu(['run', '--json', ...args], e);
  assert.ok(r.stdout.startsWith('{'), `vmwu run printed no result: ${r.stderr}`);
  return JSON.parse(r.stdout) as RunJson;
}

/** Everything a job handed back but the timings: the files of its out dir, with their contents. */
function outputs(dir: string): Record<string, string> {
  const all: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else if (name !== 'run.json') all[`${rel}${name}`] = readFileSync(p, 'utf8');
    }
  };
  walk(dir, '');
  return all;
}

const job = ['--param', 'who=world', '--', 'sh', '-c',
  'echo "hello $who"; echo "to stderr" >&2; mkdir -p sub; seq 1 500 > sub/numbers; printf "%s" "${who}" > name.txt; exit 3'];

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

interface GcJson { busy: string[]; templates: { key: string; why: string }[] }

describe('fast start: jobs restored from a template', { concurrency: false, timeout: 600_000 }, () => {
  test('a restored job gives the same outputs, stdout, stderr and exit code as a cold boot', async () => {
    const cold = await runJson(['--base', 'tiny', '--cold', ...job]);
    assert.equal(cold.start?.mode, 'boot');
    assert.equal(cold.start?.fallback, undefined, '--cold is no fallback');
    assert.ok(cold.phases.boot! > 0 && cold.phases.restore === 0);
    // The first warm job makes the template, the second finds it.
    const first = await runJson(['--base', 'tiny', ...job]);
    const warm = await runJson(['--base', 'tiny', ...job]);
    for (const r of [first, warm]) {
      assert.equal(r.start?.mode, 'restore', JSON.stringify(r.start));
      assert.ok(r.phases.restore! > 0 && r.phases.boot === 0, 'the phase is called restore');
      assert.equal(r.exitCode, 3);
      assert.equal(r.status, 'failed');
      assert.deepEqual(outputs(r.outDir), outputs(cold.outDir));
    }
    assert.equal(first.start!.template, warm.start!.template);
    assert.equal(outputs(warm.outDir).stdout, 'hello world\n');
    assert.equal(outputs(warm.outDir)['work/sub/numbers']!.split('\n').length, 501);
  });

  test('two concurrent clones read different random bytes, and neither writes into the template', async () => {
    const read = ['--base', 'tiny', '--', 'sh', '-c', 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"; dd if=/dev/zero of=big bs=1M count=20 2>/dev/null; rm big'];
    const a0 = await runJson(read);
    const t = join(templatesDir, a0.start!.template!);
    const before = sha256(join(t, 'memory'));
    const [a, b] = await Promise.all([runJson(read), runJson(read)]);
    for (const r of [a, b]) assert.equal(r.start?.mode, 'restore', JSON.stringify(r.start));
    const bytes = [a0, a, b].map((r) => readFileSync(join(r.outDir, 'stdout'), 'utf8'));
    for (const x of bytes) assert.match(x, /^[0-9a-f]{64}$/);
    assert.equal(new Set(bytes).size, 3, `every clone drew its own bytes: ${bytes.join(' ')}`);
    assert.equal(sha256(join(t, 'memory')), before, 'the template\'s RAM file is unchanged after clones ran and wrote');
  });

  test('a clone\'s job runs in the shell its template started, beside the helper and tar that wait for it; its output disk needs no resize', async () => {
    // The job's shell (its parent), the processes of the job's start and end, and the output disk's size as the guest sees it.
    const look = ['--', 'sh', '-c', 'tr "\\0" " " </proc/$PPID/cmdline; echo; ps -o args | grep -c "^[c/].*clone-helper serve\\|^tar -cf /tmp/.vmwu/outputs"; '
      + 'for b in /sys/block/vd*; do [ "$(cat $b/serial)" = vmwu-out ] && cat $b/size; done'];
    const lines = (r: RunJson) => readFileSync(join(r.outDir, 'stdout'), 'utf8').trim().split('\n');
    const clone = await runJson(['--base', 'tiny', ...look]);
    assert.equal(clone.start?.mode, 'restore', JSON.stringify(clone.start));
    assert.deepEqual(lines(clone), ['sh /tmp/.vmwu/job ', '2', String(outputDiskBytes(builtinDefaults.maxOutputBytes) / 512)]);
    const capped = await runJson(['--base', 'tiny', '--max-output', '100M', ...look]);
    assert.equal(capped.start?.mode, 'restore', JSON.stringify(capped.start));
    assert.equal(lines(capped)[2], String(outputDiskBytes(100 * 1024 ** 2) / 512), 'the host resized it for this job\'s cap');
    const cold = await runJson(['--base', 'tiny', '--cold', ...look]);
    assert.deepEqual(lines(cold).slice(0, 2), ['sh /job/in/cmd ', '0'], 'a cold boot starts them as it goes');
  });

  test('a clone\'s job may remount the root read-only or mount over /tmp, and its outputs come back; one that kills the waiting tar fails with the reason', async () => {
    const ro = await runJson(['--base', 'tiny', '--', 'sh', '-c',
      'mount --bind /job/work /job/work && mount -o remount,bind,ro / && echo ro > ro.txt; mount -o remount,bind,rw /; umount /job/work; mkdir t && mount --bind t /tmp && echo hid > hid.txt']);
    assert.equal(ro.start?.mode, 'restore', JSON.stringify(ro.start));
    assert.equal(ro.status, 'succeeded', 'no file of the agent\'s is open for writing on the root, and the helper holds its pipe, not its path');
    assert.equal(readFileSync(join(ro.outDir, 'work', 'hid.txt'), 'utf8'), 'hid\n');
    const r = await vmwu(['run', '--json', '--base', 'tiny', '--', 'sh', '-c', 'kill $(ps -o pid,args | awk "/tar -cf \\/tmp/ {print \\$1}")'], env);
    assert.match(r.stdout + r.stderr, /the output tar no longer waits/);
  });

  test('a damaged template is never used: the job boots, says why, and the template is made again', async () => {
    const r0 = await runJson(['--base', 'tiny', '--', 'echo', 'ok']);
    const t = join(templatesDir, r0.start!.template!);
    const state = readFileSync(join(t, 'state'));
    state[Math.floor(state.length / 2)] ^= 0xff;
    writeFileSync(join(t, 'state'), state);
    const r1 = await runJson(['--base', 'tiny', '--', 'echo', 'ok']);
    assert.equal(r1.start?.mode, 'boot');
    assert.match(r1.start!.fallback!, /damaged: its device state does not match its digest/);
    assert.equal(readFileSync(join(r1.outDir, 'stdout'), 'utf8'), 'ok\n');
    assert.equal(existsSync(t), false, 'the damaged template was removed');
    const r2 = await runJson(['--base', 'tiny', '--', 'echo', 'ok']);
    assert.equal(r2.start?.mode, 'restore', 'the next job made it again');
    // RAM changed behind the template's back: refused the same way.
    writeFileSync(join(t, 'memory'), 'x', { flag: 'a' });
    const r3 = await runJson(['--base', 'tiny', '--', 'echo', 'ok']);
    assert.equal(r3.start?.mode, 'boot');
    assert.match(r3.start!.fallback!, /memory file was changed/);
  });

  test('a rebuilt unit gets a new template; the old one is never restored for it', async () => {
    // A store of its own: gc in the shared one waits while other test files build there.
    const own = { ...env, VMWU_HOME: join(tmp('vmwu-fast-own-'), 'store') };
    const tiny = await vmwu(['base', 'build', 'tiny'], own);
    assert.equal(tiny.code, 0, tiny.stderr);
    const dir = tmp('vmwu-fast-unit-');
    mkdirSync(join(dir, 'app'));
    const spec = 'name: fastunit\nversion: 1.0.0\nbase: tiny\nfiles:\n  - {from: ./app, to: /app}\nrun: cat /app/v\n';
    writeFileSync(join(dir, 'vmwu.yaml'), spec);
    const keys: string[] = [];
    for (const v of ['one', 'two']) {
      writeFileSync(join(dir, 'app', 'v'), `${v}\n`);
      const b = await vmwu(['build', dir], own);
      assert.equal(b.code, 0, b.stderr);
      const r = await runJson(['fastunit'], own);
      assert.equal(r.start?.mode, 'restore', JSON.stringify(r.start));
      assert.equal(readFileSync(join(r.outDir, 'stdout'), 'utf8'), `${v}\n`, 'the restored guest sees the unit as built now');
      keys.push(r.start!.template!);
    }
    assert.notEqual(keys[0], keys[1], 'the rebuild changed the template key');
    // Another store of this user on this host shares the node cache: its gc judges its own templates only.
    const other = await vmwu(['gc', '--json'], { ...env, VMWU_HOME: tmp('vmwu-fast-other-') });
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual((JSON.parse(other.stdout) as GcJson).templates, [], 'a store without these blobs leaves the templates of this one');
    assert.equal(existsSync(join(templatesDir, keys[0]!)), true);
    // The first build's layer is no unit's any more: gc takes it (once out of its grace time), and its template with it.
    await new Promise((r) => setTimeout(r, GRACE_MS + 500));
    const gc = await vmwu(['gc', '--json'], own);
    assert.equal(gc.code, 0, gc.stderr);
    const { busy, templates: removed } = JSON.parse(gc.stdout) as GcJson;
    assert.deepEqual(busy, []);
    assert.ok(removed.some((t) => t.key === keys[0] && /gone from the store/.test(t.why)), JSON.stringify(removed));
    assert.ok(!removed.some((t) => t.key === keys[1]), 'the template in use stays');
    assert.equal(existsSync(join(templatesDir, keys[0]!)), false);
    assert.equal(existsSync(join(templatesDir, keys[1]!)), true);
  });
});
