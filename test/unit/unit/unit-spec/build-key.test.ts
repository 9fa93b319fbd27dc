import assert from 'node:assert/strict';
import { HEAD, parse, unitDir } from '../../../support/unit-spec.js';
import { describe, test } from 'node:test';
import { buildKeyMaterial } from '../../../../src/unit/unit-spec/build-key.js';

describe('buildKeyMaterial', () => {
  const dir = unitDir({ 'src/a.c': '', 'src/b.c': '' });
  const key = (text: string) => buildKeyMaterial(parse(text, dir));
  const base = `${HEAD}packages: [gcc, python3]\nfiles: [{from: ./src, to: /app}]\nsetup: make\n`;

  test('ignores package order, YAML formatting, comments and run-time fields', () => {
    const reformatted = [
      '# a comment', 'name: other', 'version: 9', "base: 'tiny'", 'setup: |', '  make', 'packages:', '  - python3',
      '  - gcc', '  - gcc', 'files:', '  - from: src/', '    to: /app/', 'run: ./x', 'params: {n: 1}', 'network: true', '',
    ].join('\n');
    assert.equal(key(reformatted), key(base));
    assert.equal(key(base), '{"base":{"name":"tiny"},"files":[{"from":"src","to":"/app"}],"format":2,"packages":["gcc","python3"],"setup":"make\\n"}');
  });

  test('changes with setup, a file mapping, packages or base', () => {
    const k = key(base);
    assert.notEqual(key(base.replace('setup: make', 'setup: make all')), k);
    assert.notEqual(key(base.replace('to: /app', 'to: /opt/app')), k);
    assert.notEqual(key(base.replace('from: ./src', 'from: ./src/a.c')), k);
    assert.notEqual(key(base.replace('python3]', 'python3, make]')), k);
    assert.notEqual(key(base.replace('base: tiny', 'base: {arch: x86_64, os: linux}')), k);
  });
});
