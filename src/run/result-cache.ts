import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { digestFile } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import { linkOrCopySync } from '../store/link-or-copy.js';

/**
 * The result cache: a job whose key (src/run/job-key.ts) has a succeeded result
 * in the store is not run again; its collected outputs are linked from that result
 * (hard links: the copy stands on its own if the first is removed) and the job's
 * record says whose they were. Keys are computed where the job would run, since the
 * CPU model its guest sees is part of them. Sweeps (src/sweep/job-key.ts) and
 * `vmwu run` (src/run/run-cache.ts) use it.
 */

export interface CachedResult {
  key: string;
  outDir: string;
  runId: string | null;
  source: string;
}

/** This host's CPU model as its guests see it named (/proc/cpuinfo). */
function hostCpuModel(): string {
  const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
  return line ? line.slice(line.indexOf(':') + 1).trim() : 'unknown';
}

/**
 * What a runner computes keys with, once: this host's CPU model, and the digests of
 * the input files its jobs stage, so that a file every job copies in (a database)
 * is read once per run, not once per job; a file changed meanwhile (another inode,
 * size or time) is read again.
 */
export interface KeyContext {
  cpuModel: string;
  digests: Map<string, string>;
}

export function keyContext(): KeyContext {
  return { cpuModel: hostCpuModel(), digests: new Map() };
}

async function fileDigest(ctx: KeyContext, abs: string, st: Stats): Promise<string> {
  const k = `${abs}\0${st.dev}:${st.ino}\0${st.size}\0${st.mtimeMs}`;
  let d = ctx.digests.get(k);
  if (!d) ctx.digests.set(k, (d = await digestFile(abs)));
  return d;
}

/** The digest of a file's content, or of a directory's names, kinds and contents. */
export async function pathDigest(ctx: KeyContext, p: string): Promise<string> {
  const top = lstatSync(p);
  if (top.isFile()) return fileDigest(ctx, p, top);
  const h = createHash('sha256');
  const walk = async (rel: string) => {
    const abs = rel ? join(p, rel) : p;
    const st = lstatSync(abs);
    if (st.isDirectory()) {
      h.update(`d ${rel}\0`);
      for (const n of readdirSync(abs).sort()) await walk(rel ? `${rel}/${n}` : n);
    } else if (st.isSymbolicLink()) {
      h.update(`l ${rel}\0${readlinkSync(abs)}\0`);
    } else if (st.isFile()) {
      h.update(`f ${rel}\0${await fileDigest(ctx, abs, st)}\0`);
    }
  };
  await walk('');
  return `sha256:${h.digest('hex')}`;
}

/** What a cached result's outputs were: each file's digest, each link's target, by path. */
export async function outputDigests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    const abs = rel ? join(dir, rel) : dir;
    for (const n of readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) await walk(r);
      else if (st.isSymbolicLink()) out[r] = `link:${readlinkSync(join(dir, r))}`;
      else if (st.isFile()) out[r] = await digestFile(join(dir, r));
    }
  };
  await walk('');
  return out;
}

/** The first difference between what a result's outputs were and what they are, or undefined. */
function firstDifference(was: Record<string, string>, now: Record<string, string>): string | undefined {
  for (const [p, d] of Object.entries(was)) {
    if (now[p] === undefined) return `${p} is gone`;
    if (now[p] !== d) return `${p} was changed`;
  }
  const extra = Object.keys(now).find((p) => was[p] === undefined);
  return extra && `${extra} was added`;
}

/**
 * A succeeded result for the key whose outputs are still there as they were made,
 * checked by digest; `{ damaged }` says why one was not (its row is forgotten, so
 * the job runs and its result takes the key). A row whose outputs are gone is forgotten.
 */
export async function findResult(db: Db, key: string): Promise<CachedResult | { damaged: string } | undefined> {
  const row = db.prepare('SELECT key, out_dir, run_id, source, outputs FROM result_cache WHERE key = ?').get(key) as
    { key: string; out_dir: string; run_id: string | null; source: string; outputs: string | null } | undefined;
  if (!row) return undefined;
  const forget = () => db.prepare('DELETE FROM result_cache WHERE key = ? AND out_dir = ?').run(key, row.out_dir);
  if (!existsSync(row.out_dir)) {
    forget();
    return undefined;
  }
  const why = row.outputs === null
    ? 'it was recorded before vmwu kept its outputs\' digests'
    : firstDifference(JSON.parse(row.outputs) as Record<string, string>, await outputDigests(row.out_dir));
  if (why) {
    forget();
    return { damaged: `the cached result of ${row.source} cannot be used: ${why}` };
  }
  return { key: row.key, outDir: row.out_dir, runId: row.run_id, source: row.source };
}

/** Records a succeeded result with its outputs' digests; the first one for a key stays (it is what later jobs were linked from). */
export async function recordResult(db: Db, r: CachedResult): Promise<void> {
  const outputs = JSON.stringify(await outputDigests(r.outDir));
  db.prepare('INSERT OR IGNORE INTO result_cache (key, out_dir, run_id, source, created_at, outputs) VALUES (?, ?, ?, ?, ?, ?)').run(r.key, r.outDir, r.runId, r.source, new Date().toISOString(), outputs);
}

/** Forgets results whose outputs were removed (vmwu gc); returns how many. */
export function forgetMissingResults(db: Db): number {
  let n = 0;
  for (const row of db.prepare('SELECT key, out_dir FROM result_cache').all() as { key: string; out_dir: string }[]) {
    if (!existsSync(row.out_dir)) n += db.prepare('DELETE FROM result_cache WHERE key = ? AND out_dir = ?').run(row.key, row.out_dir).changes;
  }
  return n;
}

/** The cached outputs into a new attempt's dir: directories made, files hard-linked (copied across filesystems), links recreated. */
export function linkResult(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const n of readdirSync(from)) {
    const src = join(from, n);
    const dst = join(to, n);
    const st = lstatSync(src);
    if (st.isDirectory()) linkResult(src, dst);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else if (st.isFile()) linkOrCopySync(src, dst);
  }
}
