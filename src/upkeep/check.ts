import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkChainLink, qcow2Info } from '../bundle/qcow.js';
import { mentionedDigests } from './gc.js';
import { isVmwuError } from '../errors.js';
import { identityState } from '../store/process-identity.js';
import { reapOrphans } from '../run/reap.js';
import { allLayers, deleteLayer, listUnits, type Layer } from '../unit/records.js';
import { listBases } from '../store/bases.js';
import { digestFile, type Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { removeTemp, scanRecordTemps, scanStoreTemps } from '../store/temp-files.js';

/**
 * `vmwu doctor --check`: a consistency check of the store, as fsck is of a
 * filesystem. A **problem** is a state no crash of a correct vmwu can produce:
 * a row naming a blob that is gone, short or (with `deep`) corrupt; a layer whose
 * backing chain does not resolve; a unit naming what is not there; a finished run
 * or attempt whose result file is missing or torn ("half-written": the database
 * says it finished, the files it vouches for are not all there). A **leftover**
 * is what a killed vmwu leaves and the next one clears: temporary files (never
 * named by anything), work dirs of dead processes, runs and attempts whose owner
 * died (the reaper's and `vmwu resume`'s job), verified marks of removed blobs.
 * Leftovers do not fail the check; `repair` removes those that are safe to remove.
 */

export type Severity = 'problem' | 'leftover';

export interface Finding {
  severity: Severity;
  kind: string;
  /** What it is about: a blob, a layer, a run, a path (relative to the store where it is one). */
  subject: string;
  message: string;
  hint: string;
  bytes?: number;
  /** `repair` fixes it safely. */
  repairable: boolean;
}

export interface CheckReport {
  store: string;
  ok: boolean;
  deep: boolean;
  checked: { bases: number; layers: number; units: number; blobs: number; runs: number; attempts: number; bytesHashed: number };
  problems: Finding[];
  leftovers: Finding[];
  /** Findings `repair` fixed (not repeated in problems or leftovers). */
  repaired: Finding[];
}

const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const FINISHED = new Set(['succeeded', 'failed', 'timeout']);

interface Ctx {
  store: Store;
  deep: boolean;
  findings: Finding[];
  checked: CheckReport['checked'];
  /** Repairs to run if asked, by finding. */
  fixes: Map<Finding, () => void | Promise<void>>;
}

function problem(c: Ctx, kind: string, subject: string, message: string, hint: string, fix?: () => void | Promise<void>): void {
  const f: Finding = { severity: 'problem', kind, subject, message, hint, repairable: Boolean(fix) };
  c.findings.push(f);
  if (fix) c.fixes.set(f, fix);
}

function leftover(c: Ctx, kind: string, subject: string, message: string, hint: string, o: { bytes?: number; fix?: () => void | Promise<void> } = {}): void {
  const f: Finding = { severity: 'leftover', kind, subject, message, hint, repairable: Boolean(o.fix), ...(o.bytes !== undefined ? { bytes: o.bytes } : {}) };
  c.findings.push(f);
  if (o.fix) c.fixes.set(f, o.fix);
}

function sizeOf(path: string): number | null {
  try {
    const st = statSync(path);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

function checkDatabase(c: Ctx): void {
  const quick = c.store.db.pragma('quick_check') as { quick_check: string }[];
  const bad = quick.map((r) => r.quick_check).filter((m) => m !== 'ok');
  if (bad.length) {
    problem(c, 'database', 'vmwu.db', `SQLite quick_check: ${bad.slice(0, 3).join('; ')}`,
      'copy the store aside, then `sqlite3 vmwu.db ".recover" | sqlite3 recovered.db` and put the recovered database in its place');
  }
  const fk = c.store.db.pragma('foreign_key_check') as { table: string; parent: string }[];
  if (fk.length) {
    problem(c, 'database', 'vmwu.db', `${fk.length} row(s) name a missing parent row (first: ${fk[0]!.table} → ${fk[0]!.parent})`,
      'report this: vmwu writes child rows only with their parents, in one transaction');
  }
}

/** Blobs the store's rows name, and who names each (for messages and hints). */
function registeredBlobs(c: Ctx, layers: Map<string, Layer>, usedLayers: Set<string>): Map<Digest, { who: string; hint: string; fix?: () => void }> {
  const out = new Map<Digest, { who: string; hint: string; fix?: () => void }>();
  for (const b of listBases(c.store.db)) {
    for (const [role, d] of [['kernel', b.kernel], ['initrd', b.initrd], ['root disk', b.root]] as const) {
      if (d && !out.has(d)) out.set(d, { who: `the ${role} of base ${b.name}`, hint: `rebuild the base (vmwu base build …) or re-import a bundle that has it (vmwu import --with-base bundles)` });
    }
  }
  for (const l of layers.values()) {
    if (out.has(l.digest)) continue;
    const used = usedLayers.has(l.digest);
    out.set(l.digest, {
      who: `layer ${l.digest.slice(0, 19)} (${l.kind})`,
      hint: used ? 'rebuild the units that use it (vmwu rm UNIT, then vmwu build) or re-import their bundles'
        : 'nothing uses this layer: `vmwu doctor --check --repair` unregisters it',
      ...(used ? {} : { fix: () => deleteLayer(c.store.db, l.digest) }),
    });
  }
  return out;
}

async function checkBlobs(c: Ctx, registered: Map<Digest, { who: string; hint: string; fix?: () => void }>, layers: Map<string, Layer>): Promise<Set<string>> {
  const present = new Set<string>();
  for (const [d, r] of registered) {
    c.checked.blobs++;
    const path = c.store.blobs.path(d);
    const size = sizeOf(path);
    if (size === null) {
      problem(c, 'blob-missing', d, `${r.who}: blob ${d} is missing (${path})`, r.hint, r.fix);
      continue;
    }
    const layer = layers.get(d);
    if (size === 0 && d !== EMPTY_DIGEST) {
      problem(c, 'blob-torn', d, `${r.who}: blob ${d} is empty (a write that never reached the disk)`, r.hint, r.fix);
      continue;
    }
    if (layer && layer.size !== size) {
      problem(c, 'blob-torn', d, `${r.who}: blob ${d} has ${size} bytes, its layer record says ${layer.size}`, r.hint, r.fix);
      continue;
    }
    if (c.deep) {
      const actual = await digestFile(path);
      c.checked.bytesHashed += size;
      if (actual !== d) {
        problem(c, 'blob-corrupt', d, `${r.who}: blob ${d} is corrupt: its content hashes to ${actual}`, r.hint, r.fix);
        continue;
      }
    }
    present.add(d);
  }
  return present;
}

/** Each layer's qcow2 names exactly its parent's blob (relatively), and the parents lead to a base root. */
async function checkChains(c: Ctx, layers: Map<string, Layer>, roots: Map<string, string>, present: Set<string>, used: Set<string>): Promise<void> {
  for (const [root, base] of roots) {
    if (!present.has(root)) continue;
    const label = `root disk of base ${base}`;
    await checkLink(c, root, label, null, 'rebuild or re-add the base');
  }
  for (const l of layers.values()) {
    c.checked.layers++;
    const label = `layer ${l.digest.slice(0, 19)}`;
    // An unused layer may outlive its base's row (base rm leaves blobs to gc); its chain resolves while the parent's blob is there.
    if (!layers.has(l.parent) && !roots.has(l.parent) && sizeOf(c.store.blobs.path(l.parent as Digest)) === null) {
      const fix = used.has(l.digest) ? undefined : () => deleteLayer(c.store.db, l.digest);
      problem(c, 'chain', l.digest, `${label}: its parent ${l.parent.slice(0, 19)} is not in the store (no layer, base or blob of that digest)`,
        fix ? 'nothing uses this layer: `vmwu doctor --check --repair` unregisters it' : 'rebuild the units that use it, or re-import their bundles with --with-base', fix);
      continue;
    }
    const seen = new Set<string>([l.digest]);
    for (let p = layers.get(l.parent); p; p = layers.get(p.parent)) {
      if (seen.has(p.digest)) {
        problem(c, 'chain', l.digest, `${label}: its chain of parents loops at ${p.digest.slice(0, 19)}`, 'rebuild the units that use it');
        break;
      }
      seen.add(p.digest);
    }
    if (present.has(l.digest)) await checkLink(c, l.digest, label, l.parent as Digest, 'rebuild the units that use it (vmwu rm UNIT, then vmwu build), or re-import their bundles');
  }
}

async function checkLink(c: Ctx, d: string, label: string, parent: Digest | null, hint: string): Promise<void> {
  try {
    checkChainLink(await qcow2Info(c.store.blobs.path(d as Digest), label, 'BROKEN_CHAIN'), label, parent, 'BROKEN_CHAIN');
  } catch (e) {
    if (!isVmwuError(e) || e.code !== 'BROKEN_CHAIN') throw e;
    problem(c, 'chain', d, e.message, hint);
  }
}

function checkUnits(c: Ctx, layers: Map<string, Layer>, bases: Map<string, { name: string; root: string }>): void {
  for (const u of listUnits(c.store.db)) {
    c.checked.units++;
    const ref = `${u.name}:${u.version}`;
    const hint = `remove it (vmwu rm ${ref}) and build or import it again`;
    const base = bases.get(u.baseDigest);
    if (!base) {
      problem(c, 'unit', ref, `unit ${ref}: its base ${u.baseDigest.slice(0, 19)} (${u.base}) is not registered`, hint);
      continue;
    }
    const top = u.chain[0] ?? base.root;
    if (u.top !== top) problem(c, 'unit', ref, `unit ${ref}: its top ${u.top.slice(0, 19)} is not the head of its chain ${top.slice(0, 19)}`, hint);
    for (const [i, d] of u.chain.entries()) {
      const l = layers.get(d);
      const parent = u.chain[i + 1] ?? base.root;
      if (!l) problem(c, 'unit', ref, `unit ${ref}: layer ${d.slice(0, 19)} of its chain is not registered`, hint);
      else if (l.parent !== parent) problem(c, 'unit', ref, `unit ${ref}: layer ${d.slice(0, 19)} has parent ${l.parent.slice(0, 19)}, its chain says ${parent.slice(0, 19)}`, hint);
    }
  }
}

/** A result record is whole when it is JSON naming the run it belongs to. */
export function recordWhole(text: string | null, runId: string | null): 'whole' | 'missing' | 'torn' {
  if (text === null) return 'missing';
  try {
    const j = JSON.parse(text) as { id?: unknown };
    return runId === null || j.id === runId ? 'whole' : 'torn';
  } catch {
    return 'torn';
  }
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function checkRuns(c: Ctx): void {
  const rows = c.store.db.prepare('SELECT id, status, owner, run_dir FROM runs').all() as { id: string; status: string; owner: string; run_dir: string }[];
  const ids = new Set<string>();
  let orphans = 0;
  for (const r of rows) {
    c.checked.runs++;
    ids.add(r.id);
    if (r.status === 'preparing' || r.status === 'running') {
      if (identityState(r.owner) === 'dead') orphans++;
      continue;
    }
    const path = join(r.run_dir, 'result.json');
    const whole = recordWhole(readOrNull(path), r.id);
    // A run the reaper closed (status error) never got a result file; any other finished run has one.
    if (whole === 'torn' || (whole === 'missing' && FINISHED.has(r.status))) {
      problem(c, 'run-half-written', r.id, `run ${r.id} is recorded as ${r.status}, but its result file ${path} is ${whole}`,
        'its outputs are not to be trusted: run the job again');
    }
  }
  if (orphans) {
    leftover(c, 'run-orphan', `${orphans} run(s)`, `${orphans} run(s) still recorded as in flight; the vmwu that ran them died`,
      'the next vmwu start closes them as errors (or `vmwu doctor --check --repair` now)', { fix: async () => { await reapOrphans(c.store); } });
  }
  for (const id of listDir(c.store.paths.runs)) {
    if (ids.has(id)) continue;
    const p = join(c.store.paths.runs, id);
    const age = Date.now() - (statOrNull(p)?.mtimeMs ?? Date.now());
    // A run dir is made just before its row is written: a young one may be on its way.
    if (age > 60_000) {
      leftover(c, 'run-dir-orphan', `runs/${id}`, `runs/${id} has no run record (its vmwu died before recording the run)`,
        '`vmwu doctor --check --repair` removes it', { fix: () => removeTemp(c.store.paths.root, `runs/${id}`) });
    }
  }
}

function checkAttempts(c: Ctx): void {
  const rows = c.store.db.prepare('SELECT experiment, job, attempt, run_id, owner, status, out_dir FROM attempts')
    .iterate() as Iterable<{ experiment: string; job: number; attempt: number; run_id: string | null; owner: string; status: string; out_dir: string }>;
  const orphaned = new Map<string, number>();
  for (const a of rows) {
    c.checked.attempts++;
    const name = `${a.experiment}/${a.job} attempt ${a.attempt}`;
    if (a.status === 'running') {
      if (identityState(a.owner) === 'dead') orphaned.set(a.experiment, (orphaned.get(a.experiment) ?? 0) + 1);
      continue;
    }
    if (!FINISHED.has(a.status)) continue;
    const path = join(a.out_dir, 'run.json');
    const whole = recordWhole(readOrNull(path), a.run_id);
    if (whole !== 'whole') {
      problem(c, 'attempt-half-written', name, `${name} is recorded as ${a.status}, but its result file ${path} is ${whole}`,
        'its outputs are not to be trusted: run the job again (a new sweep, or the dashboard\'s retry once it has failed)');
    } else if (a.status === 'succeeded' && !statOrNull(join(a.out_dir, 'work'))?.isDirectory()) {
      problem(c, 'attempt-half-written', name, `${name} succeeded, but its work dir ${join(a.out_dir, 'work')} is missing`, 'retry the job; its outputs are gone');
    }
  }
  for (const [exp, n] of orphaned) {
    leftover(c, 'attempt-orphan', exp, `experiment ${exp}: ${n} attempt(s) still recorded as running; the vmwu that ran them died`,
      `\`vmwu resume ${exp}\` adopts those that finished and runs the others again`);
  }
  const jobs = c.store.db.prepare(`SELECT j.experiment, j.idx, j.outputs, e.dir FROM experiment_jobs j JOIN experiments e ON e.name = j.experiment
    WHERE j.state = 'succeeded' AND j.outputs IS NOT NULL`).iterate() as Iterable<{ experiment: string; idx: number; outputs: string; dir: string }>;
  for (const j of jobs) {
    for (const o of JSON.parse(j.outputs) as string[]) {
      const path = join(j.dir, 'results', o);
      if (!statOrNull(path)) {
        problem(c, 'result-missing', `${j.experiment}/${j.idx}`, `job ${j.experiment}/${j.idx} succeeded, but its result ${path} is missing`,
          'copy it again from the job\'s last attempt (its work/ dir), or retry the job');
      }
    }
  }
  const stopped = c.store.db.prepare(`SELECT name, owner FROM experiments WHERE state IN ('running', 'cancelling') AND owner IS NOT NULL`).all() as { name: string; owner: string }[];
  for (const e of stopped) {
    if (identityState(e.owner) === 'dead' && !orphaned.has(e.name)) {
      leftover(c, 'experiment-orphan', e.name, `experiment ${e.name} is recorded as running; its runner died`, `\`vmwu resume ${e.name}\` goes on where it stopped`);
    }
  }
}

function checkMarks(c: Ctx): void {
  const marks = c.store.db.prepare(`SELECT key FROM settings WHERE key LIKE 'verified:%'`).all() as { key: string }[];
  const stale = marks.map((m) => m.key).filter((k) => !/^verified:sha256:[0-9a-f]{64}$/.test(k) || sizeOf(c.store.blobs.path(k.slice('verified:'.length) as Digest)) === null);
  if (stale.length) {
    leftover(c, 'stale-mark', `${stale.length} mark(s)`, `${stale.length} verified mark(s) name blobs that are gone`,
      'harmless (a blob that comes back is hashed again); `vmwu doctor --check --repair` removes them',
      { fix: () => { for (const k of stale) c.store.db.prepare('DELETE FROM settings WHERE key = ?').run(k); } });
  }
}

function checkTemps(c: Ctx): void {
  for (const t of [...scanStoreTemps(c.store.paths), ...scanRecordTemps(c.store.paths)]) {
    // Work in progress of a living process is no leftover; one whose writer cannot be named may be either.
    if (t.writer === 'alive') continue;
    const hint = t.kind === 'stray' ? 'not written by vmwu: look at it and remove it yourself'
      : t.removable ? 'harmless; `vmwu gc` or `vmwu doctor --check --repair` removes it'
        : 'harmless (unless it is still being written); `vmwu doctor --check --repair` removes it an hour after its last change';
    leftover(c, t.kind, t.path, `${t.path}: temporary (${t.why})`, hint, { bytes: t.bytes, ...(t.removable ? { fix: () => removeTemp(c.store.paths.root, t.path) } : {}) });
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

export async function checkStore(store: Store, o: { deep?: boolean; repair?: boolean } = {}): Promise<CheckReport> {
  const c: Ctx = { store, deep: Boolean(o.deep), findings: [], fixes: new Map(), checked: { bases: 0, layers: 0, units: 0, blobs: 0, runs: 0, attempts: 0, bytesHashed: 0 } };
  checkDatabase(c);
  const layers = new Map(allLayers(store.db).map((l) => [l.digest as string, l]));
  const bases = new Map(listBases(store.db).map((b) => [b.digest as string, { name: b.name, root: b.root as string }]));
  c.checked.bases = bases.size;
  const roots = new Map([...bases.values()].map((b) => [b.root, b.name]));
  // Layers something reaches (a unit's chain, or any other row): the others are garbage for gc.
  const used = new Set<string>();
  for (const d of mentionedDigests(store.db)) for (let l = layers.get(d); l && !used.has(l.digest); l = layers.get(l.parent)) used.add(l.digest);
  const present = await checkBlobs(c, registeredBlobs(c, layers, used), layers);
  await checkChains(c, layers, roots, present, used);
  checkUnits(c, layers, bases);
  checkRuns(c);
  checkAttempts(c);
  checkMarks(c);
  checkTemps(c);

  const repaired: Finding[] = [];
  if (o.repair) {
    for (const [f, fix] of c.fixes) {
      try {
        await fix();
        repaired.push(f);
      } catch (e) {
        f.hint = `repair failed (${(e as Error).message}); ${f.hint}`;
      }
    }
  }
  const open = c.findings.filter((f) => !repaired.includes(f));
  const problems = open.filter((f) => f.severity === 'problem');
  return {
    store: store.paths.root, ok: problems.length === 0, deep: c.deep, checked: c.checked,
    problems, leftovers: open.filter((f) => f.severity === 'leftover'), repaired,
  };
}
