import assert from 'node:assert/strict';
import { HEAD, parse, rejects, unitDir } from '../../../support/unit-spec.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

describe('files', () => {
  const spec = (from: string, to = '/app') => `${HEAD}files:\n  - from: ${from}\n    to: ${to}\n`;

  test('from outside the spec directory is refused', () => {
    const dir = unitDir({ 'vmwu.yaml': '' });
    writeFileSync(join(dir, '..', 'secret'), 'x');
    rejects(spec('../secret'), '5:11: files[0].from: "../secret" points outside the spec\'s directory', /move them there/, dir);
    rejects(spec('/etc/passwd'), '5:11: files[0].from: "/etc/passwd" points outside the spec\'s directory', undefined, dir);
  });

  test('from that does not exist names the resolved path', () => {
    const dir = unitDir();
    rejects(spec('./nope'), `5:11: files[0].from: "./nope" does not exist (${join(dir, 'nope')})`, /relative to the directory/, dir);
  });

  test('a symlink cannot lead outside, but may point within', () => {
    const outside = unitDir({ 'secret.txt': 'x' });
    const dir = unitDir({ 'data/real.txt': 'y', 'leak': `->${outside}`, 'data/alias.txt': '->real.txt' });
    rejects(spec('leak/secret.txt'), `5:11: files[0].from: "leak/secret.txt" is a link to ${join(outside, 'secret.txt')}, outside the spec's directory`, undefined, dir);
    rejects(spec('./leak'), `5:11: files[0].from: "./leak" is a link to ${outside}, outside the spec's directory`, undefined, dir);
    assert.deepEqual(parse(spec('data/alias.txt'), dir).files, [{ from: join(dir, 'data/alias.txt'), to: '/app' }]);
  });

  test('to must be an absolute guest path without .., not / itself, not repeated', () => {
    const dir = unitDir({ a: '', b: '' });
    rejects(spec('a', 'app'), '6:9: files[0].to: "app" is not an absolute guest path', 'write it like /app or /opt/data', dir);
    rejects(spec('a', '/app/../etc'), '6:9: files[0].to: "/app/../etc" contains ..', undefined, dir);
    rejects(spec('a', '//'), '6:9: files[0].to: cannot import over the guest\'s root directory', undefined, dir);
    rejects(`${HEAD}files: [{from: a, to: /x/}, {from: b, to: /x}]\n`, '4:43: files[1].to: /x is already the target of files[0]', undefined, dir);
  });
});
