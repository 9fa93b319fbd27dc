import { VmwuError } from '../errors.js';
import { addHost } from '../executors/ssh/add.js';
import { probeHost } from '../executors/ssh/add.js';
import { DEFAULT_HOST_TIMEOUT_MS } from '../executors/ssh/connection.js';
import { listHosts, parseLabels, removeHost, requireHost, updateHostInfo } from '../executors/ssh/hosts.js';
import { parseDuration } from '../quantities.js';
import { withStore } from './context.js';
import { ms, printJson, table } from './output.js';
import { escapeForTerminal } from './terminal-text.js';

/** The SSH executor's pool from the command line (`vmwu hosts add`, `list`, `rm`, `drain`, `undrain`, `check`), each host's key checked on every connection. */

interface AddOptions {
  name?: string; key?: string; slots?: string; label: string[]; vmwu?: string; store?: string; fingerprint?: string; timeout?: string; json?: boolean;
}

function timeout(t: string | undefined): number {
  return t ? parseDuration(t, '--timeout') : DEFAULT_HOST_TIMEOUT_MS;
}

export async function hostsAdd(spec: string, o: AddOptions): Promise<void> {
  if (o.slots !== undefined && !/^\d+$/.test(o.slots)) throw new VmwuError('BAD_VALUE', `--slots ${o.slots}: expected a whole number ≥ 1`);
  await withStore(async (store) => {
    const r = await addHost(store.db, {
      spec, name: o.name, key: o.key, slots: o.slots === undefined ? undefined : Number(o.slots), labels: parseLabels(o.label),
      vmwu: o.vmwu, store: o.store, fingerprint: o.fingerprint, timeoutMs: timeout(o.timeout),
    });
    if (o.json) return printJson({ ...r.host, keyRecorded: r.keyRecorded, warnings: r.warnings });
    const h = r.host;
    // What the host reported about itself.
    for (const w of r.warnings) process.stderr.write(`vmwu: warning: ${escapeForTerminal(w)}\n`);
    process.stderr.write(`vmwu: ${escapeForTerminal(`host ${h.name} (${h.user}@${h.address}:${h.port}): vmwu ${h.info.version}, QEMU ${h.info.qemu}, ${h.info.arch}, ${h.info.cores} cores, ${h.info.memMiB} MiB, ${h.slots ?? 'auto'} slots`)}\n`);
    process.stderr.write(r.keyRecorded
      ? `vmwu: host key ${h.fingerprint} recorded on first contact; every later connection must present it\n`
      : `vmwu: host key ${h.fingerprint} matches the recorded one\n`);
  });
}

export async function hostsList(o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const hosts = listHosts(store.db);
    if (o.json) return printJson(hosts.map(({ hostKey: _k, ...h }) => h));
    if (!hosts.length) {
      process.stderr.write('vmwu: no hosts yet; add one with `vmwu hosts add user@host --key FILE`\n');
      return;
    }
    process.stdout.write(table([
      ['NAME', 'STATE', 'ADDRESS', 'SLOTS', 'CORES', 'MEMORY', 'ARCH', 'VMWU', 'QEMU', 'LABELS', 'HOST KEY'],
      ...hosts.map((h) => [h.name, h.drainedAt ? 'drained' : 'in pool', `${h.user}@${h.address}:${h.port}`, h.slots === null ? 'auto' : String(h.slots), String(h.info.cores), `${h.info.memMiB}M`,
        h.info.arch, h.info.version, h.info.qemu ?? '-', Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', h.fingerprint]),
    ]));
  });
}

export async function hostsRm(name: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    requireHost(store.db, name);
    removeHost(store.db, name);
    if (o.json) printJson({ removed: name });
    else process.stderr.write(`vmwu: host ${name} removed from the pool (its store there is left as it is)\n`);
  });
}

/**
 * `vmwu hosts drain NAME`: marks it, then waits until each job that was running
 * there has stopped at a checkpoint (and goes on elsewhere) or finished, saying
 * which; exit 1 if some did not within --timeout.
 */
export async function hostsDrain(name: string, o: { wait: boolean; timeout: string; json?: boolean }): Promise<void> {
  const limitMs = parseDuration(o.timeout, '--timeout');
  await withStore(async (store) => {
    const { drainHost, drainProgress } = await import('../executors/ssh/drain.js');
    const running = drainHost(store.db, name);
    const say = (m: string) => {
      if (!o.json) process.stderr.write(`vmwu: ${escapeForTerminal(m)}\n`);
    };
    say(`host ${name} is drained: no new jobs go there${running.length ? `; ${running.length} running job${running.length === 1 ? '' : 's'} to move` : ''} (put it back with \`vmwu hosts undrain ${name}\`)`);
    let now = running;
    const deadline = Date.now() + limitMs;
    const reported = new Set<string>();
    while (o.wait) {
      now = drainProgress(store.db, running);
      for (const a of now.filter((x) => x.status !== 'running')) {
        const key = `${a.experiment}/${a.job}`;
        if (reported.has(key)) continue;
        reported.add(key);
        say(a.checkpoint ? `job ${key} stopped at checkpoint ${a.checkpoint} and goes on on another host` : `job ${key} ended there: ${a.status}${a.error ? ` (${a.error})` : ''}`);
      }
      if (!now.some((a) => a.status === 'running') || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const left = now.filter((a) => a.status === 'running');
    if (o.json) printJson({ host: name, drained: true, jobs: now });
    if (o.wait && left.length) {
      say(`${left.length} job${left.length === 1 ? ' is' : 's are'} still running on ${name} after ${o.timeout}: ${left.map((a) => `${a.experiment}/${a.job}`).join(', ')}`);
      process.exitCode = 1;
    }
  });
}

export async function hostsUndrain(name: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const { undrainHost } = await import('../executors/ssh/drain.js');
    undrainHost(store.db, name);
    if (o.json) printJson({ host: name, drained: false });
    else process.stderr.write(`vmwu: host ${name} is back in the pool\n`);
  });
}

/** `vmwu hosts check`: connects to each host (verifying its key), refreshes what it reports; exit 1 if any is down. */
export async function hostsCheck(names: string[], o: { json?: boolean; timeout?: string }): Promise<void> {
  await withStore(async (store) => {
    const hosts = names.length ? names.map((n) => requireHost(store.db, n)) : listHosts(store.db);
    const rows = await Promise.all(hosts.map(async (h) => {
      const t0 = Date.now();
      try {
        const { info, warnings } = await probeHost(h, h.hostKey, timeout(o.timeout));
        updateHostInfo(store.db, h.name, info);
        return { name: h.name, up: true, ms: Date.now() - t0, info, warnings, error: null };
      } catch (e) {
        const err = e as VmwuError;
        return { name: h.name, up: false, ms: Date.now() - t0, info: null, warnings: [], error: { code: err.code ?? 'INTERNAL', message: err.message } };
      }
    }));
    if (o.json) printJson(rows);
    else {
      process.stdout.write(table([
        ['NAME', 'STATE', 'TIME', 'DETAIL'],
        ...rows.map((r) => [r.name, r.up ? 'up' : 'down', ms(r.ms), r.up ? `vmwu ${r.info!.version}, QEMU ${r.info!.qemu}, ${r.info!.availableMemMiB} MiB free${r.warnings.length ? `; ${r.warnings.join('; ')}` : ''}` : r.error!.message]),
      ]));
    }
    if (rows.some((r) => !r.up)) process.exitCode = 1;
  });
}
