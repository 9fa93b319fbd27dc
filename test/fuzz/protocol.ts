/** What the supervisor and its fuzzing worker share. */

/** Int32 slots at the start of the shared buffer; the current input follows them. */
export const EXECS = 0;
export const RUNNING = 1;
export const LENGTH = 2;
export const INPUT_OFFSET = 16;

export interface WorkerInput {
  target: string;
  seconds: number;
  maxExecs?: number;
  seed: number;
  corpusDirs: string[];
  /** Where inputs that found new coverage are written (the long run keeps them between runs). */
  corpusOut?: string;
  scratch: string;
  shared: SharedArrayBuffer;
}

export interface WorkerStats {
  type: 'stats';
  execs: number;
  corpus: number;
  features: number;
}

export interface WorkerDone {
  type: 'done';
  execs: number;
  /** Stored inputs replayed before fuzzing. */
  seeds: number;
  corpus: number;
  features: number;
  finding?: { input: Uint8Array; message: string };
}
