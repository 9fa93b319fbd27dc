import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import tar from 'tar-stream';
import { writeBundle } from '../../src/bundle/archive.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, encodeManifest, type BundleManifestBody } from '../../src/bundle/manifest.js';
import type { Digest } from '../../src/store/blobs.js';
import { fixturesDir, repoRoot } from '../support/fixture-path.js';
import { corpusDir } from './fuzz.js';

/**
 * Writes the seed corpus (test/fuzz/corpus/<target>/seed-*): the project's plan and spec
 * fixtures, and small archives made the ways vmwu meets them (tar-stream, GNU tar in
 * gnu and pax formats, vmwu's own bundle writer). Inputs kept from findings (the other
 * files there) are left alone. Run: node dist/test/fuzz/make-seeds.js
 */
function seedDir(target: string): string {
  const dir = corpusDir(target);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.startsWith('seed-')) rmSync(join(dir, f));
  return dir;
}

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith(suffix)).map((f) => join(dir, f));
}

// ── plans ─────────────────────────────────────────────────────────────────
{
  const dir = seedDir('plan');
  for (const f of [...filesUnder(fixturesDir, '.pln'), ...filesUnder(join(repoRoot, 'examples'), '.pln')]) {
    copyFileSync(f, join(dir, `seed-${basename(dirname(f))}-${basename(f)}`));
  }
  const extra: Record<string, string> = {
    'domains.pln': [
      'parameter a label "A value" float range from -1 to 1 points 5',
      'parameter b integer random from 1 to 6 points 3',
      'parameter c text select oneof "x" "y z" default "y z"',
      'parameter d files select anyof "*.txt" "data/*"',
      'parameter e float random from 0 to 1',
      'parameter f integer range from 10 to 0 step -5',
      'task main',
      '    onerror ignore',
      '    redirect stdout append to out_${jobindex}.txt',
      '    copy root:$d node:in_$jobindex',
      '    exec /app/run "${a}" $b \'$c\' ${e}$f',
      '    shexec "echo \\"$$HOME\\" \\x41\\101\\n > log"',
      '    redirect stderr off',
      '    copy node:out_${jobindex}.txt results/',
      'endtask',
      '',
    ].join('\n'),
    'classic.pln': '\ufeff# classic dialect\r\nparameter x integer range from 1 to 3;\r\n/* a comment\r\n over lines */ parameter y text default "a\\\r\nb";\r\ntask main\r\n  node:execute echo ${x} $y; \\\r\n  more;\r\n  copy node:out root:out.$x;\r\nendtask\r\n',
  };
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, `seed-${name}`), text);
}

// ── unit specs ────────────────────────────────────────────────────────────
{
  const dir = seedDir('spec');
  copyFileSync(join(fixturesDir, 'specs', 'full', 'vmwu.yaml'), join(dir, 'seed-full.yaml'));
  copyFileSync(join(repoRoot, 'examples', 'mandelbrot', 'vmwu.yaml'), join(dir, 'seed-mandelbrot.yaml'));
  const extra: Record<string, string> = {
    'minimal.yaml': 'name: x\nversion: 1\nbase: tiny\n',
    'object-base.yaml': 'name: sim\nversion: "2.0"\nbase: {arch: x86_64, os: linux}\nrun: [/app/sim, "${n}", 3, true]\nparams: {n: 0x10, rate: 1.5e3, on: false, s: "t"}\nresources:\n  memory: 512M\n  timeout: 90\n',
    'anchors.yaml': 'name: &n a.b_c-1\nversion: 1.0.0+build\nbase: tiny\nfiles:\n  - &f {from: ./src, to: /app}\n  - {from: in, to: /in}\npackages: [python3, gcc=4:12]\nsetup: >-\n  make\n  -C /app\noutputs: [\'./out/*.txt\', "**/*.log"]\nnetwork: false\nparams: {x: *n}\n',
    'json.yaml': '{"name": "j", "version": "1.2.3", "base": "tiny", "run": "/bin/echo \'a b\' \\"c\\" ${x}", "params": {"x": 1}}\n',
  };
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, `seed-${name}`), text);
}

// ── output archives ───────────────────────────────────────────────────────
type Entry = Partial<tar.Header> & { name: string; content?: string };

