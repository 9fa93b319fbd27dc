import { VmwuError } from '../errors.js';
import { addDataset } from '../data/add.js';
import { listDatasets, removeDataset, requireDataset } from '../data/records.js';
import { formatDatasetRef, parseDatasetRef } from '../data/ref.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson, table } from './output.js';
import { stepProgress } from './progress.js';

/** `vmwu data …`: read-only datasets that jobs attach at /data/NAME (src/data/). */

export async function dataAdd(path: string, o: { name: string; json?: boolean }): Promise<void> {
  const ref = parseDatasetRef(o.name);
  await withStore(async (store) => {
    const bar = stepProgress('data', Boolean(o.json));
    const started = Date.now();
    const r = await addDataset(store, path, ref, {
      progress: bar.progress,
    }).finally(() => bar.stop());
    if (o.json) return printJson({ ...r.dataset, existed: r.existed });
    const d = r.dataset;
    process.stdout.write(`${r.existed ? 'already had' : 'added'} dataset ${formatDatasetRef(d)} ${d.digest.slice(7, 19)}: ${d.files} files, ${formatBytes(d.contentBytes)} (image ${formatBytes(d.imageBytes)}) in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    process.stderr.write(`vmwu: attach it with --data ${d.name}${d.version === 'latest' ? '' : `:${d.version}`} (read-only at /data/${d.name})\n`);
  });
}

export async function dataList(o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const all = listDatasets(store.db);
    if (o.json) return printJson(all);
    if (!all.length) {
      process.stderr.write('vmwu: no datasets; add one with `vmwu data add PATH --name NAME`\n');
      return;
    }
    process.stdout.write(table([
      ['NAME', 'VERSION', 'FILES', 'SIZE', 'IMAGE', 'DIGEST', 'CREATED'],
      ...all.map((d) => [d.name, d.version, String(d.files), formatBytes(d.contentBytes), formatBytes(d.imageBytes), d.digest.slice(7, 19), d.createdAt.slice(0, 19)]),
    ]));
  });
}

export async function dataShow(ref: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const d = requireDataset(store.db, parseDatasetRef(ref, 'dataset'));
    if (o.json) return printJson(d);
    process.stdout.write(table(Object.entries(d).map(([k, v]) => [k, String(v)])));
  });
}

export async function dataRm(ref: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const r = parseDatasetRef(ref, 'dataset');
    requireDataset(store.db, r);
    if (!removeDataset(store.db, r)) throw new VmwuError('NO_DATASET', `no dataset ${formatDatasetRef(r)}`);
    if (o.json) printJson({ removed: formatDatasetRef(r) });
    else process.stderr.write(`vmwu: dataset ${formatDatasetRef(r)} removed; \`vmwu gc\` frees its image once no experiment uses it\n`);
  });
}
