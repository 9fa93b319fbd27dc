import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { localClusterUnavailable, startLocalCluster, type LocalCluster } from '../support/local-cluster.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { fixtures, root, runCommand, tmp, vmwu, type CliResult } from '../support/harness.js';
import { missingCommands } from '../support/netns.js';

/**
 * Toil (Debian's toil-cwl-runner) runs a three-step CWL workflow on a real two-node Slurm
 * cluster with vmwu-docker as `docker`: each step is a Slurm job on a node, and
 * there it runs in a VM. The nodes never open the submitter's store: each has a
 * store on its own disk and pulls the step's unit, which `vmwu push --with-base`
 * put in a registry, by the name the workflow gives it, as docker nodes pull
 * images. The job store, the workflow and its inputs are on a directory the
 * nodes mount over sshfs. Outputs equal `cwltool --no-container`'s.
 */
const opts = { nodes: 2, cpus: 1, followSymlinks: true };
const skip = localClusterUnavailable(opts) || (missingCommands(['toil-cwl-runner', 'cwltool', 'docker-registry']).length
  ? 'missing toil-cwl-runner, cwltool or docker-registry (apt-get install toil cwltool docker-registry)' : false);
if (skip) process.stderr.write(`\n!!! SKIPPING Toil on Slurm: ${skip} !!!\n\n`);

/** A CWL output object with each file's content in place of its location. */
function contents(out: string): Record<string, string> {
  const o = JSON.parse(out) as Record<string, { path?: string; location: string }>;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, readFileSync(v.path ?? fileURLToPath(v.location), 'utf8')]));
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

describe('Toil on a two-node Slurm cluster, each step in a VM', { skip, timeout: 1_200_000 }, () => {
  const dir = tmp('vmwu-toil-');
  // What the nodes share with this host: the workflow, its inputs, Toil's job store, the outputs.
  const shared = join(dir, 'shared');
  let cluster: LocalCluster;
  let reg: TestRegistry;
  let image: string;

  before(async () => {
    mkdirSync(shared);
    cluster = await startLocalCluster(join(dir, 'cluster'), { ...opts, share: [shared] });
    // The site's registry, reached by the nodes at this host's address on their network.
    reg = await startRegistry(join(dir, 'registry'), { address: cluster.headAddress });
    const unit = join(dir, 'unit');
    mkdirSync(unit);
    writeFileSync(join(unit, 'vmwu.yaml'), 'name: cwlstep\nversion: 1.0.0\nbase: tiny\nrun: "true"\n');
    ok(await vmwu(['build', unit]), 'vmwu build');
    image = `${reg.host}/lab/cwlstep:1`;
    ok(await vmwu(['push', 'cwlstep:1.0.0', image, '--with-base', '--creds', `${reg.user}:${reg.password}`, '--cert-dir', reg.certDir]), 'vmwu push');
  });

  after(async () => {
    await cluster?.stop();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('toil-cwl-runner --batchSystem slurm: three steps run as Slurm jobs on the nodes, in VMs, with the outputs of --no-container', async () => {
    const cwl = join(shared, 'cwl');
    mkdirSync(cwl);
    for (const f of readdirSync(join(fixtures, 'cwl'))) {
      writeFileSync(join(cwl, f), readFileSync(join(fixtures, 'cwl', f), 'utf8').replace(/dockerPull: vmwu\/tiny/g, `dockerPull: ${image}`));
    }
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(join(root, 'bin', 'vmwu-docker.js'), join(bin, 'docker'));
    const conf = join(dir, 'registries.conf');
    writeFileSync(conf, `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`);
    const auth = join(dir, 'auth.json');
    writeFileSync(auth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
    const files = [join(cwl, 'count-greet-shout.cwl'), join(cwl, 'job.yml')];

    const nativeOut = join(shared, 'native');
    mkdirSync(nativeOut);
    const native = await runCommand('cwltool', ['--quiet', '--no-container', '--outdir', nativeOut, ...files], { cwd: nativeOut });
    assert.equal(native.code, 0, native.stderr);

    // Slurm jobs get the submitter's environment: on each node, a store and scratch on its own disk.
    const out = join(shared, 'out');
    const logs = join(shared, 'logs');
    mkdirSync(out);
    mkdirSync(logs);
    const env = {
      ...cluster.env, PATH: `${bin}:${cluster.env.PATH}`,
      VMWU_HOME: join(cluster.localPath!, 'vmwu'), VMWU_SCRATCH: cluster.localPath!,
      CONTAINERS_REGISTRIES_CONF: conf, REGISTRY_AUTH_FILE: auth,
    };
    const toil = await runCommand('toil-cwl-runner', ['--batchSystem', 'slurm', '--jobStore', join(shared, 'jobstore'), '--writeLogs', logs,
      '--writeLogsFromAllJobs', '--outdir', out, ...files], { cwd: shared, env });
    assert.equal(toil.code, 0, toil.stderr.split('\n').slice(-60).join('\n'));
    assert.deepEqual(contents(toil.stdout), contents(native.stdout));
    assert.equal(contents(toil.stdout).greeting, 'hello vmwu, 3 lines\n');
    assert.equal(contents(toil.stdout).shout, 'HELLO VMWU, 3 LINES\n');

    // Each step's worker log: it ran on a node and called docker (vmwu-docker) with the pushed unit.
    const workerLogs = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8'));
    // cwltool logs the docker command one argument a line.
    const steps = workerLogs.filter((l) => /\$ docker \\\n\s+run \\\n/.test(l));
    assert.equal(steps.length, 3, `each step a Slurm job of its own, through docker; worker logs:\n${workerLogs.join('\n---\n').slice(-4000)}`);
    for (const l of steps) {
      assert.match(l, /on host n[12]\b/, 'the step ran on a compute node');
      assert.ok(l.includes(image), 'with the unit named as the workflow names it');
    }
    // The nodes that ran a step pulled the unit into their own store, and ran its VM there.
    const pulledOn = cluster.nodes.filter((n) => existsSync(join(n.local, 'vmwu', 'vmwu.db')));
    assert.ok(pulledOn.length >= 1);
    for (const n of pulledOn) {
      const images = ok(await vmwu(['docker', 'images'], { VMWU_HOME: join(n.local, 'vmwu'), VMWU_SCRATCH: n.local }), `docker images on ${n.name}`);
      assert.match(images.stdout, /\/lab\/cwlstep\s+1\s/, `${n.name} has the unit by its registry name`);
    }
  });
});
