import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeForTerminal, guestOutput, TerminalText } from '../../../src/cli/terminal-text.js';

/** What the sanitizer prints for these chunks, in order, then at the end. */
function through(...chunks: (string | Buffer)[]): Buffer {
  const t = new TerminalText();
  return Buffer.concat([...chunks.map((c) => t.push(typeof c === 'string' ? Buffer.from(c) : c)), t.end()]);
}
const text = (...chunks: (string | Buffer)[]) => through(...chunks).toString('utf8');

/** No byte a terminal acts on: C0 but newline, tab and a CR before a newline; DEL; C1 (as UTF-8); U+2028/9; a byte that is not UTF-8. */
function assertInert(out: Buffer): void {
  const s = out.toString('utf8');
  assert.equal(Buffer.from(s, 'utf8').equals(out), true, `not valid UTF-8: ${out.toString('hex')}`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(s.replace(/\r\n/g, '\n'), /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/u);
}

describe('TerminalText', () => {
  test('plain text, UTF-8, newlines and tabs pass byte for byte', () => {
    const plain = Buffer.from('step 1\tok\nénergie = −3.5 kJ/mol ✓ 水 😀\nC:\\path\\to "quoted"\n');
    const t = new TerminalText();
    const out = t.push(plain);
    assert.equal(out.equals(plain), true);
    assert.equal(t.end().length, 0);
  });

  test('escape sequences come out as text: OSC 52 (clipboard), clear screen, cursor moves', () => {
    const osc52 = '\x1b]52;c;ZWNobyBwd25lZA==\x07';
    assert.equal(text(`a${osc52}b`), 'a\\u001b]52;c;ZWNobyBwd25lZA==\\u0007b');
    assert.equal(text('\x1b[2J\x1b[H'), '\\u001b[2J\\u001b[H');
    assert.equal(text('x\x1b[1A\x1b[2Ky'), 'x\\u001b[1A\\u001b[2Ky');
    assertInert(through(`a${osc52}b\x1b[2J`));
  });

  test('C1 controls (CSI U+009B, NEL U+0085), DEL, NUL, BEL, backspace and the Unicode line separators are escaped', () => {
    assert.equal(text('\u009b2J'), '\\u009b2J');
    assert.equal(text('a\u0085b'), 'a\\u0085b');
    assert.equal(text('a\x7fb\0c\x07d\be'), 'a\\u007fb\\u0000c\\u0007d\\u0008e');
    assert.equal(text('a\u2028b\u2029c'), 'a\\u2028b\\u2029c');
    assert.equal(text('\x0b\x0c\x1b'), '\\u000b\\u000c\\u001b');
    assertInert(through('\u009b2J\u0085\x7f\0\u2028\u2029\x0b\x0c'));
  });

  test('a multi-byte character split across chunks passes whole, at any split', () => {
    for (const ch of ['é', '−', '水', '😀']) {
      const b = Buffer.from(`<${ch}>`);
      for (let cut = 1; cut < b.length; cut++) {
        assert.equal(text(b.subarray(0, cut), b.subarray(cut)), `<${ch}>`, `${ch} cut at ${cut}`);
      }
      // One byte per chunk.
      assert.equal(text(...[...b].map((x) => Buffer.from([x]))), `<${ch}>`);
    }
    // A C1 control split across chunks is still caught.
    assert.equal(text(Buffer.from([0x61, 0xc2]), Buffer.from([0x9b, 0x62])), 'a\\u009bb');
    assert.equal(text(Buffer.from([0xe2, 0x80]), Buffer.from([0xa8])), '\\u2028');
  });

  test('bytes that are not UTF-8 come out as \\xNN, never raw', () => {
    // Lone continuation, overlong, surrogate, beyond U+10FFFF, a bare 8-bit C1 (CSI in Latin-1 terminals), 0xff.
    assert.equal(text(Buffer.from([0x61, 0x80, 0x62])), 'a\\x80b');
    assert.equal(text(Buffer.from([0xc0, 0xaf])), '\\xc0\\xaf');
    assert.equal(text(Buffer.from([0xed, 0xa0, 0x80])), '\\xed\\xa0\\x80');
    assert.equal(text(Buffer.from([0xf4, 0x90, 0x80, 0x80])), '\\xf4\\x90\\x80\\x80');
    assert.equal(text(Buffer.from([0x9b, 0x32, 0x4a])), '\\x9b2J');
    assert.equal(text(Buffer.from([0xff, 0xfe])), '\\xff\\xfe');
    // A sequence cut short by another character, and one cut short by the end of the output.
    assert.equal(text(Buffer.from([0xe6, 0xb0, 0x41])), '\\xe6\\xb0A');
    assert.equal(text(Buffer.from([0x41, 0xf0, 0x9f, 0x98])), 'A\\xf0\\x9f\\x98');
    assertInert(through(Buffer.from([0x80, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x9b, 0xff, 0xe6, 0xb0])));
  });

  test('a carriage return before a newline is kept; one that would overwrite the line is escaped', () => {
    assert.equal(text('dos line\r\nnext\r\n'), 'dos line\r\nnext\r\n');
    assert.equal(text('secret\rpublic\n'), 'secret\\rpublic\n');
    assert.equal(text(' 10%\r 50%\r100%\n'), ' 10%\\r 50%\\r100%\n');
    // Split between the CR and the LF: still a line ending.
    assert.equal(text('a\r', '\nb'), 'a\r\nb');
    assert.equal(text('a\r', 'b'), 'a\\rb');
    // A CR at the very end overwrites nothing yet, but the next output would: escaped.
    assert.equal(text('a\r'), 'a\\r');
    assert.equal(text('\r\r\n'), '\\r\r\n');
  });

  test('bytes held at the end of a chunk are not lost or doubled', () => {
    const t = new TerminalText();
    assert.equal(t.push(Buffer.from([0x41, 0xe6])).toString(), 'A');
    assert.equal(t.push(Buffer.from([0xb0])).toString(), '');
    assert.equal(t.push(Buffer.from([0xb4, 0x0d])).toString(), '水');
    assert.equal(t.end().toString(), '\\r');
    assert.equal(t.end().length, 0);
  });
});

test('any bytes, cut anywhere: the same text as in one piece, and nothing a terminal acts on', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  // Weighted to the interesting bytes: controls, CR/LF, UTF-8 leads and continuations.
  const pool = [0x00, 0x07, 0x0a, 0x0d, 0x1b, 0x5b, 0x41, 0x7f, 0x80, 0x85, 0x9b, 0xbf, 0xc2, 0xe2, 0xa8, 0xe6, 0xed, 0xf0, 0xf4, 0x9f, 0xff];
  for (let round = 0; round < 500; round++) {
    const b = Buffer.from(Array.from({ length: 1 + rand(40) }, () => (rand(3) ? pool[rand(pool.length)]! : rand(256))));
    const whole = through(b);
    const cuts = [0, ...Array.from({ length: rand(5) }, () => rand(b.length + 1)), b.length].sort((x, y) => x - y);
    const pieces = cuts.slice(1).map((c, i) => b.subarray(cuts[i]!, c));
    assert.equal(through(...pieces).equals(whole), true, b.toString('hex'));
    assertInert(whole);
    // Valid UTF-8 without controls is left alone.
    // eslint-disable-next-line no-control-regex
    if (/^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\ufffd]*$/u.test(b.toString('utf8')) && !b.includes(0x0d)) assert.equal(whole.equals(b), true);
  }
});

