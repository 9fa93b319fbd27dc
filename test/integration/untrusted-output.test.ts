import assert from 'node:assert/strict';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import { pack as tarPack, type Pack } from 'tar-stream';

type Header = Parameters<Pack['entry']>[0];
import { tmp, vmwu } from '../support/harness.js';

/**
 * A compromised guest: instead of letting the agent write the output archive, the
 * job writes a crafted tar straight onto the output disk and resets the VM.
 */
const writeRaw = 'for b in /sys/block/vd*; do [ "$(cat $b/serial)" = vmwu-out ] && dev=/dev/${b##*/}; done; '
  + 'cat evil.tar > "$dev"; sync; reboot -f';

async function evilTar(path: string, entries: { header: Header; body?: string }[]): Promise<void> {
  const p = tarPack();
  const done = pipeline(p, createWriteStream(path));
  p.entry({ name: 'meta/exit_code' }, '0\n');
  for (const e of entries) p.entry(e.header, e.body ?? '');
  p.finalize();
  await done;
}

async function runEvil(entries: { header: Header; body?: string }[]) {
  const parent = tmp('vmwu-evil-');
  const input = join(tmp(), 'evil.tar');
  await evilTar(input, entries);
  const out = join(parent, 'out');
  const r = await vmwu(['run', '--base', 'tiny', '--input', input, '--out', out, '--json', '--', 'sh', '-c', writeRaw]);
  return { r, parent, out, json: JSON.parse(r.stdout) as { status: string; error?: { code: string; message: string } } };
}

function assertRejected(x: Awaited<ReturnType<typeof runEvil>>, entry: RegExp): void {
  assert.equal(x.r.code, 125, x.r.stderr);
  assert.equal(x.json.status, 'error');
  assert.equal(x.json.error?.code, 'UNSAFE_OUTPUT');
  assert.match(x.json.error!.message, entry);
  assert.deepEqual(readdirSync(x.parent), ['out'], 'nothing written beside the out dir');
  assert.ok(!existsSync(join(x.out, 'work')), 'no partial work dir');
  assert.deepEqual(readdirSync(x.out).filter((f) => f.startsWith('.collect')), [], 'no staging dir left');
}

describe('outputs from the guest are untrusted', { concurrency: 3, timeout: 240_000 }, () => {
  test('"../escape" is refused', async () => {
    const x = await runEvil([{ header: { name: 'work/../../escape' }, body: 'gotcha' }]);
    assertRejected(x, /escape/);
  });

  test('an absolute path is refused', async () => {
    const victim = tmp('vmwu-victim-');
    const x = await runEvil([{ header: { name: `${victim}/abs` }, body: 'gotcha' }]);
    assertRejected(x, /abs/);
    assert.deepEqual(readdirSync(victim), []);
  });

  test('a symlink to /etc, then a file through it, is refused', async () => {
    const victim = tmp('vmwu-victim-');
    mkdirSync(join(victim, 'etc'));
    const x = await runEvil([
      { header: { name: 'work/etc', type: 'symlink', linkname: '/etc' } },
      { header: { name: 'work/etc/vmwu-pwned' }, body: 'gotcha' },
    ]);
    assertRejected(x, /work\/etc/);
    assert.ok(!existsSync('/etc/vmwu-pwned'));
  });
});
