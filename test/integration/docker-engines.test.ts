import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { processesMentioning, root, testHome, tmp, until, vmwu, type CliResult } from '../support/harness.js';

/**
 * `vmwu-docker` as Nextflow, Toil and users drive it: Nextflow's own `docker run`
 * line (as its .command.run writes it) on a work dir with absolute links between
 * task dirs, `docker stop`/`rm` by name, `--user`, `--read-only`, and read-write
 * volumes that get the job's writes and nothing else.
 */

const dir = tmp('vmwu-docker-');
// Names live in the shared test store: each run of this file takes its own.
const tag = randomBytes(3).toString('hex');
const bin = join(dir, 'bin');

/** A shell line run as the engines run docker: `docker` on PATH is vmwu-docker. */
function sh(script: string, env: NodeJS.ProcessEnv = {}, onStdout?: (s: string) => void): Promise<CliResult> {
  return new Promise((resolve) => {
    const c = spawn('sh', ['-c', script], { env: { ...process.env, VMWU_HOME: testHome(), PATH: `${bin}:${process.env.PATH}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; onStdout?.(stdout); });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    c.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('vmwu-docker for Nextflow and by hand', { concurrency: 1, timeout: 900_000 }, () => {
  before(async () => {
    mkdirSync(bin);
    symlinkSync(join(root, 'bin', 'vmwu-docker.js'), join(bin, 'docker'));
    // Nextflow runs its task scripts with /bin/bash: a unit on the tiny base gives it one (busybox's sh).
    const spec = join(dir, 'nxfbash');
    mkdirSync(spec);
    writeFileSync(join(spec, 'vmwu.yaml'), 'name: nxfbash\nversion: 1.0.0\nbase: tiny\nsetup: |\n  printf \'#!/bin/sh\\nexec sh "$@"\\n\' > /bin/bash\n  chmod 755 /bin/bash\nrun: [sh]\n');
    const b = await vmwu(['build', spec, '-q']);
    assert.equal(b.code, 0, b.stderr);
  });

  test("Nextflow's docker run line: a task reads an absolute link to another task's output and writes its own", async () => {
    const work = join(dir, 'work');
    const upstream = join(work, '3f', 'a1b2c3');
    const task = join(work, '7f', 'caf718');
    mkdirSync(upstream, { recursive: true });
    mkdirSync(task, { recursive: true });
    writeFileSync(join(upstream, 'reads.txt'), 'acgt\nttga\n');
    // nxf_stage links a task's inputs to the tasks that made them, by absolute path.
    symlinkSync(join(upstream, 'reads.txt'), join(task, 'reads.txt'));
    writeFileSync(join(task, '.command.sh'), '#!/bin/bash -ue\ntr a-z A-Z < reads.txt > upper.txt\necho "task in $PWD as $NXF_TASK_WORKDIR"\n');
    const line = `docker run -i --cpu-shares 2048 --memory 512m -e "NXF_TASK_WORKDIR" -v ${work}:${work} -w "$NXF_TASK_WORKDIR" --name $NXF_BOXID vmwu/nxfbash:1.0.0 /bin/bash -ue ${task}/.command.sh`;
    const r = await sh(`cd "$NXF_TASK_WORKDIR" && ${line}`, { NXF_TASK_WORKDIR: task, NXF_BOXID: `nxf-${tag}` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `task in ${task} as ${task}\n`);
    assert.equal(readFileSync(join(task, 'upper.txt'), 'utf8'), 'ACGT\nTTGA\n');
    // Nothing else changed: the link is still a link, the upstream task untouched.
    assert.equal(readFileSync(join(upstream, 'reads.txt'), 'utf8'), 'acgt\nttga\n');
    // The exit handler's `docker rm $NXF_BOXID` frees the name.
    const rm = await sh('docker rm $NXF_BOXID', { NXF_BOXID: `nxf-${tag}` });
    assert.equal(rm.code, 0, rm.stderr);
    const again = await sh(`docker rm nxf-${tag}`);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`No such container: nxf-${tag}`));
  });

  test('docker stop by name stops the VM: exit 143, the name freed after rm, no QEMU left', async () => {
    const name = `long-${tag}`;
    let up!: () => void;
    const isUp = new Promise<void>((r) => { up = r; });
    const running = sh(`docker run --name ${name} vmwu/tiny sh -c "echo up; sleep 300"`, {}, (out) => { if (out.includes('up')) up(); });
    await Promise.race([isUp, running.then((r) => assert.fail(`ended before it was up: ${r.stderr}`))]);
    const taken = await sh(`docker run --name ${name} vmwu/tiny true`);
    assert.equal(taken.code, 125);
    assert.match(taken.stderr, new RegExp(`name "/${name}" is already in use`));
    const stop = await sh(`docker stop ${name}`);
    assert.equal(stop.code, 0, stop.stderr);
    const r = await running;
    assert.equal(r.code, 143, r.stderr);
    const id = readFileSync(join(testHome(), 'docker', 'names', name), 'utf8');
    await until(() => processesMentioning(id).length === 0);
    assert.equal((await sh(`docker rm ${name}`)).code, 0);
    assert.equal((await sh(`docker run --rm --name ${name} vmwu/tiny true`)).code, 0);
    assert.equal(existsSync(join(testHome(), 'docker', 'names', name)), false);
  });

  test('--user UID:GID runs as that user, --read-only keeps the root read-only, a read-write volume gets only the writes', async () => {
    const out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'before.txt'), 'kept\n');
    const cid = join(dir, 'c.cid');
    const r = await sh(`docker run --rm --cidfile ${cid} --user 1000:1000 --read-only --volume ${out}:/out:rw --workdir /out vmwu/tiny sh -c 'id -u; echo new > made.txt; touch /root/x 2>/dev/null || echo root is read-only; cat before.txt'`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '1000\nroot is read-only\nkept\n');
    assert.equal(readFileSync(join(out, 'made.txt'), 'utf8'), 'new\n');
    assert.match(readFileSync(cid, 'utf8'), /^[0-9a-f]{12}$/);
    const name = await sh('docker run --user nobody vmwu/tiny true');
    assert.equal(name.code, 125);
    assert.match(name.stderr, /knows users by number only/);
  });

  test('a big read-only volume comes as an image made once, mounted erofs, not copied; a changed source makes a new one; a small one is copied', async () => {
    const ref = join(dir, 'ref');
    mkdirSync(ref);
    writeFileSync(join(ref, 'a.bin'), randomBytes(12 * 1024 ** 2));
    writeFileSync(join(ref, 'b.bin'), randomBytes(5 * 1024 ** 2));
    const small = join(dir, 'small');
    mkdirSync(small);
    writeFileSync(join(small, 's.txt'), 'small\n');
    const sha = (f: string) => createHash('sha256').update(readFileSync(join(ref, f))).digest('hex');
    const line = `docker run --rm -v ${ref}:/ref:ro -v ${small}:/small:ro vmwu/tiny sh -c '`
      + `for m in /ref /small; do grep " $m " /proc/mounts | cut -d" " -f3; done; sha256sum /ref/a.bin /ref/b.bin | cut -c1-64; cat /small/s.txt; `
      + `ls /data 2>/dev/null | wc -l; touch /ref/x 2>/dev/null || echo read-only'`;
    const rows = () => {
      const db = new Database(join(testHome(), 'vmwu.db'), { readonly: true });
      try {
        return db.prepare('SELECT digest FROM volume_images WHERE source = ? ORDER BY used_at').all(ref) as { digest: string }[];
      } finally {
        db.close();
      }
    };
    const expect = () => `erofs\n${fsKindOfCopy}\n${sha('a.bin')}\n${sha('b.bin')}\nsmall\n0\nread-only\n`;
    let fsKindOfCopy = '';
    const first = await sh(line);
    assert.equal(first.code, 0, first.stderr);
    // The small one is a copy on the job's input disk, whatever its filesystem: not an image.
    fsKindOfCopy = first.stdout.split('\n')[1]!;
    assert.notEqual(fsKindOfCopy, 'erofs');
    assert.equal(first.stdout, expect());
    assert.equal(rows().length, 1);
    const second = await sh(line);
    assert.equal(second.stdout, expect(), second.stderr);
    assert.equal(rows().length, 1, 'the same image again, none made');
    writeFileSync(join(ref, 'b.bin'), randomBytes(5 * 1024 ** 2));
    const third = await sh(line);
    assert.equal(third.stdout, expect(), third.stderr);
    assert.equal(rows().length, 2, 'a changed source makes a new image');
    assert.notEqual(rows()[0]!.digest, rows()[1]!.digest);
  });

  test('a failing command: its own exit code; an option vmwu lacks: refused by name with 125', async () => {
    const script = join(dir, 'exit7.sh');
    writeFileSync(script, 'exit 7\n');
    chmodSync(script, 0o755);
    const r = await sh(`docker run --rm -v ${dir}:${dir}:ro vmwu/tiny sh ${script}`);
    assert.equal(r.code, 7, r.stderr);
    const refused = await sh('docker run --gpus all vmwu/tiny true');
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /--gpus is not supported by vmwu/);
  });
});
