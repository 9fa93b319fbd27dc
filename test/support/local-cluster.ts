import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { machinesUnavailable, startMachines, type Machine, type MachinePool } from './netns-machines.js';
import { listening, missingCommands, SBIN_PATH } from './netns.js';

/**
 * A throw-away Slurm cluster (Debian slurm-wlm + munge) in a directory, with its
 * own munge key and socket, its own ports, state and spool, for the integration
 * tests and the benchmarks. Needs root; stopped by pid.
 *
 * - `nodes: 0` (the default): this host is the cluster's one node.
 * - `nodes: N`: N compute nodes n1…nN, each a machine of its own
 *   (test/support/netns-machines.ts: network, UTS and mount namespaces, a local
 *   disk of its own at `localPath`, its own sshfs mount of each `share`d
 *   directory), each running slurmd.
 *   Jobs get the submitter's environment (sbatch's default): `VMWU_SCRATCH=localPath`
 *   there makes each node's instances and blob cache node-local.
 * - `accounting`: slurmdbd on a private MariaDB, so `sacct` reports TotalCPU and
 *   MaxRSS.
 */
export interface ClusterOptions {
  /** Per node. */
  cpus?: number;
  memoryMiB?: number;
  nodes?: number;
  /** Directories the nodes mount from this host over sshfs, at the same paths. */
  share?: string[];
  /** Links in the shared directories are followed, as on NFS (netns-machines.ts `followSymlinks`). */
  followSymlinks?: boolean;
  /** Per node name: files or directories bind-mounted over others in its mount namespace (e.g. an empty file over vmwu.db). */
  masks?: Record<string, { from: string; to: string }[]>;
  accounting?: boolean;
  maxArraySize?: number;
  /** Seconds of silence before slurmctld declares a node DOWN (Slurm's default is 300). */
  slurmdTimeout?: number;
}

export interface LocalCluster {
  dir: string;
  conf: string;
  /** Environment for Slurm client commands (and vmwu) to talk to this cluster. */
  env: Record<string, string>;
  /** The compute nodes (none when this host is the node). */
  nodes: Machine[];
  /** The path where each node sees its own local disk (undefined when this host is the node). */
  localPath?: string;
  /** This host's address as the nodes reach it (undefined when this host is the node). */
  headAddress?: string;
  stop(): Promise<void>;
}

/** Why a cluster with these options cannot be started here, or false when it can. */
export function localClusterUnavailable(opts: ClusterOptions = {}): string | false {
  if (process.getuid?.() !== 0) return 'not root (slurmd must run as root)';
  const need = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'sinfo'];
  if (opts.accounting) need.push('slurmdbd', 'mariadbd', 'sacct', 'sacctmgr');
  const missing = missingCommands(need);
  if (missing.length) return `missing ${missing.join(', ')} (apt-get install slurmctld slurmd slurm-client munge${opts.accounting ? ' slurmdbd mariadb-server' : ''})`;
  return opts.nodes ? machinesUnavailable() : false;
}

/** Started daemons, stopped in reverse order by pid: SIGTERM, then SIGKILL after a grace. */
class Daemons {
  private readonly list: { c: ChildProcess; graceMs: number }[] = [];
  constructor(private readonly env: Record<string, string>, private readonly logDir: string) {}
  start(name: string, cmd: string, args: string[], graceMs = 15_000): ChildProcess {
    const log = openSync(join(this.logDir, `${name}.stderr`), 'a');
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', log], env: { ...process.env, ...this.env } });
    closeSync(log);
    return this.add(c, graceMs);
  }
  add(c: ChildProcess, graceMs = 15_000): ChildProcess {
    this.list.push({ c, graceMs });
    return c;
  }
  async stop(): Promise<void> {
    for (const { c, graceMs } of [...this.list].reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      // slurmd ignores SIGTERM while it cannot reach slurmctld.
      const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(t);
    }
  }
}

