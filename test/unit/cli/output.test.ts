import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VmwuError } from '../../../src/errors.js';
import { jsonText, reportError, table } from '../../../src/cli/output.js';

/** What `fn` writes to stderr. */
function stderrOf(fn: () => void): string {
  const chunks: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return chunks.join('');
}

describe('table', () => {
  test('lines up plain cells as before', () => {
    assert.equal(table([['ID', 'STATUS'], ['abc', 'ok'], ['a', 'failed']]), 'ID   STATUS\nabc  ok\na    failed\n');
  });

  test('a cell can neither end the line nor move the cursor: control characters are escaped', () => {
    const out = table([
      ['NAME', 'ERROR', 'HOST'],
      ['h1', 'line one\nline two', 'x'],
      ['h2', 'clear\x1b[2J\x1b]52;c;eA==\x07', 'y'],
      ['h3', 'tab\there\rover', 'csi\u009b1A'],
    ]);
    const lines = out.split('\n');
    assert.equal(lines.length, 5, out);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(out.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u);
    assert.match(lines[1]!, /line one\\nline two/);
    assert.match(lines[2]!, /clear\\u001b\[2J\\u001b\]52;c;eA==\\u0007/);
    assert.match(lines[3]!, /tab\\there\\rover/);
    assert.match(lines[3]!, /csi\\u009b1A$/);
  });

  test('widths are those of the escaped text: columns still line up', () => {
    const out = table([['A', 'B'], ['\x1b\x1b', 'x'], ['plain', 'y']]);
    const lines = out.trimEnd().split('\n');
    const col = (l: string) => l.lastIndexOf(' ') + 1;
    assert.equal(new Set(lines.map(col)).size, 1, out);
    assert.equal(lines[1], '\\u001b\\u001b  x');
  });
});

describe('jsonText', () => {
  test('same value, but no DEL, C1 control or line separator raw in the text', () => {
    const v = { out: 'a\u009b2J\x7f\u2028\x1b[0m' };
    const s = jsonText(v);
    assert.deepEqual(JSON.parse(s), v);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(s.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u);
  });
});

describe('reportError', () => {
  test("escapes what a host wrote into a message, keeping the message's own lines", () => {
    const err = stderrOf(() => reportError(new VmwuError('REMOTE', 'host h1 failed:\nbash: \x1b]52;c;eA==\x07\x1b[2J', 'see \x1b[8mhidden\x1b[0m')));
    assert.equal(err, 'vmwu: host h1 failed:\nbash: \\u001b]52;c;eA==\\u0007\\u001b[2J\n  hint: see \\u001b[8mhidden\\u001b[0m\n');
  });

  test('an internal error too', () => {
    const err = stderrOf(() => reportError(new Error('boom\u009b2J')));
    assert.match(err, /^vmwu: internal error: Error: boom\\u009b2J\n/);
  });
});
