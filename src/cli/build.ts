import { SingleBar, Presets } from 'cli-progress';
import { buildUnit } from '../unit/build.js';
import { layerChain, listUnits, findUnit, deleteUnit } from '../unit/records.js';
import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { interruptOn } from './interrupt.js';
import { ms, printJson, table } from './output.js';
import { escapeForTerminal, TerminalText } from './terminal-text.js';

/**
 * The unit commands: `vmwu build` (a unit's layers built from its vmwu.yaml, the guest's build log
 * shown live), `vmwu units`, `vmwu unit show` and `vmwu rm`.
 */

export async function build(path: string | undefined, o: { tag?: string; pull?: boolean; json?: boolean; quiet?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const interrupt = interruptOn(['SIGINT', 'SIGTERM'], { once: true });
    // A bar for the steps; the guest's build log streams below it unless --quiet/--json.
    const bar = process.stderr.isTTY && !o.json ? new SingleBar({ format: 'build {bar} {value}/{total} {step}' }, Presets.shades_classic) : undefined;
    let steps = 0;
    // The build log is the guest's output: escaped like that of a run (`vmwu logs RUN --raw` has its bytes).
    const log = new TerminalText();
    const r = await buildUnit(store, path ?? '.', {
      tag: o.tag, pull: o.pull,
      signal: interrupt.signal,
      onStep: (step) => {
        steps++;
        if (bar) {
          if (steps === 1) bar.start(2, 0, { step });
          else bar.update(steps - 1, { step });
        } else if (!o.json) process.stderr.write(`vmwu: build step: ${step}\n`);
      },
      onLog: o.json || o.quiet ? undefined : (c) => process.stderr.write(log.push(c)),
    }).finally(() => process.stderr.write(log.end()));
    bar?.stop();
    interrupt.dispose();
    if (o.json) return printJson({ unit: `${r.unit.name}:${r.unit.version}`, digest: r.unit.digest, cached: r.cached, boots: r.boots, template: r.template?.digest ?? null, chain: r.unit.chain, runs: r.runs, ms: Math.round(r.ms) });
    process.stderr.write(`vmwu: ${r.cached ? 'cache hit, no VM booted' : `built ${r.built.length} layer(s)${r.template ? ` on template [${r.template.packages.join(' ')}]` : ''}`} in ${ms(r.ms)}\n`);
    process.stdout.write(`${r.unit.name}:${r.unit.version}\n`);
  });
}

export async function units(o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const list = listUnits(store.db);
    if (o.json) return printJson(list);
    if (!list.length) return void process.stdout.write('no units; build one with `vmwu build DIR`\n');
    process.stdout.write(table([['UNIT', 'BASE', 'LAYERS', 'PACKAGES', 'CREATED'],
      ...list.map((u) => [`${u.name}:${u.version}`, u.base, String(u.chain.length), u.packages.join(' ') || '-', u.createdAt.slice(0, 19)])]));
  });
}

export async function unitShow(ref: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const u = findUnit(store.db, ref);
    if (!u) throw new VmwuError('NO_UNIT', `no unit ${ref}`, 'list units with `vmwu units`');
    const chain = layerChain(store.db, u.top);
    if (o.json) return printJson({ ...u, layers: chain });
    // A unit may come from someone else's bundle.
    process.stdout.write(escapeForTerminal(`unit     ${u.name}:${u.version}  ${u.digest.slice(0, 19)}\nbase     ${u.base} (${u.baseDigest.slice(0, 19)})\n`));
    process.stdout.write(escapeForTerminal(`run      ${u.run ? u.run.join(' ') : '-'}\nparams   ${Object.entries(u.params).map(([k, v]) => `${k}=${v.default}`).join(' ') || '-'}\n`));
    process.stdout.write(escapeForTerminal(`outputs  ${u.outputs.join(' ') || '(all)'}\nchain (top first):\n`));
    process.stdout.write(table([['LAYER', 'KIND', 'SIZE', 'PACKAGES'],
      ...chain.map((l) => [l.digest.slice(7, 19), l.kind, formatBytes(l.size), l.packages.join(' ') || '-']),
      [u.baseDigest.slice(7, 19), 'base', '', u.base]]));
  });
}

export async function unitRm(ref: string): Promise<void> {
  await withStore(async (store) => {
    const u = findUnit(store.db, ref);
    if (!u) throw new VmwuError('NO_UNIT', `no unit ${ref}`, 'list units with `vmwu units`');
    deleteUnit(store.db, u.name, u.version);
    process.stdout.write(`removed ${u.name}:${u.version} (its layers stay until \`vmwu gc\`)\n`);
  });
}
