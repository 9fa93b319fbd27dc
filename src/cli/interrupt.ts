import { constants } from 'node:os';

/** Signals (Ctrl-C, a kill, a closed terminal) as an AbortSignal for a long command, and the exit code a signal stands for. */

export interface Interrupt {
  /** Aborts on the first of the signals. */
  readonly signal: AbortSignal;
  /** The first signal that came, if one did. */
  readonly received: NodeJS.Signals | undefined;
  /** 128 + the first signal's number (SIGINT 130, SIGTERM 143), as shells report it; undefined while none came. */
  readonly exitCode: number | undefined;
  /** Stops listening: from then on a signal does what it would without this. */
  dispose(): void;
}

export interface InterruptOptions {
  /** Listen for each signal once: a second one of the same kind does what it would without this (SIGINT: the process dies). */
  once?: boolean;
  /** What the signal aborts with (default: an AbortError). */
  reason?: () => unknown;
}

/** Listens for `signals` until disposed; the first one aborts `signal` and is remembered. */
export function interruptOn(signals: readonly NodeJS.Signals[], o: InterruptOptions = {}): Interrupt {
  const ac = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    received ??= s;
    ac.abort(o.reason?.());
  };
  for (const s of signals) {
    if (o.once) process.once(s, onSignal);
    else process.on(s, onSignal);
  }
  return {
    signal: ac.signal,
    get received() {
      return received;
    },
    get exitCode() {
      return received === undefined ? undefined : signalExitCode(received);
    },
    dispose() {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}

/** 128 + the signal's number: the exit status of a process that a signal ended. */
export function signalExitCode(s: NodeJS.Signals): number {
  return 128 + constants.signals[s];
}
