import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { recordTemplateStore, templateStores, templateUnneeded } from '../../../../src/run/fast-start/template-stores.js';

describe('which stores a template serves', () => {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-tstores-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const store = (name: string): string => {
    const s = join(root, name);
    mkdirSync(s, { recursive: true });
    writeFileSync(join(s, 'vmwu.db'), '');
    return s;
  };
  let n = 0;
  const template = (): string => {
    const d = join(root, `t${n++}`);
    mkdirSync(d);
    return d;
  };

  test('records each store once', () => {
    const t = template();
    const a = store('a');
    recordTemplateStore(t, a);
    recordTemplateStore(t, a);
    recordTemplateStore(t, `${a}/`);
    assert.deepEqual(templateStores(t), [a]);
  });

  test('another store that still lives keeps the template, whatever this store holds', () => {
    const t = template();
    const a = store('a');
    const b = store('b');
    recordTemplateStore(t, a);
    assert.equal(templateUnneeded(t, b, false), undefined);
    assert.equal(templateUnneeded(t, b, true), undefined);
    assert.deepEqual(templateStores(t), [a]);
  });

  test('this store without the blobs drops its record; the last store gone removes the template', () => {
    const t = template();
    const a = store('a');
    const c = store('c');
    recordTemplateStore(t, a);
    recordTemplateStore(t, c);
    assert.equal(templateUnneeded(t, a, false, { dryRun: true }), undefined);
    assert.equal(templateStores(t)!.length, 2, 'a dry run forgets nothing');
    assert.equal(templateUnneeded(t, a, false), undefined, 'c still needs it');
    assert.deepEqual(templateStores(t), [c]);
    rmSync(c, { recursive: true });
    assert.equal(templateUnneeded(t, a, true), 'every store it was made for is gone');
  });

  test('this store as the only one: its blobs decide', () => {
    const t = template();
    const a = store('a');
    recordTemplateStore(t, a);
    assert.equal(templateUnneeded(t, a, true), undefined);
    assert.equal(templateUnneeded(t, a, false), 'its unit or base is gone from the store');
  });

  test('a template from before records were kept is judged by this store\'s blobs', () => {
    const t = template();
    assert.equal(templateStores(t), undefined);
    assert.equal(templateUnneeded(t, store('a'), true), undefined);
    assert.match(templateUnneeded(t, store('a'), false)!, /gone from the store/);
  });

  test('a forged record (name not matching its path) is ignored', () => {
    const t = template();
    mkdirSync(join(t, 'stores'));
    writeFileSync(join(t, 'stores', '0000000000000000'), `${store('a')}\n`);
    assert.deepEqual(templateStores(t), []);
  });
});
