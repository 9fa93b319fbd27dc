import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { root, testHome, tmp, vmwu } from '../support/harness.js';

/**
 * `vmwu shell` on a real pseudo-terminal: util-linux `script` gives vmwu a pty,
 * as a user's terminal would; the test types into it and reads the screen.
 */
const open = new Set<ChildProcess>();

function terminal(args: string[]) {
  const cmd = [process.execPath, join(root, 'bin', 'vmwu.js'), ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    env: { ...process.env, VMWU_HOME: testHome(), TERM: 'xterm-256color' }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { screen += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { screen += d; });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  open.add(child);
  void exited.then(() => open.delete(child));
  const waitFor = async (re: RegExp, from = 0, ms = 180_000) => {
    const end = Date.now() + ms;
    while (!re.test(screen.slice(from))) {
      if (Date.now() > end) throw new Error(`waited for ${re} on the terminal; it shows:\n${screen.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return {
    pid: child.pid!,
    type: (keys: string) => child.stdin.write(keys),
    mark: () => screen.length,
    screen: () => screen,
    waitFor,
    exited,
  };
}

/** The pty `script` gave vmwu: the stdin of the vmwu process below `script`'s pid (found through /proc, no procps needed). */
function ptyOf(scriptPid: number): string {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const e of readdirSync('/proc').filter((f) => /^\d+$/.test(f))) {
    try {
      // The field after the parenthesised command name: state, then ppid.
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(e), readFileSync(`/proc/${e}/cmdline`, 'utf8'));
    } catch { /* gone */ }
  }
  const below = (pid: number): boolean => pid === scriptPid || (parent.has(pid) && pid > 1 && below(parent.get(pid)!));
  const vmwuPid = [...cmd].find(([pid, c]) => pid !== scriptPid && c.includes('vmwu.js') && below(pid))?.[0];
  assert.ok(vmwuPid, 'the vmwu shell process runs under script');
  return readlinkSync(`/proc/${vmwuPid}/fd/0`);
}

// busybox ash asks the terminal where its cursor is (ESC [6n) after each prompt.
const CURSOR_QUERY = `${String.fromCharCode(27)}\\[6n`;
const PROMPT = new RegExp(`# (?:${CURSOR_QUERY})?$`);

describe('vmwu shell', { concurrency: false, timeout: 600_000 }, () => {
  // A failed test leaves its terminal open: end it (vmwu then stops its VM), or the file would wait for it.
  afterEach(() => {
    for (const c of open) c.kill('SIGHUP');
  });

  test('a real terminal: size, TERM, line editing, Ctrl-C to the guest\'s program, exit N returns N', async () => {
    const t = terminal(['shell', '--base', 'tiny']);
    await t.waitFor(PROMPT);
    let m = t.mark();
    t.type('stty size; echo "term=$TERM"; tty\r');
    await t.waitFor(new RegExp(`term=xterm-256color[\\s\\S]*/dev/hvc0[\\s\\S]*${PROMPT.source}`), m);
    assert.match(t.screen().slice(m), /^24 80\r?$/m, 'the terminal has the size vmwu gave it (its own pty has none here: 24x80)');
    // A resized terminal (SIGWINCH to vmwu) resizes the guest's tty.
    const pty = ptyOf(t.pid);
    assert.match(pty, /^\/dev\/pts\/\d+$/);
    const resized = spawnSync('stty', ['-F', pty, 'rows', '40', 'cols', '100']);
    assert.equal(resized.status, 0, String(resized.stderr));
    await new Promise((r) => setTimeout(r, 500));
    m = t.mark();
    t.type('stty size\r');
    await t.waitFor(/^40 100\r?$/m, m, 30_000);
    // Line editing is the guest's tty: a backspace erases before the shell sees the line.
    m = t.mark();
    t.type('echo abc\x7fd\r');
    await t.waitFor(/^abd\r?$/m, m);
    // Ctrl-C reaches the foreground program in the guest, not vmwu.
    m = t.mark();
    t.type('sleep 300\r');
    await new Promise((r) => setTimeout(r, 1500));
    t.type('\x03');
    await t.waitFor(PROMPT, m + 'sleep 300'.length);
    m = t.mark();
    t.type('echo "after=$?"\r');
    await t.waitFor(/after=130/, m);
    t.type('exit 7\r');
    assert.equal(await t.exited, 7, t.screen().slice(-500));
  });

  test('--job EXP/JOB: the job\'s inputs, script and parameters are there to re-run it by hand', async () => {
    const dir = tmp('vmwu-shell-job-');
    writeFileSync(join(dir, 'data.txt'), 'payload 42\n');
    writeFileSync(join(dir, 'fail.pln'), ['parameter level integer range from 1 to 1', 'task main', '    copy root:data.txt node:data.txt',
      '    shexec "grep payload data.txt; exit 3"', 'endtask', ''].join('\n'));
    const name = `shelljob-${process.pid}`;
    const sweep = await vmwu(['sweep', join(dir, 'fail.pln'), '--base', 'tiny', '--name', name, '--retries', '0']);
    assert.notEqual(sweep.code, 0, 'the job failed');
    const t = terminal(['shell', '--job', `${name}/1`]);
    await t.waitFor(PROMPT);
    const m = t.mark();
    t.type('cat data.txt; echo "level=$level"; sh .vmwu-job.sh; echo "rc=$?"\r');
    await t.waitFor(/rc=3/, m);
    const out = t.screen().slice(m);
    assert.match(out, /^payload 42\r?$/m);
    assert.match(out, /level=1/);
    t.type('exit\r');
    assert.equal(await t.exited, 0);
  });
});
