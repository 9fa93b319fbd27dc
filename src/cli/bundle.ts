import { Presets, SingleBar } from 'cli-progress';
import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson } from './output.js';

/** A byte progress bar on stderr, only for people: not with --json and not when stderr is a file. */
function byteBar(label: string, json: boolean) {
  if (json || !process.stderr.isTTY) return undefined;
  let bar: SingleBar | undefined;
  let done = 0;
  return {
    start(total: number, blobs: number) {
      if (total === 0) return;
      bar = new SingleBar({
        format: `${label} {bar} {percentage}% {value}/{total} (${blobs} blob${blobs === 1 ? '' : 's'})`, hideCursor: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
      }, Presets.shades_classic);
      bar.start(total, 0);
    },
    tick(n: number) {
      done += n;
      bar?.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}

/** SIGINT/SIGTERM abort the operation, so its cleanup (temporary files, staging) runs. */
async function abortable<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const abort = () => ac.abort(new VmwuError('INTERRUPTED', 'interrupted by a signal', 'nothing was left behind: no partial bundle, no staged blobs'));
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', abort);
    process.off('SIGTERM', abort);
  }
}

export async function exportCmd(ref: string, o: { output?: string; withBase?: boolean; json?: boolean }): Promise<void> {
  const { exportUnit } = await import('../bundle/export.js');
  await withStore(async (store) => {
    const bar = byteBar('export', Boolean(o.json));
    const r = await abortable((signal) => exportUnit(store, ref, {
      out: o.output, withBase: o.withBase, signal,
      onStart: (total, blobs) => bar?.start(total, blobs),
      onProgress: (n) => bar?.tick(n),
    }).finally(() => bar?.stop()));
    if (o.json) return printJson(r);
    process.stderr.write(`vmwu: wrote ${r.blobs} blob${r.blobs === 1 ? '' : 's'} (${formatBytes(r.bytes)}) ${r.withBase ? 'with' : 'without'} the base`
      + `${r.withBase ? '' : '; the importing store needs the base already (export with --with-base to include it)'}\n`);
    process.stdout.write(`${r.file}\n`);
  });
}

export async function importCmd(file: string, o: { json?: boolean; force?: boolean }): Promise<void> {
  const { importBundle } = await import('../bundle/import.js');
  await withStore(async (store) => {
    const bar = byteBar('import', Boolean(o.json));
    const r = await abortable((signal) => importBundle(store, file, {
      force: o.force, signal,
      onStart: (total, blobs) => bar?.start(total, blobs),
      onProgress: (n) => bar?.tick(n),
    }).finally(() => bar?.stop()));
    if (o.json) return printJson(r);
    const base = !r.base.imported ? `base ${r.base.name} was already here`
      : r.base.renamedFrom ? `imported base ${r.base.renamedFrom} as ${r.base.name} (another base here is called ${r.base.renamedFrom})` : `imported base ${r.base.name}`;
    process.stderr.write(`vmwu: verified ${r.blobs.total} blob${r.blobs.total === 1 ? '' : 's'} (${formatBytes(r.bytes)}): ${r.blobs.added} added, `
      + `${r.blobs.present} already present; ${base}${r.changed ? '' : '; the unit was already here'}\n`);
    process.stdout.write(`${r.unit}\n`);
  });
}
