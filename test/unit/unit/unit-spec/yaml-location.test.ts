import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { displayPath, formatPath, suggest, YamlSource } from '../../../../src/unit/unit-spec/yaml-location.js';

describe('yaml-location', () => {
  const src = new YamlSource('a:\n  b: [1, {c: 2}]\n  d:\nlist:\n  - x\n', '/f.yaml');

  test('positions of values, keys, missing keys and empty values', () => {
    assert.deepEqual(src.pos(['a', 'b', 1, 'c']), { line: 2, col: 14 });
    assert.deepEqual(src.pos(['a', 'b', 1, 'c'], { key: true }), { line: 2, col: 11 });
    assert.deepEqual(src.pos(['a', 'b', 1, 'missing']), { line: 2, col: 10 });
    assert.deepEqual(src.pos(['a', 'd']), { line: 3, col: 3 });
    assert.deepEqual(src.pos(['list', 0]), { line: 5, col: 5 });
    assert.deepEqual(src.pos(['nope']), { line: 1, col: 1 });
    assert.deepEqual(src.pathAt(src.text.indexOf('2}')).path, ['a', 'b', 1, 'c']);
  });

  test('paths, suggestions, display names', () => {
    assert.equal(formatPath(['files', 0, 'from']), 'files[0].from');
    assert.equal(formatPath(['params', '1x']), 'params["1x"]');
    assert.equal(suggest('pakages', ['name', 'packages']), 'packages');
    assert.equal(suggest('ouptuts', ['outputs', 'network']), 'outputs');
    assert.equal(suggest('colour', ['name', 'base']), undefined);
    assert.equal(displayPath('/w/units/a/vmwu.yaml', '/w'), 'units/a/vmwu.yaml');
    assert.equal(displayPath('/elsewhere/vmwu.yaml', '/w'), '/elsewhere/vmwu.yaml');
  });
});
