import { Presets, SingleBar } from 'cli-progress';
import { formatBytes } from '../quantities.js';

/**
 * Progress on stderr for long work, only for people: a bar on a terminal, a line
 * per step when stderr is a file, nothing with --json (stdout is for the script).
 */

/** For work in counted steps (`progress(step, done, total)`, as the library reports it). */
export function stepProgress(label: string, json: boolean) {
  const bar = process.stderr.isTTY && !json ? new SingleBar({ format: `${label} {bar} {value}/{total} {step}`, hideCursor: true }, Presets.shades_classic) : undefined;
  return {
    progress(step: string, done: number, total: number) {
      if (bar) {
        if (done === 0) bar.start(total, 0, { step });
        bar.update(done, { step });
      } else if (!json) {
        process.stderr.write(`[${done}/${total}] ${step}\n`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

/** For bytes streamed: started with the total once it is known, then ticked by chunk. */
export function byteProgress(label: string, json: boolean) {
  if (json || !process.stderr.isTTY) return undefined;
  let bar: SingleBar | undefined;
  let done = 0;
  return {
    start(total: number, blobs: number) {
      if (total === 0) return;
      bar = new SingleBar({
        format: `${label} {bar} {percentage}% {value}/{total} (${blobs} blob${blobs === 1 ? '' : 's'})`, hideCursor: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
      }, Presets.shades_classic);
      bar.start(total, 0);
    },
    tick(n: number) {
      done += n;
      bar?.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}
