import { Command, CommanderError, Option } from 'commander';
import { EXIT_VMWU_ERROR, reportError } from './output.js';

/** The `vmwu` command line: every command with its arguments and options, each handing its work to the command module that carries it out. */

/**
 * The CLI is thin: parse, call the library, print. Command modules are imported
 * lazily so that `vmwu run` does not pay for loading what it does not use.
 */
export async function main(argv: string[]): Promise<void> {
  // docker's own command line, whole: commander would take its options for vmwu's.
  if (argv[2] === 'docker') {
    process.exitCode = await (await import('./docker.js')).dockerMain(argv.slice(3));
    return;
  }
  const program = new Command('vmwu')
    .description('virtual machine work units: run scientific jobs in real VMs')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();

  program.command('doctor')
    .description('check host tools, the accelerator verdict, the store and free disk; --check: check the store\'s consistency (fsck); --break-lease: free a store a dead machine holds')
    .option('--check', 'check the store: blobs, layer chains, units, half-written runs and attempts, leftover temp files; exit 1 on a problem')
    .option('--deep', 'with --check: also hash every registered blob against its digest')
    .option('--repair', 'with --check: remove leftovers that are safe to remove, unregister unused layers whose blob is gone')
    .option('--break-lease', 'end the store lease of a machine that died holding it, without opening the store (asks you to type its host name)')
    .option('--yes', 'with --break-lease: do not ask (for scripts)')
    .option('--json', 'print one JSON object')
    .action(async (o) => (await import('./doctor.js')).doctor(o));

  const base = program.command('base').description('manage bases (bootable guest OS images)');
  base.command('build').argument('<kind>', 'tiny | debian')
    .description('build a base (tiny: Debian kernel + busybox-static + agent, rootless; debian: mmdebstrap minbase)')
    .option('--name <name>', 'register it under this name (default: tiny, debian:SUITE)')
    .option('--suite <suite>', 'Debian suite for debian bases', 'bookworm')
    .option('--mirror <url>', 'Debian mirror for debian bases')
    .option('--json', 'print the base as JSON')
    .action(async (kind, o) => (await import('./base.js')).baseBuild(kind, o));
  base.command('add').argument('<image>', 'a disk image: raw, or qcow2 without backing or data files')
    .description('import a disk image as a base (see docs/imported-images.md for what it must contain)')
    .requiredOption('--name <name>', 'the base name')
    .option('--arch <arch>', 'its architecture', 'x86_64')
    .option('--os <os>', 'its operating system', 'linux')
    .option('--boot <how>', 'bios: its own bootloader under firmware (q35); kernel: boot --kernel/--initrd', 'bios')
    .option('--format <raw|qcow2>', "the image's format (default: read from its first bytes; never guessed by qemu-img)")
    .option('--kernel <file>', 'kernel for --boot kernel')
    .option('--initrd <file>', 'initrd for --boot kernel')
    .option('--cmdline <text>', 'kernel command line for --boot kernel')
    .option('--apt', 'the image has apt-get, so builds on it may install packages')
    .option('--json', 'print the base as JSON')
    .action(async (image, o) => (await import('./base.js')).baseAdd(image, o));
  registryFlags(base.command('pull').argument('<ref>', 'docker://HOST/REPO:TAG (or @sha256:…), oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE')
    .description('make a container image into a base: its layers become vmwu layers, its config (entrypoint, cmd, env, workdir, user) is kept')
    .option('--name <name>', 'the base name (default: the repository\'s last part and tag)'))
    .option('--json', 'print the base as JSON')
    .action(async (ref, o) => (await import('./base.js')).basePull(ref, o));
  program.command('login').argument('<host>', 'a registry, e.g. registry.example.org or 127.0.0.1:5000')
    .description('store registry credentials in the containers auth file (the one podman and skopeo read), after checking them with the registry')
    .option('--username <user>', 'the user (asked for when not given)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--authfile <file>', 'the auth file to write')
    .option(CERT_DIR[0], CERT_DIR[1])
    .option(TLS_VERIFY[0], TLS_VERIFY[1])
    .action(async (host, o) => (await import('./login.js')).login(host, o));
  base.command('list').description('list bases').option('--json', 'print JSON')
    .option('--arch <arch>', 'only this architecture').option('--os <os>', 'only this OS')
    .action(async (o) => (await import('./base.js')).baseList(o));
  base.command('show').argument('<name>').description('show one base').option('--json', 'print JSON')
    .action(async (name, o) => (await import('./base.js')).baseShow(name, o));

  program.command('run')
    .description('run one job in a fresh VM: vmwu run UNIT [options] [-- COMMAND…], or vmwu run --base tiny [options] -- COMMAND…')
    .argument('[args...]', 'UNIT[:VERSION] then an optional command; with --base, only the command')
    .option('--base <name>', 'boot a bare base (name or digest) instead of a unit')
    .option('--entrypoint <cmd>', 'on a base pulled from an image: run this instead of its entrypoint (\'\' clears it), as docker run does')
    .option('--app <dir>', 'directory shown read-only at /app in the guest')
    .option('--input <path>', 'file or directory put in the work dir (repeatable)', collect, [])
    .option('--param <k=v>', 'parameter: exported as $k and substituted as ${k} in the command (repeatable)', collect, [])
    .option('--out <dir>', 'where outputs land (new or empty directory)')
    .option('--keep <glob>', 'keep only work-dir files matching (repeatable)', collect, [])
    .option('--memory <size>', 'guest memory, e.g. 256M')
    .option('--cpus <n>', 'guest vCPUs')
    .option('--timeout <duration>', 'walltime, e.g. 30s, 10m')
    .option('--max-output <size>', 'cap on the output archive, e.g. 2G')
    .option('--network', 'give the guest user-mode NAT networking (off by default)')
    .option('--cold', 'boot the guest, even where a template could restore it faster')
    .option('--checkpointable', 'keep the guest\'s RAM in a file of its own, so that vmwu checkpoint saves and restores it at memory speed')
    .option('--nodes <n>', 'N VMs of the unit on a private network (node0 … node{N-1}, $VMWU_HOSTFILE); the command runs on node0')
    .option('--outputs <whose>', 'with --nodes: node0 (default) or all (every VM\'s outputs, VM K\'s under node-K/)')
    .option('--data <name[:version]>', 'attach a dataset read-only at /data/NAME (repeatable; see vmwu data)', collect, [])
    .option('--scratch <size>', 'a sparse scratch disk this big holds the work dir (/scratch, $TMPDIR), e.g. 50G')
    .option('--root-size <size>', 'grow the root disk to this size (bases with resize2fs)')
    .option('--stdin <file>', 'feed this file to the job\'s standard input')
    .option('--after <experiment[:succeeded|:finished]>', 'start only once that experiment has succeeded (or ended, with :finished); not run, with the reason, if it cannot')
    .option('--inputs-from <experiment:glob>', 'put the matching files of every succeeded job of that experiment in the work dir, each under job-N/ (repeatable)', collect, [])
    .option('--raw', 'print the job\'s output as the exact bytes it wrote (by default control characters are escaped)')
    // --cache first: then neither given leaves it undefined (commander), the default: cached unless the job has a network.
    .option('--cache', 'take a cached result for a job with --network too')
    .option('--no-cache', 'run the job even when the same job already succeeded (the result cache answers it otherwise)')
    .option('--json', 'print one JSON object with the result')
    .action(async (command, o) => (await import('./run.js')).run(command, o));

  program.command('checkpoint')
    .description('save a running job (its VM\'s memory, devices and disks) so that it can go on later, elsewhere, or after a crash; prints the checkpoint id')
    .argument('<run>', 'run id (or a unique prefix)')
    .option('--stop', 'stop the job once it is saved (vmwu restore goes on with it)')
    .option('--json', 'print the checkpoint record')
    .action(async (run, o) => (await import('./checkpoint.js')).checkpoint(run, o));
  program.command('restore')
    .description('go on with a checkpointed job in a new VM on this host, to its end, as the same run')
    .argument('<checkpoint>', 'checkpoint id (or a unique prefix)')
    .option('--out <dir>', 'where outputs land (default: the run\'s out dir)')
    .option('--raw', 'print the job\'s output as the exact bytes it wrote (by default control characters are escaped)')
    .option('--json', 'print one JSON object with the result')
    .action(async (ck, o) => (await import('./checkpoint.js')).restore(ck, o));
  program.command('checkpoints')
    .description('list checkpoints, of one run or all')
    .argument('[run]', 'run id (or a unique prefix)')
    .option('--json', 'print JSON')
    .action(async (run, o) => (await import('./checkpoint.js')).checkpoints(run, o));

  program.command('warm')
    .description('boot once and save this host\'s template for such jobs now, so that even the first job restores instead of booting')
    .argument('[unit]', 'UNIT[:VERSION]')
    .option('--base <name>', 'a bare base instead of a unit')
    .option('--memory <size>', 'guest memory of the jobs, e.g. 256M')
    .option('--cpus <n>', 'vCPUs of the jobs')
    .option('--app', 'for jobs run with --app DIR')
    .option('--network', 'for jobs run with --network')
    .option('--keep <n>', 'and keep N clones of it started and paused, ready for `vmwu run`, until stopped (Ctrl-C)')
    .option('--idle <duration>', 'with --keep: stop after this long without a job, e.g. 10m')
    .option('--json', 'print one JSON object (with --keep: one when the pool is ready)')
    .action(async (unit, o) => (await import('./warm.js')).warm(unit, o));

  program.command('build')
    .description('build a unit from vmwu.yaml (layers are cached; package sets reuse templates)')
    .argument('[path]', 'a directory holding vmwu.yaml, or the file', '.')
    .option('--tag <name[:version]>', 'register under this name/version instead of the spec\'s')
    .option('--pull', 'pull the container image the spec\'s base: names again, even when a base from it is here')
    .option('-q, --quiet', 'do not stream the build log')
    .option('--json', 'print one JSON object')
    .action(async (path, o) => (await import('./build.js')).build(path, o));
  program.command('units').description('list units').option('--json', 'print JSON')
    .action(async (o) => (await import('./build.js')).units(o));
  const unit = program.command('unit').description('inspect units');
  unit.command('show').argument('<unit>', 'NAME or NAME:VERSION').option('--json', 'print JSON')
    .action(async (ref, o) => (await import('./build.js')).unitShow(ref, o));
  program.command('rm').description('remove a unit (its layers stay until gc)').argument('<unit>', 'NAME or NAME:VERSION')
    .action(async (ref) => (await import('./build.js')).unitRm(ref));
  program.command('export')
    .description('write a unit to one portable file: manifest, OVF descriptor and layers (digests inside)')
    .argument('<unit>', 'NAME or NAME:VERSION')
    .option('-o, --output <file>', 'the bundle to write (default: NAME-VERSION.vmwu)')
    .option('--with-base', 'include the base (kernel, initrd, root disk), so a store without it can import the unit')
    .option('--with-data', 'include the datasets the unit\'s data: names, so a store without them can run it')
    .option('--sign <key>', 'sign the bundle with this private key (vmwu key generate), in FILE.sig, as cosign sign-blob does')
    .option('--json', 'print {file, bytes, blobs, withBase, datasets, signature}')
    .action(async (ref, o) => (await import('./bundle.js')).exportCmd(ref, o));
  program.command('import')
    .description('verify a bundle (every digest) and add its unit, layers, base and datasets to the store; a bad bundle changes nothing')
    .argument('<file>', 'a .vmwu bundle')
    .option('--force', 'replace a unit of the same name and version that has other content')
    .option('--verify <pubkey>', 'refuse the bundle unless FILE.sig is its signature by this public key')
    .option('--json', 'print one JSON object')
    .action(async (file, o) => (await import('./bundle.js')).importCmd(file, o));
  registryFlags(program.command('push')
    .description('put a unit into an OCI registry as an artifact (its manifest, OVF and layers); blobs the registry has are not sent again')
    .argument('<unit>', 'NAME or NAME:VERSION')
    .argument('<ref>', 'HOST/REPO:TAG (docker:// optional), or oci:DIR:TAG for a local OCI layout')
    .option('--with-base', 'include the base (kernel, initrd, root disk)')
    .option('--with-data', 'include the datasets the unit\'s data: names')
    .option('--sign <key>', 'sign the pushed manifest with this private key (vmwu key generate), as cosign signs'))
    .option('--json', 'print one JSON object')
    .action(async (unitRef, ref, o) => (await import('./push.js')).push(unitRef, ref, o));
  registryFlags(program.command('pull')
    .description('bring a unit pushed with vmwu push into the store, fetching only the blobs it lacks; every digest is verified')
    .argument('<ref>', 'HOST/REPO:TAG or HOST/REPO@sha256:… (docker:// optional), or oci:DIR:TAG')
    .option('--verify <pubkey>', 'refuse the unit unless its manifest carries a signature by this public key')
    .option('--force', 'replace a unit of the same name and version that has other content'))
    .option('--json', 'print one JSON object')
    .action(async (ref, o) => (await import('./pull.js')).pull(ref, o));
  program.command('docker').description('docker\'s command line for workflow engines (also the vmwu-docker executable): images, image inspect, pull, run (docs/docker.md)')
    .argument('[args...]');
  const key = program.command('key').description('signing keys (ECDSA P-256, as cosign uses)');
  key.command('generate').description('write PREFIX.key (private, mode 0600; encrypted when VMWU_KEY_PASSWORD is set) and PREFIX.pub')
    .option('--out <prefix>', 'where to write the pair', 'vmwu')
    .option('--json', 'print the file names as JSON')
    .action(async (o) => (await import('./key.js')).keyGenerate(o));
  registryFlags(program.command('verify')
    .description('check the signature of a pushed unit (REF) or of a bundle (FILE, signed in FILE.sig)')
    .argument('<target>', 'HOST/REPO:TAG, HOST/REPO@sha256:…, or a .vmwu bundle')
    .requiredOption('--key <pubkey>', 'the signer\'s public key (vmwu key generate, or cosign.pub)'))
    .option('--json', 'print one JSON object')
    .action(async (target, o) => (await import('./verify.js')).verifyCmd(target, o));
  program.command('gc')
    .description('remove layers no unit uses, blobs nothing names, stale temporary files, and this host\'s templates that are stale or unused; trim this host\'s node cache to its cap')
    .option('--dry-run', 'only list what would be removed')
    .option('--cache', 'also empty this host\'s node cache (blob copies, templates) of everything no running job uses')
    .option('--json', 'print one JSON object')
    .action(async (o) => (await import('./gc.js')).gc(o));
  base.command('rm').argument('<name>').description('remove a base no unit uses (its blobs stay until gc)').option('--json', 'print JSON')
    .action(async (name, o) => (await import('./gc.js')).baseRm(name, o));

  program.command('logs')
    .description('print the stdout/stderr of a run (live with -f)')
    .argument('<run-id>', 'run id or unique prefix, or EXPERIMENT/JOB for the latest attempt of a sweep job')
    .option('-f, --follow', 'keep printing while the run goes on')
    .option('--console', 'print the guest console instead')
    .option('--raw', 'print the exact bytes the guest wrote (by default control characters are escaped, so that they cannot act on the terminal)')
    .action(async (id: string, o) => (id.includes('/') ? (await import('./sweep.js')).jobLogs(id, o) : (await import('./logs.js')).logs(id, o)));

  program.command('runs').description('list recent runs').option('--json', 'print JSON')
    .option('-n, --limit <n>', 'how many', '20')
    .action(async (o) => (await import('./logs.js')).runs(o));

  program.command('shell').argument('[unit]', 'the unit to open a shell in (NAME or NAME:VERSION)')
    .description('an interactive root shell in a throw-away instance of a unit, a base (--base) or a sweep job (--job EXP/JOB); exit N returns N')
    .option('--base <name>', 'a bare base instead of a unit')
    .option('--job <exp/job>', 'the unit, inputs, job script, parameters and datasets of a sweep job, to re-run it by hand')
    .option('--input <path>', 'file or directory put in the work dir (repeatable)', collect, [])
    .option('--data <name[:version]>', 'attach a dataset read-only at /data/NAME (repeatable)', collect, [])
    .option('--network', 'give the guest outbound networking')
    .option('--memory <size>', 'guest memory, e.g. 1G')
    .option('--cpus <n>', 'guest vCPUs')
    .option('--timeout <duration>', 'end the session after this long (default 8h)')
    .action(async (unit, o) => (await import('./shell.js')).shell(unit, o));
  const data = program.command('data').description('read-only datasets that jobs attach at /data/NAME (--data NAME)');
  data.command('add').argument('<path>', 'a file or directory')
    .description('make a read-only image of it once, store it by digest, and register it')
    .requiredOption('--name <name[:version]>', 'the name jobs attach it by (/data/NAME in the guest); the version defaults to "latest"')
    .option('--json', 'print JSON')
    .action(async (path, o) => (await import('./data.js')).dataAdd(path, o));
  data.command('list').description('list the datasets').option('--json', 'print JSON')
    .action(async (o) => (await import('./data.js')).dataList(o));
  data.command('show').argument('<name[:version]>').option('--json', 'print JSON')
    .action(async (ref, o) => (await import('./data.js')).dataShow(ref, o));
  data.command('rm').argument('<name[:version]>').description('unregister a dataset (gc frees its image once nothing uses it)').option('--json', 'print JSON')
    .action(async (ref, o) => (await import('./data.js')).dataRm(ref, o));
  const hosts = program.command('hosts').description('the pool of SSH hosts for --executor ssh');
  hosts.command('add').argument('<user@host[:port]>')
    .description('add a host: checks reachability, its vmwu and QEMU, its capacity, and records its host key')
    .option('--name <name>', 'name in the pool (default: the host part)')
    .option('--key <file>', 'private key to log in with (default: ssh-agent)')
    .option('--slots <n>', 'jobs at once there (default: from its cores and free memory, per sweep)')
    .option('--label <k=v>', 'label for --hosts selection (repeatable)', collect, [])
    .option('--vmwu <command>', 'how to start vmwu on the host', 'vmwu')
    .option('--store <dir>', 'VMWU_HOME on the host (default: its own default)')
    .option('--fingerprint <SHA256:…>', 'the host key fingerprint you expect; without it the first key seen is recorded')
    .option('--timeout <duration>', 'connect timeout', '15s')
    .option('--json', 'print JSON')
    .action(async (spec, o) => (await import('./hosts.js')).hostsAdd(spec, o));
  hosts.command('list').description('list the pool').option('--json', 'print JSON')
    .action(async (o) => (await import('./hosts.js')).hostsList(o));
  hosts.command('rm').argument('<name>').description('remove a host from the pool').option('--json', 'print JSON')
    .action(async (name, o) => (await import('./hosts.js')).hostsRm(name, o));
  hosts.command('drain').argument('<name>')
    .description('take a host out of placement; its running jobs stop at a checkpoint and go on on other hosts (a sweep must be running to move them)')
    .option('--no-wait', 'mark it and return; do not wait for its jobs to move')
    .option('--timeout <duration>', 'how long to wait for its jobs to move', '10m')
    .option('--json', 'print JSON')
    .action(async (name, o) => (await import('./hosts.js')).hostsDrain(name, o));
  hosts.command('undrain').argument('<name>').description('put a drained host back into placement').option('--json', 'print JSON')
    .action(async (name, o) => (await import('./hosts.js')).hostsUndrain(name, o));
  hosts.command('check').argument('[names...]').description('connect to hosts (all by default), verify their keys, refresh their facts; exit 1 if one is down')
    .option('--timeout <duration>', 'connect timeout', '15s').option('--json', 'print JSON')
    .action(async (names: string[], o) => (await import('./hosts.js')).hostsCheck(names, o));

  program.command('sweep')
    .description('run a Nimrod plan file as an experiment: one work-unit VM per job, with retries and crash recovery')
    .argument('<plan>', 'the plan file (.pln); root: paths are relative to its directory')
    .option('--unit <unit>', 'the unit every job boots (NAME or NAME:VERSION)')
    .option('--base <name>', 'boot a bare base instead of a unit (e.g. tiny, for quick tests)')
    .option('--name <name>', 'experiment name (default: the plan file\'s name)')
    .option('--slots <n>', 'instances at once (default: min(cores, floor(free memory × 0.8 / job memory)))')
    .option('--retries <n>', 'retries of a failed job, with backoff', '2')
    .option('--memory <size>', 'guest memory per job, e.g. 256M')
    .option('--cpus <n>', 'vCPUs per job')
    .option('--timeout <duration>', 'walltime per job, e.g. 30s, 10m')
    .option('--cold', 'boot every job, even where a template could restore it faster')
    .option('--data <name[:version]>', 'attach a dataset read-only at /data/NAME to every job (repeatable; see vmwu data)', collect, [])
    .option('--scratch <size>', 'a sparse scratch disk per job holds its work dir, e.g. 50G')
    .option('--stdin <file>', 'feed this file to every job\'s standard input')
    .option('--nodes <n|param>', 'VMs per job on a private network (node0 … , $VMWU_HOSTFILE; the commands run on node0), or the plan parameter that gives each job its number')
    .option('--outputs <whose>', 'with --nodes: node0 (default) or all (every VM\'s outputs, VM K\'s under node-K/)')
    .option('--checkpoint-every <duration>', 'checkpoint each running job this often, e.g. 10m: a job lost with its host or runner goes on from its latest')
    .option('--seed <n>', 'seed for random parameters (default: drawn, and recorded)')
    .option('--max-jobs <n>', 'refuse a plan of more jobs than this (default 100000)')
    .option('--dry-run', 'parse and expand the plan and print the jobs; boots nothing')
    .option('--detach', 'return at once; the experiment runs in a background process')
    .option('--json', 'print JSON')
    .addOption(new Option('--executor <kind>', 'where the jobs run').choices(['local', 'slurm', 'ssh']).default('local'))
    .option('--hosts <selector>', 'which pool hosts: label=value and/or host names, comma-separated (--executor ssh; default: all)')
    .option('--host-timeout <duration>', 'a host silent this long is lost and its jobs requeued elsewhere (--executor ssh; default 15s)')
    .option('--spread', 'each VM of a job of several VMs (--nodes) on a different host, joined over SSH (--executor ssh)')
    .option('--partition <p>', 'Slurm partition (--executor slurm)')
    .option('--account <a>', 'Slurm account (--executor slurm)')
    .option('--slurm-opt <opt>', 'extra sbatch option, e.g. --slurm-opt=--qos=x (repeatable; --executor slurm)', collect, [])
    .option('--create-only', 'create the experiment and return without running it (e.g. for vmwu export-jobs)')
    .option('--after <experiment[:succeeded|:finished]>', 'start only once that experiment has succeeded (or, with :finished, ended however); cancelled with the reason if it cannot')
    .option('--no-cache', 'run every job, even one whose result the store holds from an identical job (the result cache)')
    .option('--slurm-time <duration>', 'time limit of each Slurm allocation, e.g. 1h: a longer job is checkpointed before the limit and goes on in the next allocation (--executor slurm)')
    .option('--max-parallel <n>', 'array tasks at once, sbatch --array=…%N (--executor slurm; default: --slots, else Slurm decides)')
    .action(async (plan, o) => (await import('./sweep.js')).sweep(plan, o));
  program.command('sweep-task', { hidden: true })
    .description('run one job attempt here from its task file and report it as files (what a batch task runs on a node)')
    .requiredOption('--task <file>', 'the task file the submitter wrote')
    .option('--batch-id <id>', 'the batch system\'s id of this task, for the record')
    .action(async (o) => (await import('./sweep.js')).sweepTaskCommand(o));
  const remote = program.command('remote', { hidden: true }).description('what the SSH executor runs on a pool host (JSON replies)');
  remote.command('info').action(async () => (await import('./remote.js')).remoteCommands.info());
  remote.command('have').argument('[digests...]').action(async (d: string[]) => (await import('./remote.js')).remoteCommands.have(d));
  remote.command('receive').argument('<digest>').requiredOption('--size <n>').requiredOption('--offset <n>')
    .action(async (d: string, o) => (await import('./remote.js')).remoteCommands.receive(d, o));
  remote.command('register-base').action(async () => (await import('./remote.js')).remoteCommands.registerBase());
  remote.command('checkpoint').argument('<job-id>').option('--stop').action(async (id: string, o: { stop?: boolean }) => (await import('./remote.js')).remoteCommands.checkpoint(id, o));
  remote.command('fetch-checkpoint').argument('<job-id>').argument('<checkpoint>')
    .action(async (id: string, ck: string) => (await import('./remote.js')).remoteCommands.fetchCheckpoint(id, ck));
  for (const sub of ['run', 'fetch', 'receiveCheckpoint', 'kill', 'clean'] as const) {
    remote.command(sub.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).argument('<job-id>').action(async (id: string) => (await import('./remote.js')).remoteCommands[sub](id));
  }
  remote.command('gc').action(async () => (await import('./remote.js')).remoteCommands.gc());
  program.command('export-jobs').argument('<experiment>')
    .description('write the experiment\'s jobs for another batch system: an HTCondor submit description or a PBS/TORQUE array script')
    .addOption(new Option('--format <format>', 'htcondor | pbs').choices(['htcondor', 'pbs']).makeOptionMandatory())
    .option('-o, --output <file>', 'write here instead of stdout')
    .action(async (name, o) => (await import('./export-jobs.js')).exportJobs(name, o));
  program.command('experiments').description('list experiments with their progress').option('--json', 'print JSON')
    .action(async (o) => (await import('./sweep.js')).experiments(o));
  program.command('status').argument('<experiment>').description('state, progress, ETA and failures of an experiment')
    .option('--json', 'print JSON')
    .action(async (name, o) => (await import('./sweep.js')).status(name, o));
  program.command('results').argument('<experiment>').description('per job: params, status, exit code, attempts, timings, outputs')
    .option('--json', 'print JSON')
    .action(async (name, o) => (await import('./sweep.js')).results(name, o));
  program.command('cancel').argument('<experiment>').description('cancel an experiment: stop its VMs, cancel its pending jobs')
    .option('--json', 'print JSON')
    .action(async (name, o) => (await import('./sweep.js')).cancel(name, o));
  program.command('suspend').argument('<experiment>')
    .description('checkpoint and stop every running job of an experiment and stop it; vmwu resume goes on from the checkpoints')
    .option('--json', 'print the checkpoints taken')
    .action(async (name, o) => (await import('./sweep.js')).suspend(name, o));
  program.command('resume').argument('<experiment>').description('continue an interrupted, suspended, crashed or cancelled experiment; what is done stays done, stopped jobs go on from their checkpoints')
    .option('--slots <n>', 'instances at once for this run')
    .option('--detach', 'return at once; the experiment runs in a background process')
    .option('--json', 'print JSON')
    .addOption(new Option('--worker', 'run as the background process of --detach').hideHelp())
    .action(async (name, o) => (await import('./sweep.js')).resume(name, o));

  program.command('serve')
    .description('web dashboard and JSON API to watch and steer experiments (prints the URL with its access token)')
    .option('--port <n>', 'TCP port (0: any free one)', '8080')
    .option('--host <addr>', 'address to bind; beyond loopback only with TLS (or use an SSH tunnel: docs/api.md)', '127.0.0.1')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (with --tls-key)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--allow-host <name>', 'a host name clients may use to reach the server (repeatable; the URL uses the first)', collect, [])
    .action(async (o) => (await import('./serve.js')).serve(o));

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_VMWU_ERROR;
      return;
    }
    const json = argv.includes('--json');
    process.exitCode = reportError(e, json);
  }
}

const CERT_DIR = ['--cert-dir <dir>', 'a directory of CA certificates (*.crt) for the registry'] as const;
const TLS_VERIFY = ['--tls-verify <bool>', 'verify the registry\'s TLS certificate (default true)'] as const;

/** The registry flags skopeo users know, on every command that reaches a registry (src/cli/registry-flags.ts reads them). */
function registryFlags(c: Command): Command {
  return c
    .option('--creds <user:password>', 'registry credentials (default: the containers auth file, see vmwu login)')
    .option('--authfile <file>', 'a containers auth file (default: $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json)')
    .option(CERT_DIR[0], CERT_DIR[1])
    .option(TLS_VERIFY[0], TLS_VERIFY[1]);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
