import { spawn, spawnSync, type ChildProcess, type SpawnOptions, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { destroyNetns, listening, missingCommands, netnsPids, SBIN_PATH, sh } from './netns.js';

/**
 * Throw-away machines on this one: each is a network namespace (a veth into a
 * bridge, its own address), a UTS namespace (its own host name) and a mount
 * namespace (its own sshfs mount of each shared directory, served by an sshd of
 * this host on the bridge, and a local disk of its own at `localPath`). Two
 * machines then share no page cache, no locks and no shared memory through the
 * shared directories, as two NFS clients do not. For the integration tests and
 * benchmarks; needs root.
 *
 * Each machine is held by an anchor process (`sleep`) whose namespaces later
 * commands enter with nsenter.
 */
export interface Machine {
  name: string;
  address: string;
  /** Its network namespace (`ip netns`). */
  ns: string;
  /** Its local disk (what it sees at the pool's `localPath`), as seen from this host. */
  local: string;
  /** Every process of the machine. */
  pids(): number[];
  /** The machine dies: every process of it is killed at once, as in a power loss. */
  kill(): void;
  /** argv for a command that runs inside the machine (its network, host name and mounts). */
  argv(cmd: string, args: string[]): [string, string[]];
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  run(cmd: string, args: string[], opts?: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string }): SpawnSyncReturns<string>;
}

export interface MachinePool {
  /** This host's address on the bridge. */
  headAddress: string;
  /** The same path on every machine, each seeing a directory of its own there: node-local scratch. */
  localPath: string;
  machines: Machine[];
  stop(): Promise<void>;
}

export interface MachineOptions {
  /** Host names, one machine each. */
  names: string[];
  /** Directories each machine mounts from this host over sshfs, at the same paths. */
  share?: string[];
  /**
   * Links in the shared directories are resolved by this host (sshfs
   * `follow_symlinks`). An NFS client resolves an absolute link itself, at the
   * same paths; sshfs refuses to read one at all (EPERM) unless the server does.
   */
  followSymlinks?: boolean;
  /** Per machine: files or directories bind-mounted over others in its mount namespace. */
  masks?: Record<string, { from: string; to: string }[]>;
}