test('guestOutput: live output of run and restore, escaped per stream unless raw', () => {
  const captured = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const saved = { stdout: process.stdout.write, stderr: process.stderr.write };
  for (const s of ['stdout', 'stderr'] as const) {
    process[s].write = ((c: Buffer) => {
      captured[s].push(Buffer.from(c));
      return true;
    }) as typeof process.stdout.write;
  }
  try {
    const esc = guestOutput(false);
    esc.write('stdout', Buffer.from([0x61, 0xe6, 0xb0]));
    esc.write('stderr', Buffer.from('\x1b[2Jerr\r'));
    esc.write('stdout', Buffer.from([0xb4, 0x1b, 0x5d]));
    esc.end();
    const raw = guestOutput(true);
    raw.write('stdout', Buffer.from('\x1b[2J'));
    raw.end();
  } finally {
    process.stdout.write = saved.stdout;
    process.stderr.write = saved.stderr;
  }
  assert.equal(Buffer.concat(captured.stdout).toString(), 'a水\\u001b]\x1b[2J');
  assert.equal(Buffer.concat(captured.stderr).toString(), '\\u001b[2Jerr\\r');
});

describe('escapeForTerminal', () => {
  test('keeps the lines and tabs of a message, escapes what a terminal would act on', () => {
    assert.equal(escapeForTerminal('host h1 said:\n\tpermission denied'), 'host h1 said:\n\tpermission denied');
    assert.equal(escapeForTerminal('bad \x1b]52;c;eA==\x07 reply\u009b'), 'bad \\u001b]52;c;eA==\\u0007 reply\\u009b');
    assert.equal(escapeForTerminal('a\rb'), 'a\\rb');
    assert.equal(escapeForTerminal('plain – text ✓'), 'plain – text ✓');
  });
});
