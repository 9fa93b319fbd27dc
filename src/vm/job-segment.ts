/**
 * The private network of a multi-VM job (`--nodes N`): one Ethernet segment that
 * only the job's own VMs are on, with fixed addresses and names (node0 … node{N-1}).
 * Pure: addresses, names, the hostfile, and which VMs a frame goes to. The hub
 * that carries the frames is src/vm/segment-hub.ts.
 */

/** At most this many VMs on one segment: the addresses are one /24. */
export const MAX_SEGMENT_VMS = 254;

export const SEGMENT = { prefix: '10.213.0', prefixLength: 24 } as const;

/** VM k's address on the segment (node0 is .1). */
export function segmentAddress(k: number): string {
  return `${SEGMENT.prefix}.${k + 1}`;
}

/** VM k's MAC on the segment: locally administered, the job's VM number in the last byte. */
export function segmentMac(k: number): string {
  return `52:54:00:d5:00:${k.toString(16).padStart(2, '0')}`;
}

/**
 * The segment NIC's MAC in a fast-start template, and so in each clone of it: the
 * clone's agent sets its own (segmentMac) before the link comes up, so one
 * template serves every VM of every multi-VM job of its shape.
 */
export const SEGMENT_TEMPLATE_MAC = '52:54:00:d5:ff:ff';

export function segmentHostName(k: number): string {
  return `node${k}`;
}

/** Lines for /etc/hosts in every VM of a job of `n`. */
export function segmentHosts(n: number): string {
  return Array.from({ length: n }, (_, k) => `${segmentAddress(k)} ${segmentHostName(k)}\n`).join('');
}

/**
 * `$VMWU_HOSTFILE`: each VM once per vCPU. That is the one form both mpirun's read
 * alike (OpenMPI takes `NAME slots=N` and refuses `NAME:N`; MPICH's hydra the other
 * way round), and both count a repeated name as that many slots.
 */
export function segmentHostfile(n: number, cpus: number): string {
  return Array.from({ length: n }, (_, k) => `${segmentHostName(k)}\n`.repeat(cpus)).join('');
}

const ETH_HEADER = 14;

function macOf(b: Buffer, at: number): string {
  return [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * The VMs a frame from VM `from` goes to, on a segment of `n`: to the one its
 * destination MAC names, or to every other VM for broadcast and multicast. A frame
 * whose source MAC is not the sender's own is dropped (a guest cannot pose as
 * another VM), and so is one for a MAC no VM of the job has.
 */
export function frameTargets(frame: Buffer, from: number, n: number): number[] {
  if (frame.length < ETH_HEADER) return [];
  if (macOf(frame, 6) !== segmentMac(from)) return [];
  const others = Array.from({ length: n }, (_, k) => k).filter((k) => k !== from);
  // The group bit: broadcast and multicast (ARP asks this way).
  if (frame[0]! & 1) return others;
  const dest = macOf(frame, 0);
  return others.filter((k) => segmentMac(k) === dest);
}

/**
 * The VMWU_* settings the agent sets a VM of the segment up with (guest/agent).
 * `token`: the job's own secret (hex), which vmwu-rsh asks of every command it is
 * sent: only the job's VMs are on the segment, and this keeps it so should one not be.
 */
export function segmentEnv(k: number, n: number, cpus: number, token: string): Record<string, string> {
  if (!/^[0-9a-f]{32,}$/.test(token)) throw new Error('a segment token is hex');
  return {
    NODE_INDEX: String(k), NODES: String(n), SEGMENT_MAC: segmentMac(k), SEGMENT_TEMPLATE_MAC, SEGMENT_ADDRESS: `${segmentAddress(k)}/${SEGMENT.prefixLength}`,
    SEGMENT_HOSTS: segmentHosts(n), SEGMENT_HOSTFILE: segmentHostfile(n, cpus), SEGMENT_TOKEN: token,
  };
}
