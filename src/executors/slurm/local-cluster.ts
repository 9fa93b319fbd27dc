import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away one-node Slurm cluster (Debian slurm-wlm + munge) in a directory:
 * its own munge key and socket, its own ports, state and spool under `dir`. For
 * the integration tests and the benchmark; needs root. Stopped by pid.
 */
export interface LocalCluster {
  dir: string;
  conf: string;
  /** Environment for Slurm client commands (and vmwu) to talk to this cluster. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const SBIN_PATH = () => `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;

/** Why a local cluster cannot be started here, or false when it can. */
export function localClusterUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'not root (slurmd must run as root)';
  const missing = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'sinfo']
    .filter((c) => spawnSync('sh', ['-c', `command -v ${c}`], { env: { PATH: SBIN_PATH() } }).status !== 0);
  return missing.length ? `missing ${missing.join(', ')} (apt-get install slurmctld slurmd slurm-client munge)` : false;
}

export async function startLocalCluster(dir: string, opts: { cpus?: number; memoryMiB?: number } = {}): Promise<LocalCluster> {
  const host = hostname().split('.')[0]!;
  const conf = join(dir, 'slurm.conf');
  const env = { SLURM_CONF: conf, PATH: SBIN_PATH() };
  for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const munge = join(dir, 'munge');
  mkdirSync(munge, { mode: 0o700, recursive: true });
  chmodSync(dir, 0o755);
  writeFileSync(join(munge, 'munge.key'), randomBytes(1024), { mode: 0o600 });
  const socket = join(munge, 'munge.socket');
  // Ports of our own, so a Slurm already running on this host is not disturbed.
  const port = 20000 + Math.floor(Math.random() * 20000);
  writeFileSync(conf, [
    'ClusterName=vmwulocal', `SlurmctldHost=${host}`, 'SlurmUser=root', 'SlurmdUser=root',
    'AuthType=auth/munge', `AuthInfo=socket=${socket}`, 'CredType=cred/munge',
    'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none', 'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core_Memory',
    `StateSaveLocation=${dir}/state`, `SlurmdSpoolDir=${dir}/spool`, `SlurmctldPidFile=${dir}/slurmctld.pid`, `SlurmdPidFile=${dir}/slurmd.pid`,
    `SlurmctldPort=${port}`, `SlurmdPort=${port + 1}`, `SlurmctldLogFile=${dir}/log/slurmctld.log`, `SlurmdLogFile=${dir}/log/slurmd.log`,
    'ReturnToService=2', 'MpiDefault=none', 'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
    'KillWait=5', 'MinJobAge=30', 'SchedulerParameters=bf_interval=1,sched_min_interval=0',
    `NodeName=${host} CPUs=${opts.cpus ?? 2} RealMemory=${opts.memoryMiB ?? 4000} State=UNKNOWN`,
    `PartitionName=vmwu Nodes=${host} Default=YES MaxTime=INFINITE State=UP`, '',
  ].join('\n'));
  const daemons: ChildProcess[] = [];
  const start = (cmd: string, args: string[]) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    c.on('exit', (code) => { if (code) process.stderr.write(`${cmd} exited ${code}: ${err}\n`); });
    daemons.push(c);
  };
  const stop = async () => {
    spawnSync('scancel', ['--partition=vmwu'], { env: { ...process.env, ...env } });
    for (const c of [...daemons].reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
    }
  };
  const until = async (what: string, ok: () => boolean) => {
    const end = Date.now() + 180_000;
    while (!ok()) {
      if (Date.now() > end) {
        await stop();
        throw new Error(`local Slurm cluster: ${what} did not come up (logs in ${dir}/log)`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  start('munged', ['-F', '-f', `--socket=${socket}`, `--key-file=${join(munge, 'munge.key')}`, `--log-file=${dir}/log/munged.log`,
    `--pid-file=${join(munge, 'munged.pid')}`, `--seed-file=${join(munge, 'munged.seed')}`]);
  await until('munged', () => existsSync(socket));
  start('slurmctld', ['-D', '-f', conf]);
  start('slurmd', ['-D', '-f', conf]);
  await until('the node', () => {
    const r = spawnSync('sinfo', ['-h', '-o', '%t'], { encoding: 'utf8', env: { ...process.env, ...env } });
    return r.status === 0 && r.stdout.trim() === 'idle';
  });
  return { dir, conf, env, stop };
}
