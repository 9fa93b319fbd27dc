/**
 * Input mutations in the manner of libFuzzer's MutationDispatcher: byte and bit edits,
 * ASCII and binary integers set to boundary values, copies within an input, splices
 * with another corpus entry, dictionary tokens, and line and block moves for text and
 * tar inputs. Pure: randomness comes from the caller's generator, so a seed replays.
 */

export type Random = () => number;

export interface MutatorOptions {
  maxLen: number;
  /** Tokens worth inserting whole: keywords, field names, magic strings. */
  dictionary: readonly string[];
  /** Record size of a block format (512 for tar), for moves that keep headers aligned. */
  blockSize?: number;
}

const INTERESTING_TEXT = ['0', '1', '-1', '00', '+1', '1.5', '-0', '1e308', '1e999', '-1e999', '1e-400', '0x10', '255', '256', '65535', '65536',
  '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '9007199254740993', '18446744073709551616',
  '99999999999999999999999999', 'NaN', 'Infinity', '1e21', '0.1', '1.'];
const INTERESTING_BIN = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
const SPECIAL_BYTES = Buffer.from(' \n\t\r"\'$`{}[]():;,/\\#*?!&|<>=.-_0aZ\0\x7f\xff');

export class Mutator {
  private readonly dict: Buffer[];

  constructor(
    private readonly rand: Random,
    private readonly opts: MutatorOptions,
  ) {
    this.dict = opts.dictionary.map((w) => Buffer.from(w, 'utf8'));
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** One to several stacked mutations; `other` supplies a corpus entry to splice with. */
  mutate(input: Uint8Array, other: () => Uint8Array | undefined): Buffer {
    let out: Buffer = Buffer.from(input);
    // Mostly one or two edits, sometimes a burst: small steps climb, bursts jump.
    const n = 1 + (this.rand() < 0.7 ? this.int(2) : this.int(8));
    for (let i = 0; i < n; i++) out = this.once(out, other);
    return out.length > this.opts.maxLen ? out.subarray(0, this.opts.maxLen) : out;
  }

  private once(b: Buffer, other: () => Uint8Array | undefined): Buffer {
    const ops: ((b: Buffer) => Buffer | null)[] = [
      (x) => this.eraseBytes(x), (x) => this.insertByte(x), (x) => this.insertRepeated(x), (x) => this.changeByte(x),
      (x) => this.changeBit(x), (x) => this.shuffle(x), (x) => this.asciiInt(x), (x) => this.binInt(x), (x) => this.copyPart(x),
      (x) => this.dictionary(x), (x) => this.dictionary(x), (x) => this.lines(x), (x) => this.crossOver(x, other()),
    ];
    if (this.opts.blockSize) ops.push((x) => this.blocks(x), (x) => this.blocks(x));
    for (let tries = 0; tries < 8; tries++) {
      const r = this.pick(ops)(b);
      if (r) return r;
    }
    return this.insertByte(b);
  }

  private eraseBytes(b: Buffer): Buffer | null {
    if (b.length < 1) return null;
    const len = 1 + this.int(Math.min(b.length, this.rand() < 0.8 ? 4 : 64));
    const at = this.int(b.length - len + 1);
    return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
  }

  private insertByte(b: Buffer): Buffer {
    const at = this.int(b.length + 1);
    const c = this.rand() < 0.5 ? this.pick([...SPECIAL_BYTES]) : this.int(256);
    return Buffer.concat([b.subarray(0, at), Buffer.from([c]), b.subarray(at)]);
  }

  private insertRepeated(b: Buffer): Buffer {
    const at = this.int(b.length + 1);
    const c = this.rand() < 0.5 ? this.pick([...SPECIAL_BYTES]) : this.int(256);
    const len = 2 + this.int(this.rand() < 0.8 ? 16 : 600);
    return Buffer.concat([b.subarray(0, at), Buffer.alloc(len, c), b.subarray(at)]);
  }

  private changeByte(b: Buffer): Buffer | null {
    if (b.length < 1) return null;
    const out = Buffer.from(b);
    out[this.int(b.length)] = this.rand() < 0.5 ? this.pick([...SPECIAL_BYTES]) : this.int(256);
    return out;
  }

  private changeBit(b: Buffer): Buffer | null {
    if (b.length < 1) return null;
    const out = Buffer.from(b);
    out[this.int(b.length)]! ^= 1 << this.int(8);
    return out;
  }

  private shuffle(b: Buffer): Buffer | null {
    if (b.length < 2) return null;
    const len = 2 + this.int(Math.min(b.length - 1, 8));
    const at = this.int(b.length - len + 1);
    const out = Buffer.from(b);
    for (let i = len - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[at + i], out[at + j]] = [out[at + j]!, out[at + i]!];
    }
    return out;
  }

