import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { fixtures, root, runCommand, testHome, tmp, vmwu, type CliResult } from '../support/harness.js';

/**
 * cwltool (Debian's) drives vmwu through `vmwu-docker` standing on PATH as `docker`,
 * unmodified: each step of a CWL tool or workflow with a DockerRequirement runs in
 * its own VM, and its outputs equal those of `cwltool --no-container`. Toil's CWL
 * runner, which drives docker through cwltool's code, does the same.
 */

const dir = tmp('vmwu-cwl-');
const cwl = join(fixtures, 'cwl');
const bin = join(dir, 'bin');

function cwltool(args: string[], cwd: string, runner = 'cwltool'): Promise<CliResult> {
  return runCommand(runner, ['--quiet', ...args], { cwd, env: { VMWU_HOME: testHome(), PATH: `${bin}:${process.env.PATH}` } });
}

/** cwltool's output object, with each file's content instead of its (run-specific) location. */
function contents(out: string): Record<string, string> {
  // Toil gives a file's location only (a file: URL); cwltool its path too.
  const o = JSON.parse(out) as Record<string, { path?: string; location: string } | null>;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v ? readFileSync(v.path ?? fileURLToPath(v.location), 'utf8') : '']));
}

async function both(tool: string, job: string | null, extra: string[] = []): Promise<{ vm: Record<string, string>; native: Record<string, string> }> {
  const where = (n: string) => {
    const d = join(dir, `${n}-${tool.replace(/\W/g, '')}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(d);
    return d;
  };
  const files = [join(cwl, tool), ...(job ? [join(cwl, job)] : [])];
  const nativeDir = where('native');
  const native = await cwltool(['--no-container', '--outdir', nativeDir, ...files], nativeDir);
  assert.equal(native.code, 0, native.stderr);
  const vmDir = where('vm');
  const vm = await cwltool([...extra, '--outdir', vmDir, ...files], vmDir);
  assert.equal(vm.code, 0, vm.stderr);
  return { vm: contents(vm.stdout), native: contents(native.stdout) };
}

describe('cwltool with vmwu-docker as docker', { concurrency: 1, timeout: 900_000 }, () => {
  before(() => {
    mkdirSync(bin);
    symlinkSync(join(root, 'bin', 'vmwu-docker.js'), join(bin, 'docker'));
    symlinkSync(join(root, 'bin', 'vmwu-docker.js'), join(bin, 'vmwu-docker'));
  });

  test('docker images lists vmwu bases and units the way cwltool looks them up', async () => {
    const r = await vmwu(['docker', 'images', '--no-trunc', '--all']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID/);
    assert.match(r.stdout, /^vmwu\/tiny\s+latest\s+sha256:[0-9a-f]{64}\s/m);
    const inspect = await vmwu(['docker', 'image', 'inspect', 'vmwu/tiny']);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { Os: string }[])[0]!.Os, 'linux');
    const missing = await vmwu(['docker', 'image', 'inspect', 'vmwu/no-such-thing']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No such image/);
    const refused = await vmwu(['docker', 'run', '--privileged', 'vmwu/tiny', 'true']);
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /--privileged is not supported/);
  });

  test('a CommandLineTool reading stdin: the same output as --no-container', async () => {
    const { vm, native } = await both('count-lines.cwl', 'job.yml');
    assert.deepEqual(vm, native);
    assert.equal(vm.count!.trim(), '3');
  });

  test('a two-step workflow, each step in a VM, writing into its output directory', async () => {
    const { vm, native } = await both('count-and-greet.cwl', 'job.yml');
    assert.deepEqual(vm, native);
    assert.equal(vm.greeting, 'hello vmwu, 3 lines\n');
  });

  test('--user-space-docker-cmd vmwu-docker: --volume mounts', async () => {
    const { vm, native } = await both('count-and-greet.cwl', 'job.yml', ['--user-space-docker-cmd', 'vmwu-docker']);
    assert.deepEqual(vm, native);
  });

  test('Toil (toil-cwl-runner, single machine) runs the workflow, each step in a VM: the same outputs', async () => {
    const { native } = await both('count-and-greet.cwl', 'job.yml');
    const out = join(dir, 'toil-out');
    mkdirSync(out);
    const r = await cwltool(['--jobStore', join(dir, 'toil-jobstore'), '--outdir', out, join(cwl, 'count-and-greet.cwl'), join(cwl, 'job.yml')], out, 'toil-cwl-runner');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(contents(r.stdout), native);
  });

  test('a failing tool: its exit code and stderr reach cwltool', async () => {
    const d = join(dir, 'fails');
    mkdirSync(d);
    const r = await cwltool(['--outdir', d, join(cwl, 'fails.cwl')], d);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the tool says no/);
    assert.match(r.stderr, /permanentFail/);
    assert.deepEqual(readdirSync(d), []);
  });
});
