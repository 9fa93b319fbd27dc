import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closure, indexStanzas, keptStanzas, relationNames, universeFromJson, universeOf, universeToJson } from '../../../src/base/apt-universe.js';

const main = [
  'Package: app\nVersion: 1\nPre-Depends: loader\nDepends: liba (>= 2) | libb, mail-transport-agent,\n libc6:any (>= 2.34)\nDescription: by Zoë Ünicode',
  'Package: liba\nVersion: 2\nDepends: libc6',
  'Package: libb\nVersion: 1\nDepends: libz',
  'Package: libz\nVersion: 1',
  'Package: loader\nVersion: 1',
  'Package: exim4\nProvides: mail-transport-agent\nDepends: exim4-base',
  'Package: exim4-base\nVersion: 1',
  'Package: postfix\nProvides: mail-transport-agent (= 1)',
  'Package: unrelated\nDepends: app',
  'Package: libc6\nVersion: 2.36-9',
].join('\n\n') + '\n';
const security = 'Package: libc6\nVersion: 2.36-9+deb12u1\nDepends: libgcc-s1\n\nPackage: libgcc-s1\nVersion: 12\n';
/** As build-lists reads them: one character a byte. */
const latin1 = (s: string) => Buffer.from(s).toString('latin1');

function universe() {
  return universeOf({ main: indexStanzas(latin1(main)), security: indexStanzas(latin1(security)) });
}

test('relation fields give their package names, without versions, architectures or alternatives\' bars', () => {
  assert.deepEqual(relationNames('liba (>= 2) | libb, mail-transport-agent, libc6:any (>= 2.34)'), ['liba', 'libb', 'mail-transport-agent', 'libc6']);
  assert.deepEqual(relationNames(''), []);
});

test('stanzas are indexed by the bytes they take in their file, continuation lines and non-ASCII text and all', () => {
  const entries = indexStanzas(latin1(main));
  assert.equal(entries.length, 10);
  const app = entries[0]!;
  assert.deepEqual(app.depends, ['loader', 'liba', 'libb', 'mail-transport-agent', 'libc6'], 'Pre-Depends, and a Depends continued on the next line');
  const bytes = Buffer.from(main);
  for (const e of entries) assert.match(bytes.subarray(e.start, e.end).toString('utf8'), new RegExp(`^Package: ${e.name}\\n`));
  assert.ok(bytes.subarray(app.start, app.end).toString('utf8').endsWith('Zoë Ünicode'), 'offsets are bytes, past multi-byte characters');
  assert.deepEqual(indexStanzas('Package: __proto__\n\nPackage: BAD NAME\n\nVersion: 1\n'), [], 'what is no Debian package name is left out');
});

test('the closure holds every alternative, every provider of a virtual name and every suite\'s versions; nothing nobody depends on', () => {
  const names = closure(universe(), ['app']);
  assert.deepEqual([...names].sort(), ['app', 'exim4', 'exim4-base', 'liba', 'libb', 'libc6', 'libgcc-s1', 'libz', 'loader', 'mail-transport-agent', 'postfix']);
});

test('kept stanzas are byte ranges per file, in file order; a name no list knows, or none at all, leaves apt the whole lists', () => {
  const u = universe();
  const kept = keptStanzas(u, ['libc6=2.36-9'])!;
  const text = (file: string, all: string) => kept.get(file)!.map(([s, e]) => Buffer.from(all).subarray(s, e).toString()).join('\n\n');
  assert.equal(text('main', main), 'Package: libc6\nVersion: 2.36-9', 'a pinned version is apt\'s to pick among the name\'s stanzas');
  assert.equal(text('security', security), 'Package: libc6\nVersion: 2.36-9+deb12u1\nDepends: libgcc-s1\n\nPackage: libgcc-s1\nVersion: 12');
  assert.equal(keptStanzas(u, ['mail-transport-agent'])!.get('main')!.length, 3, 'a virtual name is known by its providers');
  assert.equal(keptStanzas(u, ['app', 'no-such-package']), null);
  assert.equal(keptStanzas(u, []), null);
  assert.equal(keptStanzas(u, ['constructor']), null, 'names are looked up as keys of nothing but the lists');
});

test('the index survives being kept as JSON; JSON that is no index is refused', () => {
  const u = universe();
  const back = universeFromJson(universeToJson(u))!;
  assert.deepEqual(keptStanzas(back, ['app']), keptStanzas(u, ['app']));
  assert.equal(universeFromJson('{"stanzas": 3}'), null);
  assert.equal(universeFromJson('not json'), null);
});
