import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { printJson } from './output.js';
import { escapeForTerminal } from './terminal-text.js';
import { byteProgress } from './progress.js';

/** Moving units between stores from the command line (`vmwu export`, `vmwu import`), with a progress bar and a signal that leaves nothing half made. */

/** SIGINT/SIGTERM abort the operation, so its cleanup (temporary files, staging) runs. */
async function abortable<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const interrupt = interruptOn(['SIGINT', 'SIGTERM'], {
    once: true, reason: () => new VmwuError('INTERRUPTED', 'interrupted by a signal', 'nothing was left behind: no partial bundle, no staged blobs'),
  });
  try {
    return await fn(interrupt.signal);
  } finally {
    interrupt.dispose();
  }
}

export async function exportCmd(ref: string, o: { output?: string; withBase?: boolean; withData?: boolean; sign?: string; json?: boolean }): Promise<void> {
  const { exportUnit } = await import('../bundle/export.js');
  await withStore(async (store) => {
    const bar = byteProgress('export', Boolean(o.json));
    const r = await abortable((signal) => exportUnit(store, ref, {
      out: o.output, withBase: o.withBase, withData: o.withData, sign: o.sign, signal,
      onStart: (total, blobs) => bar?.start(total, blobs),
      onProgress: (n) => bar?.tick(n),
    }).finally(() => bar?.stop()));
    if (o.json) return printJson(r);
    process.stderr.write(`vmwu: wrote ${r.blobs} blob${r.blobs === 1 ? '' : 's'} (${formatBytes(r.bytes)}) ${r.withBase ? 'with' : 'without'} the base`
      + `${r.withBase ? '' : '; the importing store needs the base already (export with --with-base to include it)'}`
      + `${r.datasets.carried.length ? `; datasets ${r.datasets.carried.join(', ')} included` : ''}`
      + `${r.datasets.needed.length ? `; its jobs need the datasets ${r.datasets.needed.join(', ')} there (export with --with-data to include them)` : ''}`
      + `${r.signature ? `; signed in ${r.signature}` : ''}\n`);
    process.stdout.write(`${r.file}\n`);
  });
}

export async function importCmd(file: string, o: { json?: boolean; force?: boolean; verify?: string }): Promise<void> {
  const { importBundle } = await import('../bundle/import.js');
  await withStore(async (store) => {
    const bar = byteProgress('import', Boolean(o.json));
    const r = await abortable((signal) => importBundle(store, file, {
      force: o.force, verify: o.verify, signal,
      onStart: (total, blobs) => bar?.start(total, blobs),
      onProgress: (n) => bar?.tick(n),
    }).finally(() => bar?.stop()));
    if (o.json) return printJson(r);
    const base = !r.base.imported ? `base ${r.base.name} was already here`
      : r.base.renamedFrom ? `imported base ${r.base.renamedFrom} as ${r.base.name} (another base here is called ${r.base.renamedFrom})` : `imported base ${r.base.name}`;
    // Names from the bundle: someone else wrote them.
    process.stderr.write(escapeForTerminal(`vmwu: verified ${r.blobs.total} blob${r.blobs.total === 1 ? '' : 's'} (${formatBytes(r.bytes)}): ${r.blobs.added} added, `
      + `${r.blobs.present} already present; ${base}${r.changed ? '' : '; the unit was already here'}`
      + `${r.datasets.added.length ? `; added datasets ${r.datasets.added.join(', ')}` : ''}\n`));
    if (r.missingData.length) {
      process.stderr.write(escapeForTerminal(`vmwu: the unit's jobs need the datasets ${r.missingData.join(', ')}, which this store lacks: add them with \`vmwu data add PATH --name NAME:VERSION\`, or import a bundle exported with --with-data\n`));
    }
    process.stdout.write(`${escapeForTerminal(r.unit)}\n`);
  });
}
