import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { destroyNetns, listening, missingCommands, SBIN_PATH, sh } from './netns.js';

/**
 * Throw-away SSH hosts on this machine: each is a network namespace joined to
 * the host by a veth pair, with its own address and its own `sshd` that accepts
 * one test key. For the integration tests and the benchmark; needs root. Taking
 * a host "off the network" is `ip link set … down` on its veth: connections to
 * it go silent, exactly as when a real host loses power or its cable.
 */
export interface NetnsHost {
  name: string;
  ns: string;
  address: string;
  /** A VMWU_HOME of its own, so each host has its own store. */
  store: string;
  hostKeyPub: string;
  down(): void;
  up(): void;
}

export interface NetnsPool {
  hosts: NetnsHost[];
  /** Private key the hosts accept for root. */
  key: string;
  stop(): Promise<void>;
}

/** Why test hosts cannot be made here, or false when they can. */
export function netnsHostsUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'not root (network namespaces and sshd need root)';
  const missing = missingCommands(['ip', 'sshd', 'ssh-keygen']);
  return missing.length ? `missing ${missing.join(', ')} (apt-get install iproute2 openssh-server)` : false;
}

export async function startNetnsHosts(dir: string, count: number): Promise<NetnsPool> {
  const tag = randomBytes(2).toString('hex');
  const subnet = 100 + (parseInt(tag, 16) % 150);
  mkdirSync(dir, { recursive: true });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const key = join(dir, 'client_key');
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'vmwu-test', '-f', key]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${key}.pub`));
  chmodSync(dir, 0o755);
  const hosts: NetnsHost[] = [];
  const daemons: ChildProcess[] = [];
  const stop = async () => {
    for (const d of daemons) d.kill('SIGKILL');
    // Whatever still runs in a namespace (a job of a host taken down mid-sweep) goes with it.
    for (const h of hosts) destroyNetns(h.ns);
  };
  try {
    for (let i = 1; i <= count; i++) {
      const ns = `vmwu-${tag}-${i}`;
      const outside = `vw${tag}${i}o`;
      const inside = `vw${tag}${i}i`;
      const address = `10.${subnet}.${i}.2`;
      const hdir = join(dir, `host-${i}`);
      mkdirSync(join(hdir, 'store'), { recursive: true });
      sh('ip', ['netns', 'add', ns]);
      const host: NetnsHost = {
        name: `h${i}`, ns, address, store: join(hdir, 'store'), hostKeyPub: '',
        down: () => sh('ip', ['link', 'set', outside, 'down']),
        up: () => sh('ip', ['link', 'set', outside, 'up']),
      };
      hosts.push(host);
      sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
      sh('ip', ['link', 'set', inside, 'netns', ns]);
      sh('ip', ['addr', 'add', `10.${subnet}.${i}.1/24`, 'dev', outside]);
      sh('ip', ['link', 'set', outside, 'up']);
      sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', inside]);
      sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', inside, 'up']);
      sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      const hostKey = join(hdir, 'ssh_host_ed25519_key');
      sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
      host.hostKeyPub = readFileSync(`${hostKey}.pub`, 'utf8');
      const conf = join(hdir, 'sshd_config');
      writeFileSync(conf, [
        'Port 22', `ListenAddress ${address}`, `HostKey ${hostKey}`, `PidFile ${join(hdir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'MaxSessions 64', 'MaxStartups 64',
        // A submitter that vanished is noticed, and its sessions (and their VMs) ended.
        'ClientAliveInterval 5', 'ClientAliveCountMax 3', 'LogLevel ERROR', '',
      ].join('\n'));
      const log = openSync(join(hdir, 'sshd.log'), 'a');
      const d = spawn('ip', ['netns', 'exec', ns, '/usr/sbin/sshd', '-D', '-e', '-f', conf], { stdio: ['ignore', 'ignore', log], env: { ...process.env, PATH: SBIN_PATH } });
      closeSync(log);
      daemons.push(d);
      const t0 = Date.now();
      while (!(await listening(address, 22))) {
        if (d.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`sshd in ${ns} did not start: ${readFileSync(join(hdir, 'sshd.log'), 'utf8').trim()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { hosts, key, stop };
}