  /** Replaces a run of digits with a boundary value or a nearby one. */
  private asciiInt(b: Buffer): Buffer | null {
    const starts: number[] = [];
    for (let i = 0; i < b.length; i++) if (isDigit(b[i]!) && (i === 0 || !isDigit(b[i - 1]!))) starts.push(i);
    if (!starts.length) return null;
    const at = this.pick(starts);
    let end = at;
    while (end < b.length && isDigit(b[end]!)) end++;
    const old = Number(b.toString('latin1', at, end));
    const choices = [this.pick(INTERESTING_TEXT), String(old + 1), String(old - 1), String(old * 2), String(Math.floor(old / 2)), String(this.int(1000))];
    return Buffer.concat([b.subarray(0, at), Buffer.from(this.pick(choices)), b.subarray(end)]);
  }

  private binInt(b: Buffer): Buffer | null {
    const width = this.pick([1, 2, 4]);
    if (b.length < width) return null;
    const at = this.int(b.length - width + 1);
    const v = this.pick(INTERESTING_BIN) % 2 ** (8 * width);
    const out = Buffer.from(b);
    if (this.rand() < 0.5) out.writeUIntLE(v, at, width);
    else out.writeUIntBE(v, at, width);
    return out;
  }

  private copyPart(b: Buffer): Buffer | null {
    if (b.length < 2) return null;
    const len = 1 + this.int(Math.min(b.length, 64));
    const from = this.int(b.length - len + 1);
    const chunk = Buffer.from(b.subarray(from, from + len));
    const to = this.int(b.length + 1);
    if (this.rand() < 0.5) return Buffer.concat([b.subarray(0, to), chunk, b.subarray(to)]);
    const out = Buffer.from(b);
    chunk.copy(out, Math.min(to, b.length - len));
    return out;
  }

  private dictionary(b: Buffer): Buffer | null {
    if (!this.dict.length) return null;
    const w = this.pick(this.dict);
    const at = this.int(b.length + 1);
    if (this.rand() < 0.7 || at + w.length > b.length) return Buffer.concat([b.subarray(0, at), w, b.subarray(at)]);
    const out = Buffer.from(b);
    w.copy(out, at);
    return out;
  }

  /** Duplicate, drop or swap whole lines: text grammars are line-based, so this keeps inputs near-valid. */
  private lines(b: Buffer): Buffer | null {
    const text = b.toString('latin1');
    if (!text.includes('\n')) return null;
    const ls = text.split('\n');
    const i = this.int(ls.length);
    const j = this.int(ls.length);
    const op = this.int(3);
    if (op === 0) ls.splice(j, 0, ls[i]!);
    else if (op === 1) ls.splice(i, 1);
    else [ls[i], ls[j]] = [ls[j]!, ls[i]!];
    return Buffer.from(ls.join('\n'), 'latin1');
  }

  private blocks(b: Buffer): Buffer | null {
    const size = this.opts.blockSize!;
    const count = Math.floor(b.length / size);
    if (count < 1) return null;
    const i = this.int(count) * size;
    const j = this.int(count + 1) * size;
    const block = Buffer.from(b.subarray(i, i + size));
    const op = this.int(3);
    if (op === 0) return Buffer.concat([b.subarray(0, j), block, b.subarray(j)]);
    if (op === 1) return Buffer.concat([b.subarray(0, i), b.subarray(i + size)]);
    return Buffer.concat([b.subarray(0, j), Buffer.alloc(size), b.subarray(j)]);
  }

  private crossOver(b: Buffer, o: Uint8Array | undefined): Buffer | null {
    if (!o || o.length === 0) return null;
    const ob = Buffer.from(o);
    if (this.rand() < 0.5) {
      // Head of one, tail of the other.
      return Buffer.concat([b.subarray(0, this.int(b.length + 1)), ob.subarray(this.int(ob.length + 1))]);
    }
    const len = 1 + this.int(Math.min(ob.length, 256));
    const from = this.int(ob.length - len + 1);
    const at = this.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), ob.subarray(from, from + len), b.subarray(at)]);
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