async function pack(entries: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of p) chunks.push(c as Buffer); })();
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (e?: Error | null) => (e ? reject(e) : resolve());
      if (content !== undefined) p.entry(h, content, cb);
      else p.entry({ type: 'directory', ...h }, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

{
  const dir = seedDir('collect');
  writeFileSync(join(dir, 'seed-stream.tar'), await pack([
    { name: 'meta/', type: 'directory' }, { name: 'meta/exit_code', content: '0\n' }, { name: 'meta/timings', content: 'exec 1.5\n' },
    { name: 'work/', type: 'directory' }, { name: 'work/ok.txt', content: 'fine' }, { name: 'work/d/', type: 'directory', mode: 0o700 },
    { name: 'work/d/e.txt', content: 'nested', mode: 0o4755 }, { name: 'work/d/up', type: 'symlink', linkname: '../ok.txt' },
    { name: `work/${'n'.repeat(120)}.txt`, content: 'long name' },
  ]));
  // GNU tar as a guest with coreutils would write it: long names in ././@LongLink, or in pax headers.
  const tree = mkdtempSync(join(tmpdir(), 'vmwu-seed-'));
  try {
    mkdirSync(join(tree, 'meta'));
    mkdirSync(join(tree, 'work', 'a', 'b'), { recursive: true });
    writeFileSync(join(tree, 'meta', 'exit_code'), '3\n');
    writeFileSync(join(tree, 'work', 'a', 'b', 'data.txt'), 'x'.repeat(700));
    writeFileSync(join(tree, 'work', `${'long-'.repeat(30)}.txt`), 'y');
    symlinkSync('a/b/data.txt', join(tree, 'work', 'link'));
    for (const format of ['gnu', 'pax']) {
      const out = execFileSync('tar', [`--format=${format}`, '--owner=0', '--group=0', '--mtime=2026-01-01', '--sort=name', '--blocking-factor=1', '-cf', '-', '-C', tree, 'meta', 'work']);
      writeFileSync(join(dir, `seed-gnutar-${format}.tar`), out);
    }
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

// ── bundles and their manifests ───────────────────────────────────────────
{
  const bundles = seedDir('bundle');
  const manifests = seedDir('manifest');
  const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
  const scratch = mkdtempSync(join(tmpdir(), 'vmwu-seed-'));
  try {
    for (const withBase of [false, true]) {
      const blob = (name: string, size: number) => {
        const data = Buffer.alloc(size, name);
        const path = join(scratch, name);
        writeFileSync(path, data);
        return { digest: sha(data), size, path };
      };
      const layers = [blob('layer-top', 700), blob('layer-bottom', 100)];
      const kernel = blob('kernel', 30);
      const initrd = blob('initrd', 20);
      const root = blob('root', 600);
      const baseDigest = sha('base');
      const ovf = '<?xml version="1.0" encoding="UTF-8"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2"/>\n';
      const chain = layers.map((l) => l.digest);
      const at = '2026-01-01T00:00:00.000Z';
      const body: BundleManifestBody = {
        format: BUNDLE_FORMAT, formatVersion: BUNDLE_VERSION, createdAt: at, producer: 'vmwu seed', withBase,
        unit: {
          name: 'demo', version: '1.0.0', digest: sha('unit'), base: 'tiny', baseDigest, top: chain[0]!, chain,
          run: ['/app/run', '${n}'], params: { n: { default: '1', type: 'int' } }, outputs: ['*.txt'], resources: { memoryMiB: 128 },
          network: false, buildKey: 'key', packages: ['gcc'], createdAt: at,
        },
        layers: layers.map((l, i) => ({ digest: l.digest, parent: chain[i + 1] ?? root.digest, baseDigest, kind: i ? 'packages' as const : 'app' as const, packages: i ? ['gcc'] : [], key: `k${i}`, size: l.size, createdAt: at })),
        base: {
          name: 'tiny', digest: baseDigest, arch: 'x86_64', os: 'linux', description: 'seed', boot: 'kernel', kernel: kernel.digest, initrd: initrd.digest,
          root: root.digest, cmdline: 'console=ttyS0', size: root.size, virtualSize: 1 << 20, packageManager: null, image: null, createdAt: at,
        },
        ovf: { digest: sha(ovf), size: Buffer.byteLength(ovf) },
        blobs: [...layers.map((l) => ({ digest: l.digest, size: l.size, role: 'layer' as const })),
          ...(withBase ? [{ digest: kernel.digest, size: kernel.size, role: 'kernel' as const }, { digest: initrd.digest, size: initrd.size, role: 'initrd' as const }, { digest: root.digest, size: root.size, role: 'root' as const }] : [])],
      };
      const manifest = encodeManifest(body);
      const name = withBase ? 'with-base' : 'layers';
      writeFileSync(join(manifests, `seed-${name}.json`), manifest);
      await writeBundle({ out: join(bundles, `seed-${name}.vmwu`), manifest, ovf, blobs: [...layers, ...(withBase ? [kernel, initrd, root] : [])], mtime: new Date(at) });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
console.log(`seeds written under ${dirname(corpusDir('plan'))}`);