/** Why machines cannot be made here, or false when they can. */
export function machinesUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'not root (namespaces, mounts and sshd need root)';
  const missing = missingCommands(['ip', 'nsenter', 'unshare', 'sshd', 'sshfs', 'ssh-keygen']);
  return missing.length ? `missing ${missing.join(', ')} (apt-get install iproute2 util-linux openssh-server sshfs)` : false;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startMachines(dir: string, opts: MachineOptions): Promise<MachinePool> {
  mkdirSync(dir, { recursive: true });
  const localPath = join(dir, 'local');
  mkdirSync(localPath, { recursive: true });
  chmodSync(dir, 0o755);
  // vmwu is root in the machines, so QEMU runs as an unprivileged user there: it must
  // be able to pass through to the local disk (a test's mkdtemp parent is 0700).
  for (let d = dirname(localPath); d !== dirname(d); d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if (!(mode & 0o001)) chmodSync(d, mode | 0o001);
  }
  const tag = randomBytes(2).toString('hex');
  const used = sh('ip', ['-o', 'addr']);
  let subnet: number;
  do subnet = 20 + Math.floor(Math.random() * 80); while (used.includes(` 10.${subnet}.0.`));
  const headAddress = `10.${subnet}.0.1`;
  const bridge = `vwbr${tag}`;
  const anchors: ChildProcess[] = [];
  const machines: Machine[] = [];
  let sshd: ChildProcess | undefined;

  const stop = async () => {
    for (const m of machines) m.kill();
    for (const a of anchors) a.kill('SIGKILL');
    sshd?.kill('SIGKILL');
    for (const m of machines) destroyNetns(m.ns);
    spawnSync('ip', ['link', 'del', bridge], { env: { PATH: SBIN_PATH } });
  };

  try {
    sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${headAddress}/24`, 'dev', bridge]);
    sh('ip', ['link', 'set', bridge, 'up']);

    // This host serves the shared directories over SFTP on the bridge, to the machines only.
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const clientKey = join(dir, 'machine_key');
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'vmwu-machine', '-f', clientKey]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
    writeFileSync(join(dir, 'known_hosts'), `${headAddress} ${readFileSync(`${hostKey}.pub`, 'utf8')}`);
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, 'sshd_config'), [
      'Port 22', `ListenAddress ${headAddress}`, `HostKey ${hostKey}`, `PidFile ${dir}/sshd.pid`, `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
      'Subsystem sftp internal-sftp', 'MaxSessions 64', 'MaxStartups 64', 'LogLevel ERROR', '',
    ].join('\n'));
    const log = openSync(join(dir, 'sshd.log'), 'a');
    sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', log] });
    closeSync(log);
    const t0 = Date.now();
    while (!(await listening(headAddress, 22))) {
      if (sshd.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`sshd on ${headAddress} did not start: ${readFileSync(join(dir, 'sshd.log'), 'utf8').trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // Without sshfs's own metadata cache (20 s by default), a mount behaves like an NFS client:
    // attributes cached for a second, exclusive creates and directory changes decided by the server.
    const sshfsOpts = `dir_cache=no,${opts.followSymlinks ? 'follow_symlinks,' : ''}IdentityFile=${clientKey},UserKnownHostsFile=${dir}/known_hosts,StrictHostKeyChecking=yes,BatchMode=yes,ServerAliveInterval=5`;
    for (const [i, name] of opts.names.entries()) {
      const ns = `vwm${tag}${i + 1}`;
      const address = `10.${subnet}.0.${11 + i}`;
      const outside = `vw${tag}${i + 1}o`;
      const inside = `vw${tag}${i + 1}i`;
      const local = join(dir, 'machines', name, 'local');
      mkdirSync(local, { recursive: true });
      chmodSync(local, 0o1777);
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
      sh('ip', ['link', 'set', outside, 'master', bridge]);
      sh('ip', ['link', 'set', outside, 'up']);
      sh('ip', ['link', 'set', inside, 'netns', ns]);
      sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', inside]);
      sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', inside, 'up']);
      sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      const ready = join(dir, 'machines', name, 'ready');
      const script = [
        'set -e',
        `hostname ${q(name)}`,
        `mount --bind ${q(local)} ${q(localPath)}`,
        ...(opts.share ?? []).map((p) => `sshfs -o ${q(sshfsOpts)} ${q(`root@${headAddress}:${p}`)} ${q(p)}`),
        ...(opts.masks?.[name] ?? []).map((m) => `mount --bind ${q(m.from)} ${q(m.to)}`),
        `touch ${q(ready)}`,
        'exec sleep 2147483647',
      ].join('\n');
      const scriptPath = join(dir, 'machines', name, 'start.sh');
      writeFileSync(scriptPath, script + '\n');
      const err = openSync(join(dir, 'machines', name, 'start.log'), 'a');
      // nsenter, not `ip netns exec`: the latter remounts /sys (slurmd then finds no cgroup filesystem).
      const anchor = spawn('nsenter', [`--net=/run/netns/${ns}`, 'unshare', '--uts', '--mount', '--propagation', 'private', 'sh', scriptPath],
        { stdio: ['ignore', 'ignore', err], env: { ...process.env, PATH: SBIN_PATH } });
      closeSync(err);
      anchors.push(anchor);
      const enter = (cmd: string, args: string[]): [string, string[]] => ['nsenter', ['-t', String(anchor.pid), '-n', '-u', '-m', '--', cmd, ...args]];
      const m: Machine = {
        name, address, ns, local,
        pids: () => netnsPids(ns),
        kill: () => {
          for (const p of netnsPids(ns)) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              // gone already
            }
          }
        },
        argv: enter,
        spawn: (cmd, args, o = {}) => {
          const [c, a] = enter(cmd, args);
          return spawn(c, a, { ...o, env: { ...process.env, PATH: SBIN_PATH, ...o.env } });
        },
        run: (cmd, args, o = {}) => {
          const [c, a] = enter(cmd, args);
          return spawnSync(c, a, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH, ...o.env }, timeout: o.timeoutMs, input: o.input });
        },
      };
      machines.push(m);
      const t1 = Date.now();
      while (!existsSync(ready)) {
        if (anchor.exitCode !== null || Date.now() - t1 > 30_000) {
          throw new Error(`machine ${name} did not start: ${readFileSync(join(dir, 'machines', name, 'start.log'), 'utf8').trim()}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { headAddress, localPath, machines, stop };
}
