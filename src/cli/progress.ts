// Progress for long loops: a cli-progress bar on a terminal (ETA, rate, and whatever the loop
// reports), plain lines at a fixed interval otherwise, so logs and CI stay readable.
import cliProgress from 'cli-progress';

import type { Progress, RunOutput } from '../training/run.js';

/** A run's output on this process's terminal. */
export const terminal: RunOutput = { log: (line) => console.log(line), progress };

export function progress(label: string, total: number, fieldsFormat = ''): Progress {
  if (process.stdout.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} |{bar}| {value}/{total} {percentage}% ETA {eta_formatted} {rate} it/s ${fieldsFormat}`,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    const t0 = performance.now();
    let active = true;
    bar.start(total, 0, { rate: '0.00' });
    // A line printed mid-run stops the bar; the next update starts it again below that line. Starting
    // it at once would draw the bar a second time when the line comes after the last update.
    const stop = () => {
      if (active) bar.stop();
      active = false;
    };
    return {
      update: (d, fields = {}) => {
        const last = { ...fields, rate: (d / ((performance.now() - t0) / 1000)).toFixed(2) };
        if (!active) {
          bar.start(total, d, last);
          active = true;
        } else {
          bar.update(d, last);
        }
      },
      stop,
      log: (line) => {
        stop();
        console.log(line);
      },
    };
  }
  const t0 = performance.now();
  let lastPrinted = 0;
  return {
    update: (done, fields = {}) => {
      const now = performance.now();
      if (done < total && now - lastPrinted < 10_000) return;
      lastPrinted = now;
      const secs = (now - t0) / 1000;
      const rate = done / Math.max(secs, 1e-9);
      const eta = rate > 0 ? (total - done) / rate : 0;
      const extra = fieldsFormat.replace(/\{(\w+)\}/g, (_, k: string) => fields[k] ?? '');
      console.log(
        `${label} ${done}/${total} ${((100 * done) / total).toFixed(0)}% ETA ${eta.toFixed(0)}s ${rate.toFixed(2)} it/s ${extra}`,
      );
    },
    stop: () => {},
    log: (line) => console.log(line),
  };
}
