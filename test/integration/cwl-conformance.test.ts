import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { cwlMismatch } from '../support/cwl-compare.js';
import { fixtures, root, testHome, tmp } from '../support/harness.js';
import { busyboxBinary, populateBusybox, umociImage } from '../support/oci-images.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

/**
 * The CWL v1.2 conformance tests that need docker (tagged "docker"; a copy with its
 * licence in test/fixtures/cwl-conformance), run by Debian's cwltool with vmwu-docker
 * on PATH as docker, unmodified. They name docker.io/debian:stable-slim and
 * docker.io/bash:4.4; this machine has no Docker Hub, so a local registry (TLS,
 * htpasswd) serves as docker.io's mirror in a registries.conf, as a site mirror
 * would, holding stand-ins made here from busybox: a shell and coreutils for
 * debian:stable-slim, and bash:4.4's entrypoint script for bash:4.4.
 */

interface ConformanceTest { id: string; tool: string; job: string; output?: unknown; should_fail?: boolean; doc: string }

const dir = tmp('vmwu-cwl-conformance-');
const suite = join(fixtures, 'cwl-conformance');
const tests = parse(readFileSync(join(suite, 'conformance_tests.yaml'), 'utf8')) as ConformanceTest[];
let reg: TestRegistry;
let env: NodeJS.ProcessEnv;

function cwltool(t: ConformanceTest, outdir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('cwltool', ['--quiet', '--outdir', outdir, join(suite, t.tool), join(suite, t.job)], { cwd: outdir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Two images in an OCI layout, pushed to the registry under docker.io's names. */
function standIns(): void {
  const bb = busyboxBinary(testHome(), dir);
  const applets = execFileSync(bb, ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  const push = (layout: string, tag: string, repo: string) => execFileSync('skopeo', ['copy', '-q', '--dest-creds', `${reg.user}:${reg.password}`, '--dest-cert-dir', reg.certDir,
    `oci:${layout}:${tag}`, `docker://${reg.host}/library/${repo}`]);

  const debian = umociImage(join(dir, 'debian'), 'stable-slim', join(dir, 'debian-bundle'));
  populateBusybox(debian.rootfs, bb);
  for (const a of applets) {
    try {
      symlinkSync('busybox', join(debian.rootfs, 'bin', a));
    } catch {
      // populateBusybox made it
    }
  }
  debian.commit('stable-slim');
  debian.config(['--config.cmd', 'bash', '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  push(join(dir, 'debian'), 'stable-slim', 'debian:stable-slim');

  const bash = umociImage(join(dir, 'bash'), '4.4', join(dir, 'bash-bundle'));
  populateBusybox(bash.rootfs, bb);
  mkdirSync(join(bash.rootfs, 'usr', 'local', 'bin'), { recursive: true });
  const script = (name: string, text: string) => {
    writeFileSync(join(bash.rootfs, 'usr', 'local', 'bin', name), text);
    chmodSync(join(bash.rootfs, 'usr', 'local', 'bin', name), 0o755);
  };
  script('bash', '#!/bin/sh\nexec /bin/sh "$@"\n');
  // What the official bash image's entrypoint does: arguments that start with - go to bash.
  script('docker-entrypoint.sh', '#!/bin/sh\nif [ "${1#-}" != "$1" ]; then set -- bash "$@"; fi\nexec "$@"\n');
  bash.commit('4.4');
  bash.config(['--config.entrypoint', 'docker-entrypoint.sh', '--config.cmd', 'bash', '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  push(join(dir, 'bash'), '4.4', 'bash:4.4');
}

describe('CWL v1.2 conformance tests that need docker, through vmwu-docker', { concurrency: 1, timeout: 1_200_000 }, () => {
  const report: { id: string; ok: boolean; why: string }[] = [];

  before(async () => {
    reg = await startRegistry(join(dir, 'registry'));
    standIns();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(join(root, 'bin', 'vmwu-docker.js'), join(bin, 'docker'));
    writeFileSync(join(dir, 'registries.conf'), `[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${reg.host}"\ninsecure = true\n`);
    writeFileSync(join(dir, 'auth.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
    env = { ...process.env, VMWU_HOME: testHome(), PATH: `${bin}:${process.env.PATH}`, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'), REGISTRY_AUTH_FILE: join(dir, 'auth.json') };
  });

  after(async () => {
    const passed = report.filter((r) => r.ok).length;
    console.log(`CWL v1.2 conformance, docker tests: ${passed} of ${report.length} passed`);
    for (const r of report) if (!r.ok) console.log(`  failed ${r.id}: ${r.why}`);
    await reg?.stop();
  });

  for (const t of tests) {
    test(`${t.id}: ${t.doc}`, async () => {
      const outdir = join(dir, 'out', t.id);
      mkdirSync(outdir, { recursive: true });
      const r = await cwltool(t, outdir);
      let why: string | null;
      if (t.should_fail) why = r.code === 0 ? `should fail, but succeeded: ${r.stdout}` : null;
      else if (r.code !== 0) why = `cwltool exited ${r.code}: ${r.stderr.split('\n').filter((l) => /error|fail/i.test(l)).slice(-3).join(' | ')}`;
      else why = cwlMismatch(t.output, JSON.parse(r.stdout));
      report.push({ id: t.id, ok: why === null, why: why ?? '' });
      assert.equal(why, null, `${t.id}: ${why}\n${r.stderr}`);
    });
  }
});
