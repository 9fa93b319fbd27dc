import { accessSync, constants, existsSync, statfsSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { displayValue } from '../control-chars.js';
import { withStore } from './context.js';
import { printJson, table } from './output.js';
import { escapeForTerminal } from './terminal-text.js';
import { runTool } from '../image/tool.js';
import { listBases } from '../store/bases.js';
import { settingsCache } from '../store/db.js';
import { decideAccel, PROBE_TIMEOUT_MS } from '../vm/accel.js';
import { explainAccel, explanationLines, type KvmFacts } from '../vm/kvm-explain.js';
import { hostTscKhz, qemuBinary } from '../vm/host.js';
import { QEMU_SANDBOX } from '../vm/argv.js';
import { qemuUser } from '../vm/qemu-user.js';
import { formatBytes } from '../quantities.js';
import { reapOrphans } from '../run/reap.js';
import { loadConfig } from '../config.js';
import { nodeDirs, openNodeDirs } from '../run/node-dirs.js';
import { storeIsPrivate } from '../store/privacy.js';

/**
 * `vmwu doctor`: whether this host can run jobs (the tools, /dev/kvm and the accelerator verdict,
 * QEMU's user) and the state of the store, its lease and free disk.
 */

interface ToolCheck { tool: string; needed: string; ok: boolean; version: string; package: string }

const tools: [string, string[], string, string][] = [
  [qemuBinary, ['--version'], 'run VMs', 'qemu-system-x86'],
  ['qemu-img', ['--version'], 'overlays and image conversion', 'qemu-utils'],
  ['mke2fs', ['-V'], 'app and root filesystems', 'e2fsprogs'],
  ['debugfs', ['-V'], 'image imports; a base\'s package lists, read for builds', 'e2fsprogs'],
  ['cpio', ['--version'], 'initramfs (base build)', 'cpio'],
  ['apt-get', ['--version'], 'kernel and busybox download (base build)', 'apt'],
  ['dpkg', ['--version'], 'unpacking .deb (base build)', 'dpkg'],
  ['setpriv', ['--version'], 'kill QEMU if vmwu dies; drop root for it', 'util-linux'],
  ['prlimit', ['--version'], 'resource limits for qemu-img on imported images', 'util-linux'],
  ['passt', ['--version'], 'guest network (--network, builds)', 'passt'],
];

async function checkTool([tool, args, needed, pkg]: (typeof tools)[number]): Promise<ToolCheck> {
  try {
    const { stdout, stderr } = await runTool(tool, args);
    return { tool, needed, ok: true, version: (stdout || stderr).split('\n')[0]!.trim(), package: pkg };
  } catch {
    return { tool, needed, ok: false, version: 'missing', package: pkg };
  }
}

export async function doctor(o: { json?: boolean; check?: boolean; deep?: boolean; repair?: boolean; breakLease?: boolean; yes?: boolean }): Promise<void> {
  if (o.breakLease) return (await import('./break-lease.js')).breakLeaseCommand(o);
  if (o.check || o.deep || o.repair) return (await import('./store-check.js')).storeCheck(o);
  await withStore(async (store) => {
    const reaped = await reapOrphans(store);
    const checks = await Promise.all(tools.map(checkTool));
    const bases = listBases(store.db);
    const probeBase = bases.find((b) => b.boot === 'kernel' && b.kernel && b.initrd);
    const accel = await decideAccel(settingsCache(store.db), probeBase && {
      kernel: store.blobs.path(probeBase.kernel!), initrd: store.blobs.path(probeBase.initrd!), cmdline: probeBase.cmdline, digest: probeBase.kernel!,
    });
    const fs = statfsSync(store.paths.root);
    const scratch = (await loadConfig(store.paths.root)).scratch;
    const dirs = nodeDirs(scratch, store.paths.root);
    // Made and checked as a job would: another user's directory there is a problem to show, not a crash.
    const scratchProblem = (() => {
      try {
        openNodeDirs(scratch, store.paths.root);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    })();
    // Its size, cap and what `vmwu gc --cache` would free (src/run/node-cache.ts).
    const cache = scratchProblem ? undefined : await (async () => {
      const { NodeCache, cacheMaxSetting } = await import('../run/node-cache.js');
      try {
        const s = await NodeCache.at(dirs.cache).state(await cacheMaxSetting(store.paths.root));
        return {
          dir: s.dir, bytes: s.totalBytes, capBytes: s.cap.bytes, capFrom: s.cap.why, reclaimableBytes: s.reclaimableBytes,
          entries: s.entries.length, inUse: s.entries.filter((e) => e.held).length,
        };
      } catch (e) {
        return { dir: dirs.cache, problem: (e as Error).message };
      }
    })();
    const journal = String(store.db.pragma('journal_mode', { simple: true }));
    let kvm = 'absent';
    if (existsSync('/dev/kvm')) {
      try {
        accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
        kvm = 'present, accessible';
      } catch {
        kvm = 'present, no access';
      }
    }
    const kvmStat = existsSync('/dev/kvm') ? statSync('/dev/kvm') : undefined;
    const facts: KvmFacts = {
      verdict: accel, devKvm: kvm === 'absent' ? 'absent' : kvm === 'present, no access' ? 'no access' : 'accessible',
      devKvmMode: kvmStat && { mode: kvmStat.mode, gid: kvmStat.gid }, pvm: existsSync('/sys/module/kvm_pvm'), accelEnv: process.env.VMWU_ACCEL,
      qemuUser: qemuUser()?.name, probeBase: probeBase?.name, probeTimeoutMs: PROBE_TIMEOUT_MS,
    };
    const accelWhy = explainAccel(facts);
    const report = {
      ok: checks.every((c) => c.ok) && !scratchProblem,
      tools: checks,
      kvm,
      accel,
      // What was tried for the verdict, what failed, why and the way out (src/vm/kvm-explain.ts).
      accelWhy: { ...accelWhy, pvm: facts.pvm },
      qemu: { user: qemuUser()?.name ?? userInfo().username, sandbox: QEMU_SANDBOX },
      tscKhz: hostTscKhz() ?? null,
      store: store.paths.root,
      // Private to its user (src/store/privacy.ts); this very open closed what an older vmwu left open.
      storePrivacy: { private: storeIsPrivate(store.paths.root), closedNow: store.closedToOthers },
      storeFs: { ...store.fs, journal },
      lease: store.lease(),
      scratch: { ...dirs, ...(scratchProblem ? { problem: scratchProblem } : {}) },
      ...(cache ? { cache } : {}),
      freeBytes: fs.bavail * fs.bsize,
      bases: bases.map((b) => b.name),
      reapedRuns: reaped,
    };
    if (o.json) printJson(report);
    else {
      process.stdout.write(table([['TOOL', 'STATUS', 'FOR', 'DEBIAN PACKAGE'], ...checks.map((c) => [c.tool, c.ok ? c.version : 'MISSING', c.needed, c.package])]));
      process.stdout.write(`\n/dev/kvm     ${kvm}${facts.pvm ? ' (PVM: /sys/module/kvm_pvm)' : ''}\naccelerator  ${accel.accel} (${escapeForTerminal(accel.reason)}${accel.cached ? ', cached' : ''})\n`);
      for (const line of explanationLines(accelWhy)) process.stdout.write(`${escapeForTerminal(line)}\n`);
      process.stdout.write(`qemu runs as ${report.qemu.user}${qemuUser() ? ' (vmwu is root: no capabilities)' : ''}, -sandbox ${QEMU_SANDBOX}\n`);
      process.stdout.write(`store        ${store.paths.root}, ${report.storePrivacy.private ? 'private to you (0700 directories, 0600 files)' : 'OPEN TO OTHER USERS'}${store.closedToOthers ? `: closed just now (${store.closedToOthers} files and directories were readable by others)` : ''}\n`);
      process.stdout.write(`filesystem   ${store.fs.name}${store.fs.network ? ' (network: one machine at a time, database journal' : ' (local, database journal'} ${journal})\n`);
      process.stdout.write(`held by      host ${displayValue(report.lease.host)} since ${displayValue(report.lease.since)}\n`);
      process.stdout.write(`scratch      ${dirs.instances} (from ${dirs.from}); blob cache ${dirs.cache}${scratchProblem ? `\n             UNSAFE: ${escapeForTerminal(scratchProblem)}` : ''}\n`);
      if (cache && 'problem' in cache) process.stdout.write(`node cache   ${escapeForTerminal(cache.problem ?? '')}\n`);
      else if (cache) {
        process.stdout.write(`node cache   ${formatBytes(cache.bytes)} of its cap of ${formatBytes(cache.capBytes)} (${escapeForTerminal(cache.capFrom)}); `
          + `${cache.entries} entr${cache.entries === 1 ? 'y' : 'ies'}, ${cache.inUse} in use; ${formatBytes(cache.reclaimableBytes)} reclaimable (vmwu gc --cache)\n`);
      }
      process.stdout.write(`free disk    ${formatBytes(report.freeBytes)}\nbases        ${escapeForTerminal(report.bases.join(', ')) || 'none (vmwu base build tiny)'}\n`);
      if (reaped.length) process.stdout.write(`reaped       ${reaped.length} orphaned run(s): ${reaped.join(', ')}\n`);
      if (!report.ok) process.stdout.write(`\nmissing: ${checks.filter((c) => !c.ok).map((c) => c.package).join(' ')} (apt-get install them as root)\n`);
    }
    if (!report.ok) process.exitCode = 1;
  });
}
