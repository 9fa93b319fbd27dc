import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rootlessError, rootlessProblems, subidRange, type RootlessFacts } from '../../../src/base/rootless-preflight.js';

const ready: RootlessFacts = {
  user: 'alice',
  tools: { mmdebstrap: 'path', newuidmap: 'path', newgidmap: 'path', genext2fs: 'path', resize2fs: 'path' },
  subuid: 'bob:100000:65536\nalice:165536:65536\n', subgid: 'alice:165536:65536\n', usernsClone: '1', maxUserNamespaces: '63000',
};

test('everything in place: no problem, no error', () => {
  const p = rootlessProblems(ready);
  assert.deepEqual(p, { missingTools: [], packages: [], offPath: [], subids: [], userns: [] });
  assert.equal(rootlessError(p, 'alice'), undefined);
  assert.equal(rootlessProblems({ ...ready, usernsClone: undefined, maxUserNamespaces: undefined }).userns.length, 0, 'a kernel without the switches allows them');
});

test('uidmap and genext2fs missing: the tools, their packages (each once) and the apt-get line', () => {
  const p = rootlessProblems({ ...ready, tools: { ...ready.tools, newuidmap: 'missing', newgidmap: 'missing', genext2fs: 'missing' } });
  assert.deepEqual(p.missingTools, ['newuidmap', 'newgidmap', 'genext2fs']);
  assert.deepEqual(p.packages, ['uidmap', 'genext2fs']);
  const e = rootlessError(p, 'alice')!;
  assert.equal(e.code, 'ROOTLESS_PREREQS');
  assert.match(e.message, /without root \(as alice.*missing newuidmap, newgidmap, genext2fs \(Debian packages uidmap, genext2fs\)/);
  assert.match(e.hint!, /sudo apt-get install uidmap genext2fs/);
  assert.match(e.hint!, /sh scripts\/setup\.sh` as root/);
});

test('sub-uid and sub-gid ranges: found by user name as mmdebstrap does; missing, absent files and short ranges are named', () => {
  assert.deepEqual(subidRange('bob:1:2\nalice:100000:65536\nalice:1:1\n', 'alice'), { start: 100000, count: 65536 });
  assert.equal(subidRange('1000:100000:65536\n', 'alice'), undefined, 'a uid in place of the name is not what mmdebstrap reads');
  assert.equal(subidRange('alice:x:65536\n', 'alice'), undefined);
  const none = rootlessProblems({ ...ready, subuid: 'bob:100000:65536\n', subgid: null });
  assert.deepEqual(none.subids, ['/etc/subuid has no range for alice', '/etc/subgid is missing or unreadable']);
  const e = rootlessError(none, 'alice')!;
  assert.match(e.message, /\/etc\/subuid has no range for alice/);
  assert.match(e.hint!, /usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice/);
  const short = rootlessProblems({ ...ready, subgid: 'alice:100000:1000\n' });
  assert.match(short.subids[0]!, /gives alice 1000 ids, fewer than the 65536/);
});

test('a tool in /usr/sbin but off PATH, and user namespaces switched off, are said with their fixes', () => {
  const p = rootlessProblems({ ...ready, tools: { ...ready.tools, resize2fs: 'sbin' }, usernsClone: '0', maxUserNamespaces: '0', apparmorRestrictsUserns: '1' });
  assert.deepEqual(p.offPath, ['resize2fs']);
  assert.deepEqual(p.missingTools, []);
  assert.equal(p.userns.length, 3);
  const e = rootlessError(p, 'alice')!;
  assert.match(e.message, /resize2fs is installed but not on your PATH/);
  assert.match(e.hint!, /export PATH="\$PATH:\/usr\/sbin:\/sbin"/);
  assert.match(e.hint!, /kernel\.unprivileged_userns_clone=1/);
});

test('everything missing at once: one error naming it all', () => {
  const e = rootlessError(rootlessProblems({ user: 'carol', tools: {}, subuid: null, subgid: null }), 'carol')!;
  assert.match(e.message, /missing mmdebstrap, newuidmap, newgidmap, genext2fs, resize2fs/);
  assert.match(e.message, /\/etc\/subuid is missing/);
  assert.match(e.hint!, /apt-get install mmdebstrap uidmap genext2fs e2fsprogs/);
});
