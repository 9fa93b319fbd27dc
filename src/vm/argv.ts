import { dirname, join } from 'node:path';
import type { BackingImage, DiskSpec, VmSpec } from './spec.js';

/** A VM's QEMU command line, built without I/O from its VmSpec: explicit -blockdev graphs for its disks, its sockets, its network and the seccomp sandbox. */

/** Where passt listens for QEMU: beside the instance's other sockets, in a directory only QEMU's user can enter. */
export function netSocketPath(spec: Pick<VmSpec, 'qmpSocket'>): string {
  if (!spec.qmpSocket) throw new Error('a VM with a network needs its socket directory (qmpSocket)');
  return join(dirname(spec.qmpSocket), 'net.sock');
}

/**
 * QEMU's seccomp filter: no obsolete syscalls, no set*uid, no fork/exec, no
 * scheduler or affinity changes. A guest that takes over QEMU is held to this.
 */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/** The id of the guest RAM's backend: a saved state names its RAM by it. */
export const RAM_ID = 'ram';

/** A kernel command-line value may not contain spaces or quotes: the guest would split it. */
function cmdline(spec: VmSpec & { boot: { kind: 'kernel' } }): string {
  const extra: string[] = [];
  if (spec.accel === 'tcg' && spec.tscKhz) extra.push(`tsc_early_khz=${Math.round(spec.tscKhz)}`);
  return [spec.boot.cmdline, ...extra].filter(Boolean).join(' ');
}

/** QEMU's option syntax doubles commas inside a value. */
export function qemuEscape(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * A disk and what it sits on as `-blockdev` nodes in QEMU's JSON syntax, each
 * over the `file` protocol with its format fixed: QEMU opens these files and no
 * other, whatever their headers name. Only the bottom node, a store blob, keeps
 * its own chain (the store's layers, made by vmwu). The disk's node is named
 * like a `-drive` id, so devices and QMP find it the same way.
 */
function blockdevGraph(d: DiskSpec): string[] {
  const out: string[] = [];
  const node = (name: string, img: { path: string; format: string }, extra: Record<string, unknown>) =>
    out.push('-blockdev', JSON.stringify({ driver: img.format, 'node-name': name, file: { driver: 'file', filename: img.path }, ...extra }));
  const chain: BackingImage[] = [];
  for (let b = d.backing; b; b = b.backing) chain.push(b);
  const name = (k: number) => `${d.id}-b${k}`;
  // Bottom first: a node names only nodes that exist already.
  for (let k = chain.length - 1; k >= 0; k--) {
    node(name(k), chain[k]!, { 'read-only': true, ...(k < chain.length - 1 ? { backing: name(k + 1) } : {}) });
  }
  node(d.id, d, { backing: name(0), ...(d.readOnly ? { 'read-only': true } : { cache: { 'no-flush': true } }) });
  return out;
}

/**
 * The qemu-system-x86_64 argument vector for a spec. Pure, so it is unit-tested
 * without QEMU. Kernel bases use microvm (no PCI, no firmware: the fastest boot
 * under TCG); imported full-disk images use q35 with firmware.
 */
export function buildQemuArgv(spec: VmSpec): string[] {
  const micro = spec.boot.kind === 'kernel';
  const bus = micro ? 'device' : 'pci';
  // RAM is always a named backend, so a saved state loads into any VM of the same
  // shape, whether its RAM is anonymous or a template's file.
  const ram = spec.memoryFile
    ? `memory-backend-file,id=${RAM_ID},size=${spec.memoryMiB}M,mem-path=${qemuEscape(spec.memoryFile.path)},share=${spec.memoryFile.shared ? 'on' : 'off'}`
    : `memory-backend-ram,id=${RAM_ID},size=${spec.memoryMiB}M`;
  const a: string[] = [
    '-name', `vmwu-${spec.name}`,
    '-machine', `${micro ? 'microvm' : 'q35'},memory-backend=${RAM_ID}`,
    '-object', ram,
    '-accel', spec.accel,
  ];
  const cpu = spec.cpuModel ?? (spec.accel === 'kvm' ? 'host' : undefined);
  if (cpu) a.push('-cpu', cpu);
  a.push(
    '-m', `${spec.memoryMiB}M`,
    '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-sandbox', QEMU_SANDBOX,
    // A guest reset ends QEMU: the agent powers off with `reboot -f`.
    '-no-reboot',
  );
  if (spec.holdOnShutdown) a.push('-no-shutdown');
  if (spec.incoming) a.push('-incoming', 'defer');
  if (spec.pidfile) a.push('-pidfile', spec.pidfile);
  if (spec.qmpSocket) a.push('-chardev', `socket,id=qmp,path=${qemuEscape(spec.qmpSocket)}`, '-mon', 'chardev=qmp,mode=control');
  if (spec.consoleSocket) a.push('-chardev', `socket,id=con,path=${qemuEscape(spec.consoleSocket)}`, '-serial', 'chardev:con');
  if (spec.boot.kind === 'kernel') {
    const load = spec.bootStub ?? spec.boot;
    a.push('-kernel', load.kernel, '-initrd', load.initrd, '-append', cmdline({ ...spec, boot: spec.boot }));
  }
  spec.disks.forEach((d) => {
    if (d.backing) {
      a.push(...blockdevGraph(d));
    } else {
      // cache=unsafe: every writable disk is a throw-away overlay or output disk read
      // back only after QEMU exits, so guest flushes need not reach the host disk.
      const opts = [`id=${d.id}`, `file=${qemuEscape(d.path)}`, `format=${d.format}`, 'if=none', d.readOnly ? 'readonly=on' : 'cache=unsafe'];
      a.push('-drive', opts.join(','));
    }
    a.push('-device', `virtio-blk-${bus},drive=${d.id},serial=${qemuEscape(d.serial)}`);
  });
  if (spec.ports.length) {
    a.push('-device', `virtio-serial-${bus}`);
    spec.ports.forEach((p, i) => {
      a.push('-chardev', `socket,id=port${i},path=${qemuEscape(p.socket)}`,
        '-device', `${p.console ? 'virtconsole' : 'virtserialport'},chardev=port${i},name=${qemuEscape(p.name)}`);
    });
  }
  if (spec.network) {
    // passt listens there (src/vm/network.ts).
    a.push('-netdev', `stream,id=net0,server=off,addr.type=unix,addr.path=${qemuEscape(netSocketPath(spec))}`, '-device', `virtio-net-${bus},netdev=net0`);
  }
  if (spec.segment) {
    // The job's private segment: its hub listens there (src/vm/segment-hub.ts); the guest finds the NIC by its MAC.
    a.push('-netdev', `stream,id=seg0,server=off,addr.type=unix,addr.path=${qemuEscape(spec.segment.socket)}`,
      '-device', `virtio-net-${bus},netdev=seg0,mac=${spec.segment.mac}`);
  }
  return a;
}
