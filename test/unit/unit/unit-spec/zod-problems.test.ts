import assert from 'node:assert/strict';
import { HEAD, rejects } from '../../../support/unit-spec.js';
import { describe, test } from 'node:test';

describe('base', () => {
  test('missing: points at the start of the document and lists the forms', () => {
    rejects('# my unit\nname: x\nversion: 1\n', '1:1: base: required',
      'one of: base: tiny, base: debian:bookworm, or base: {arch: x86_64, os: linux}');
  });

  test('wrong type, a field missing from the platform map, a misspelt one', () => {
    rejects('name: x\nversion: 1\nbase: 5\n', '3:7: base: expected a string or a map, got 5', /base: tiny/);
    rejects('name: x\nversion: 1\nbase: {arch: x86_64}\n', '3:7: base.os: required');
    // The misspelling explains the missing field, so only it is reported.
    const e = rejects('name: x\nversion: 1\nbase: {arch: x86_64, oss: linux}\n', '3:22: base: unknown field `oss`', 'did you mean os?');
    assert.equal(e.problems.length, 1);
  });
});

describe('errors name file, line, column and field', () => {
  test('unknown field, with a suggestion', () => {
    rejects(`${HEAD}pakages: [gcc]\n`, '4:1: unknown field `pakages`', 'did you mean packages?');
    rejects(`${HEAD}files:\n  - from: .\n    too: /app\n`, '6:5: files[0]: unknown field `too`', 'did you mean to?');
    rejects(`${HEAD}colour: blue\n`, '4:1: unknown field `colour`', /^allowed here: name, version, base, packages/);
  });

  test('wrong types', () => {
    rejects(`${HEAD}resources:\n  cpus: two\n`, '5:9: resources.cpus: expected a whole number of at least 1, got "two"', /cpus: 1/);
    rejects(`${HEAD}resources: {cpus: 1.5}\n`, '4:19: resources.cpus: expected a whole number of at least 1, got 1.5');
    rejects(`${HEAD}packages: python3\n`, '4:11: packages: expected a list, got "python3"', /packages: \[python3, gcc\]/);
    rejects(`${HEAD}network: yes\n`, '4:10: network: expected true/false, got "yes"');
    rejects(`${HEAD}cpu: [x86-64-v2, "avx 2"]\n`, '4:18: cpu[1]: "avx 2" is neither an x86-64 level nor a CPU feature name', /levels: x86-64, x86-64-v2/);
    rejects(`${HEAD}params: {n: [1, 2]}\n`, '4:13: params.n: expected a string, a number or true/false, got a list');
    rejects(`${HEAD}params: {n: }\n`, '4:10: params.n: expected a string, a number or true/false, got nothing');
    rejects('- name: x\n', '1:1: expected a map of fields, got a list');
    rejects('# nothing yet\n', '1:1: the spec is empty');
  });

  test('an empty value points at its key', () => {
    rejects('name:\nversion: 1\nbase: tiny\n', '1:1: name: expected a string, got nothing');
  });
});
