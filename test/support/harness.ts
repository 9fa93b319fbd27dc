import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot as root } from './fixture-path.js';

export { repoRoot as root, fixturesDir as fixtures } from './fixture-path.js';

/**
 * The store shared by integration tests: scripts/test.sh builds the tiny base in it
 * once, so each test file does not pay for a base build.
 */
export function testHome(): string {
  const h = process.env.VMWU_TEST_HOME;
  if (!h || !existsSync(join(h, 'vmwu.db'))) {
    throw new Error('VMWU_TEST_HOME must point at a store with the tiny base (run the tests with `npm test`)');
  }
  return h;
}

const made: string[] = [];

/**
 * A temporary directory of this test file, removed when its process exits
 * (its after() hooks have unmounted what they mounted and stopped what ran there).
 */
export function tmp(prefix = 'vmwu-it-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (!made.length) {
    process.once('exit', () => {
      for (const d of made) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a busy mount: the machine's tmp cleaner takes it
        }
      }
    });
  }
  made.push(dir);
  return dir;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** What a child process printed and how it ended. */
export function outcome(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** Another program (an engine, a native tool), its stdin empty, in `cwd` with `env` over this process's environment. */
export function runCommand(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return outcome(spawn(cmd, args, { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** `input`, when given, is the command's stdin (as `--password-stdin` reads it); else it has none. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string | Buffer): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [join(root, 'bin', 'vmwu.js'), ...args], {
    env: { ...process.env, VMWU_HOME: testHome(), ...env },
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (input !== undefined) child.stdin!.end(input);
  return { child, done: outcome(child) };
}

export function vmwu(args: string[], env: NodeJS.ProcessEnv = {}, input?: string | Buffer): Promise<CliResult> {
  return startCli(args, env, input).done;
}

/**
 * The Debian base in the shared test store, built by the first test file that needs
 * it. Files run two at a time: flock(1) on a file in the store makes the other wait
 * for that build instead of running mmdebstrap beside it.
 */
export async function debianBase(): Promise<CliResult> {
  // node and vmwu.js come in as $0 and $1: no path is ever parsed by the shell.
  const script = '"$0" "$1" base show debian:bookworm >/dev/null 2>&1 || "$0" "$1" base build debian';
  return outcome(spawn('flock', [join(testHome(), '.debian-base.lock'), 'sh', '-c', script, process.execPath, join(root, 'bin', 'vmwu.js')], {
    env: { ...process.env, VMWU_HOME: testHome() }, stdio: ['ignore', 'pipe', 'pipe'],
  }));
}

/** Pids of processes whose command line mentions `needle` (a run id or run dir). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes(needle) && cmd.includes('qemu-system')) pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Polls without a deadline of its own: the test's timeout bounds it, so a busy shared host only makes it slower. */
/**
 * Polls `fn` until it gives something. Bounded: a test cancelled by its suite's
 * timeout leaves its wait running, and one that never ended would keep the test
 * file's process, and with it the whole suite, alive.
 */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs / 1000} s in vain for: ${fn.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export function listTree(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(prefix + e.name + (e.isDirectory() ? '/' : ''));
    if (e.isDirectory()) out.push(...listTree(join(dir, e.name), `${prefix}${e.name}/`));
  }
  return out;
}

/** 1..n, a line each: what a counting job's file must hold, each number once. */
export const countTo = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');

/** A plan of `jobs` jobs, each counting to `n` (half a second a step) into `count`, staged out to `copyTo`. */
export function countingPlan(jobs: number, n: number, copyTo: string): string {
  const plan = join(tmp('vmwu-counting-'), 'count.pln');
  writeFileSync(plan, [
    `parameter i integer range from 1 to ${jobs}`,
    'task main',
    `    shexec "k=1; while [ $$k -le ${n} ]; do echo $$k >> count; echo n $$k; k=$$((k + 1)); sleep 0.5; done"`,
    `    copy node:count root:${copyTo}`,
    'endtask', '',
  ].join('\n'));
  return plan;
}