export async function startLocalCluster(dir: string, opts: ClusterOptions = {}): Promise<LocalCluster> {
  const head = hostname().split('.')[0]!;
  const multi = (opts.nodes ?? 0) > 0;
  const conf = join(dir, 'slurm.conf');
  const env = { SLURM_CONF: conf, PATH: SBIN_PATH };
  for (const d of ['state', 'spool', 'log', 'run']) mkdirSync(join(dir, d), { recursive: true });
  const munge = join(dir, 'munge');
  mkdirSync(munge, { mode: 0o755, recursive: true });
  chmodSync(dir, 0o755);
  writeFileSync(join(munge, 'munge.key'), randomBytes(1024), { mode: 0o600 });
  const socket = join(munge, 'munge.socket');
  // Ports of our own, so a Slurm already running on this host is not disturbed.
  const port = 20000 + Math.floor(Math.random() * 20000);
  const daemons = new Daemons(env, join(dir, 'log'));
  const cpus = opts.cpus ?? (multi ? 1 : 2);
  const mem = opts.memoryMiB ?? (multi ? 3000 : 4000);
  let pool: MachinePool | undefined;

  const stop = async () => {
    spawnSync('scancel', ['--partition=vmwu'], { env: { ...process.env, ...env } });
    for (const n of pool?.machines ?? []) n.kill();
    await daemons.stop();
    await pool?.stop();
  };
  const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
    const end = Date.now() + 180_000;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`local Slurm cluster: ${what} did not come up (logs in ${dir}/log)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  try {
    const names = multi ? Array.from({ length: opts.nodes! }, (_, i) => `n${i + 1}`) : [head];
    // The nodes first: slurm.conf names their addresses and this host's on their bridge.
    if (multi) pool = await startMachines(join(dir, 'nodes'), { names, share: opts.share, followSymlinks: opts.followSymlinks, masks: opts.masks });

    daemons.start('munged', 'munged', ['-F', '-f', `--socket=${socket}`, `--key-file=${join(munge, 'munge.key')}`, `--log-file=${dir}/log/munged.log`,
      `--pid-file=${join(munge, 'munged.pid')}`, `--seed-file=${join(munge, 'munged.seed')}`]);
    await until('munged', () => existsSync(socket));

    const acct: string[] = ['JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none'];
    if (opts.accounting) {
      const db = join(dir, 'db');
      mkdirSync(db, { recursive: true });
      // An empty datadir and no grant tables: a private MariaDB up in well under a second.
      daemons.start('mariadbd', 'mariadbd', ['--no-defaults', '--user=root', `--datadir=${db}`, `--socket=${dir}/run/mysql.sock`, `--port=${port + 2}`,
        '--bind-address=127.0.0.1', `--pid-file=${dir}/run/mariadb.pid`, `--log-error=${dir}/log/mariadb.err`, '--skip-grant-tables', '--skip-name-resolve',
        '--innodb-log-file-size=16M', '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0']);
      await until('mariadbd', () => listening('127.0.0.1', port + 2));
      // slurmdbd has no -f: it reads slurmdbd.conf beside $SLURM_CONF, which must be mode 600.
      writeFileSync(join(dir, 'slurmdbd.conf'), [
        'AuthType=auth/munge', `AuthInfo=socket=${socket}`, 'DbdHost=localhost', 'DbdAddr=127.0.0.1', `DbdPort=${port + 3}`, 'SlurmUser=root',
        'StorageType=accounting_storage/mysql', 'StorageHost=127.0.0.1', `StoragePort=${port + 2}`, 'StorageUser=root', 'StoragePass=unused',
        'StorageLoc=slurm_acct_db', `PidFile=${dir}/run/slurmdbd.pid`, `LogFile=${dir}/log/slurmdbd.log`, '',
      ].join('\n'), { mode: 0o600 });
      daemons.start('slurmdbd', 'slurmdbd', ['-D']);
      await until('slurmdbd', () => listening('127.0.0.1', port + 3));
      // The slurmdbd connection ignores AuthInfo and takes the munge socket from AccountingStoragePass.
      acct.splice(0, acct.length, 'JobAcctGatherType=jobacct_gather/linux', 'JobAcctGatherFrequency=task=1', 'AccountingStorageType=accounting_storage/slurmdbd',
        'AccountingStorageHost=localhost', `AccountingStoragePort=${port + 3}`, `AccountingStoragePass=${socket}`);
    }

    const nodeLines = pool
      ? pool.machines.map((m) => `NodeName=${m.name} NodeAddr=${m.address} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN`)
      : [`NodeName=${head} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN`];
    writeFileSync(conf, [
      `ClusterName=vmwu${port}`, `SlurmctldHost=${head}${pool ? `(${pool.headAddress})` : ''}`, 'SlurmUser=root', 'SlurmdUser=root',
      'AuthType=auth/munge', `AuthInfo=socket=${socket}`, 'CredType=cred/munge',
      'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none', 'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core_Memory',
      `StateSaveLocation=${dir}/state`, `SlurmdSpoolDir=${dir}/spool/%n`, `SlurmctldPidFile=${dir}/run/slurmctld.pid`, `SlurmdPidFile=${dir}/run/slurmd-%n.pid`,
      `SlurmctldPort=${port}`, `SlurmdPort=${port + 1}`, `SlurmctldLogFile=${dir}/log/slurmctld.log`, `SlurmdLogFile=${dir}/log/slurmd-%n.log`,
      'ReturnToService=2', 'MpiDefault=none', 'MailProg=/bin/true', ...acct,
      'KillWait=5', 'MinJobAge=30', 'SchedulerParameters=bf_interval=1,sched_min_interval=0',
      ...(opts.maxArraySize ? [`MaxArraySize=${opts.maxArraySize}`] : []),
      ...(opts.slurmdTimeout ? [`SlurmdTimeout=${opts.slurmdTimeout}`] : []),
      ...nodeLines,
      `PartitionName=vmwu Nodes=${names.join(',')} Default=YES MaxTime=INFINITE State=UP`, '',
    ].join('\n'));
    daemons.start('slurmctld', 'slurmctld', ['-D', '-f', conf]);
    if (!pool) daemons.start('slurmd', 'slurmd', ['-D', '-f', conf], 5000);
    for (const m of pool?.machines ?? []) {
      const log = openSync(join(dir, 'log', `slurmd-${m.name}.stderr`), 'a');
      daemons.add(m.spawn('slurmd', ['-D', '-N', m.name, '-f', conf], { stdio: ['ignore', 'ignore', log], env }), 5000);
      closeSync(log);
    }
    await until('the nodes', () => {
      const r = spawnSync('sinfo', ['-h', '-N', '-o', '%N %t'], { encoding: 'utf8', env: { ...process.env, ...env } });
      return r.status === 0 && r.stdout.trim().split('\n').filter((l) => / idle$/.test(l)).length === names.length;
    });
    if (opts.accounting) await until('the accounting', () => spawnSync('sacctmgr', ['-n', 'list', 'cluster'], { env: { ...process.env, ...env } }).status === 0);
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, conf, env, nodes: pool?.machines ?? [], localPath: pool?.localPath, headAddress: pool?.headAddress, stop };
}
