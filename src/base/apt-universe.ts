/**
 * The few packages a build's apt needs to see (docs/architecture.md, "A build's
 * apt sees only what it may install"). Under TCG apt spends ~3 s on every run
 * working out the state of all ~63,000 packages of Debian's lists before it
 * installs three; given lists that hold only what the wanted packages could ever
 * pull in, it decides the same install in a fraction of that. Pure: the lists'
 * bytes in, an index of them, and the byte ranges of the stanzas to keep out.
 *
 * The closure errs on the side of more: every version of every package named,
 * every alternative of every `Depends` and `Pre-Depends`, every provider of a
 * virtual name. Versions are not compared, so it never leaves out what apt might
 * choose; what it leaves out are packages no wanted one depends on, which apt,
 * with `--no-install-recommends`, would not install. Where apt wants more (an
 * installed package it must upgrade to satisfy a `Breaks`), the install fails and
 * the build falls back to the whole lists (src/unit/build-script.ts).
 */

/** One stanza of a Packages file: the names it refers to and where its bytes are. */
export interface StanzaEntry {
  name: string;
  provides: string[];
  depends: string[];
  /** Byte offsets in its file, end exclusive. */
  start: number;
  end: number;
}

/** Where a package's stanza is (one per version and suite): its file (an index into `files`), its bytes, what it depends on. */
type Located = [file: number, start: number, end: number, depends: string[]];

/** The lists, indexed for the closure: stanzas by package name, providers by virtual name. */
export interface Universe {
  files: string[];
  stanzas: Map<string, Located[]>;
  providers: Map<string, string[]>;
}

/** A Debian package name, as Packages files and relation fields give it. */
const NAME = '[a-z0-9][a-z0-9+.-]*';
const PACKAGE_NAME = new RegExp(`^${NAME}$`);
const RELATION_NAME = new RegExp(`^\\s*(${NAME})`);

/** The index of the lists' files (their name → their stanzas). */
export function universeOf(files: Record<string, StanzaEntry[]>): Universe {
  const u: Universe = { files: Object.keys(files), stanzas: new Map(), providers: new Map() };
  for (const [file, entries] of Object.values(files).entries()) {
    for (const e of entries) {
      push(u.stanzas, e.name, [file, e.start, e.end, e.depends]);
      for (const p of e.provides) push(u.providers, p, e.name);
    }
  }
  return u;
}

/** The index as JSON, kept beside the lists, and back; null for JSON that is no index. */
export function universeToJson(u: Universe): string {
  return JSON.stringify({ files: u.files, stanzas: [...u.stanzas], providers: [...u.providers] });
}

export function universeFromJson(json: string): Universe | null {
  try {
    const o = JSON.parse(json) as { files?: unknown; stanzas?: unknown; providers?: unknown };
    if (!Array.isArray(o.files) || !Array.isArray(o.stanzas) || !Array.isArray(o.providers)) return null;
    return { files: o.files as string[], stanzas: new Map(o.stanzas as [string, Located[]][]), providers: new Map(o.providers as [string, string[]][]) };
  } catch {
    return null;
  }
}

/** The package names of a relation field (`a (>= 1) | b:any, c`), versions and architectures stripped. */
export function relationNames(field: string): string[] {
  const names: string[] = [];
  for (const alt of field.split(/[,|]/)) {
    const m = RELATION_NAME.exec(alt);
    if (m) names.push(m[1]!);
  }
  return names;
}

/** A field of a stanza, continuation lines and all; '' when it has none. */
function field(text: string, name: string): string {
  let at: number;
  if (text.startsWith(`${name}:`)) at = 0;
  else {
    at = text.indexOf(`\n${name}:`);
    if (at < 0) return '';
    at += 1;
  }
  let end = text.indexOf('\n', at);
  while (end >= 0 && (text[end + 1] === ' ' || text[end + 1] === '\t')) end = text.indexOf('\n', end + 1);
  return text.slice(at + name.length + 1, end < 0 ? undefined : end).trim();
}

/**
 * The stanzas of a Packages file, split at empty lines; one without a Package
 * field is dropped. `text` is the file's bytes read as latin1, one character a
 * byte, so offsets into it are offsets into the file.
 */
export function indexStanzas(text: string): StanzaEntry[] {
  const out: StanzaEntry[] = [];
  let at = 0;
  while (at < text.length) {
    while (text[at] === '\n') at++;
    let end = text.indexOf('\n\n', at);
    if (end < 0) end = text.length;
    // The last stanza's end: before the file's final newline.
    while (end > at && text[end - 1] === '\n') end--;
    const s = text.slice(at, end);
    const name = s && field(s, 'Package');
    if (name && PACKAGE_NAME.test(name)) out.push({ name, provides: relationNames(field(s, 'Provides')), depends: [...relationNames(field(s, 'Pre-Depends')), ...relationNames(field(s, 'Depends'))], start: at, end });
    at = end + 2;
  }
  return out;
}

/** Every package name the wanted ones could pull in, across all the files (a package of one suite may depend on one of another). */
export function closure(u: Universe, wanted: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...wanted];
  while (todo.length) {
    const name = todo.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const [, , , depends] of u.stanzas.get(name) ?? []) todo.push(...depends);
    // A virtual name: each provider could be apt's choice.
    todo.push(...(u.providers.get(name) ?? []));
  }
  return seen;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/**
 * The stanzas to keep of each file, as byte ranges in file order, for lists
 * pruned to the wanted packages' closure and written under the same names
 * (apt pairs each with its suite's Release file by name). Null when some wanted
 * name is in no list: apt must then say so itself, from all of them.
 * `packages` as a unit spec has them: `name` or `name=version`.
 */
export function keptStanzas(u: Universe, packages: string[]): Map<string, [number, number][]> | null {
  // A pinned version is apt's to find among the name's stanzas.
  const wanted = packages.map((p) => p.split('=')[0]!);
  if (!wanted.length || !wanted.every((w) => u.stanzas.has(w) || u.providers.has(w))) return null;
  const kept = new Map<string, [number, number][]>();
  for (const name of closure(u, wanted)) {
    for (const [file, start, end] of u.stanzas.get(name) ?? []) push(kept, u.files[file]!, [start, end]);
  }
  for (const ranges of kept.values()) ranges.sort((a, b) => a[0] - b[0]);
  return kept;
}
