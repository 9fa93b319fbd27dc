import { createHash } from 'node:crypto';
import { open, truncate, writeFile } from 'node:fs/promises';
import { storedQcow2Flags } from '../image/qemu-img.js';
import { runTool } from '../image/tool.js';

/**
 * A layer as only what it changed: the root's raw image is hashed cluster by cluster
 * before and after a layer is applied, and the clusters that differ become a qcow2
 * overlay on the layer below. Unwritten (sparse) parts are never read.
 */

const CLUSTER = 64 * 1024;

/** Cluster index → hash of the clusters holding data (holes hash to nothing: they read as zeros in every layer). */
export type ClusterHashes = Map<number, string>;

async function dataRanges(raw: string): Promise<{ start: number; length: number }[]> {
  const { stdout } = await runTool('qemu-img', ['map', '-f', 'raw', '--output=json', raw]);
  return (JSON.parse(stdout) as { start: number; length: number; data: boolean }[]).filter((r) => r.data);
}

export async function hashClusters(raw: string): Promise<ClusterHashes> {
  const out: ClusterHashes = new Map();
  const fh = await open(raw, 'r');
  const buf = Buffer.alloc(CLUSTER);
  try {
    for (const r of await dataRanges(raw)) {
      for (let c = Math.floor(r.start / CLUSTER); c * CLUSTER < r.start + r.length; c++) {
        if (out.has(c)) continue;
        const { bytesRead } = await fh.read(buf, 0, CLUSTER, c * CLUSTER);
        out.set(c, createHash('sha1').update(buf.subarray(0, bytesRead)).digest('base64'));
      }
    }
  } finally {
    await fh.close();
  }
  return out;
}

/** The clusters whose content differs between two hashings. */
export function changedClusters(before: ClusterHashes, after: ClusterHashes): number[] {
  const out: number[] = [];
  for (const [c, h] of after) if (before.get(c) !== h) out.push(c);
  return out.sort((a, b) => a - b);
}

/**
 * Writes the changed clusters of `raw` into `overlay` (qcow2, backed by `parent`,
 * named in its header by `parentName`). A sparse copy holds only them and is
 * converted without a backing file, so its holes stay unallocated and read through
 * the parent (`convert -B` would write them as zero clusters, hiding it); a cluster
 * that changed to all zeros is then written as an explicit zero cluster.
 */
export async function writeOverlay(raw: string, virtualSize: number, clusters: number[], parent: string, parentName: string, overlay: string, scratch: string): Promise<void> {
  await writeFile(scratch, '');
  await truncate(scratch, virtualSize);
  const src = await open(raw, 'r');
  const dst = await open(scratch, 'r+');
  const buf = Buffer.alloc(CLUSTER);
  const zeroed: number[] = [];
  try {
    for (const c of clusters) {
      const { bytesRead } = await src.read(buf, 0, CLUSTER, c * CLUSTER);
      if (buf.subarray(0, bytesRead).every((b) => b === 0)) zeroed.push(c);
      else await dst.write(buf, 0, bytesRead, c * CLUSTER);
    }
  } finally {
    await src.close();
    await dst.close();
  }
  await runTool('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', ...storedQcow2Flags(), scratch, overlay]);
  await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', parent, '-F', 'qcow2', overlay]);
  if (zeroed.length) await runTool('qemu-io', ['-f', 'qcow2', ...zeroed.flatMap((c) => ['-c', `write -z ${c * CLUSTER} ${CLUSTER}`]), overlay]);
  await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', parentName, '-F', 'qcow2', overlay]);
}
