/**
 * A fuzz target: one entry point of vmwu that reads untrusted input, and the property
 * it must keep. `run` may end normally or throw a VmwuError (the input was refused
 * with a typed error); anything else it throws is a finding. Targets check their own
 * extra properties (nothing written outside the target directory, messages that name
 * the file) and throw a PropertyViolation when one fails.
 */
export interface FuzzTarget {
  /** Longer inputs are cut: parsers meet small files, and short inputs run fast. */
  maxLen: number;
  /** Tokens the mutator inserts whole; stands in for libFuzzer's comparison tracing. */
  dictionary: readonly string[];
  /** Record size of a block format (tar: 512), for moves that keep records aligned. */
  blockSize?: number;
  /** Runs once per worker with a private scratch directory, removed afterwards. */
  setup?(scratch: string): void | Promise<void>;
  run(data: Buffer): void | Promise<void>;
}

export class PropertyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyViolation';
  }
}

export function violated(message: string): never {
  throw new PropertyViolation(message);
}
