import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { splitCommandLine } from '../../../../src/unit/unit-spec/command-line.js';

describe('splitCommandLine', () => {
  test('quotes, backslashes, no expansion', () => {
    assert.deepEqual(splitCommandLine(`a  'b c' "d \\"e\\" \\n" f\\ g '' "\${x}" $y *.c`),
      ['a', 'b c', 'd "e" \\n', 'f g', '', '${x}', '$y', '*.c']);
    assert.deepEqual(splitCommandLine('a \\\n  b\n'), ['a', 'b']);
    assert.deepEqual(splitCommandLine('"x;y|z" \'a>b\''), ['x;y|z', 'a>b']);
  });

  test('refuses what only a shell would understand', () => {
    for (const [line, index] of [['a | b', 2], ['a; b', 1], ['echo $(date)', 5], ['a `b`', 2], ['a\nb', 1], ["'x", 0], ['x\\', 1]] as const) {
      assert.throws(() => splitCommandLine(line), (e: unknown) => (e as { index: number }).index === index, line);
    }
  });
});
