// Progress on stderr: a bar redrawn in place on a terminal, else a plain line every 10% (or
// every 10 s when the total is unknown), so logs of CI runs stay short.

export type ProgressStyle = 'bar' | 'lines' | 'none';

export interface Progress {
  update(done: number, failed: number): void;
  finish(done: number, failed: number): void;
}

export function progress(style: ProgressStyle, total: number, out: NodeJS.WriteStream = process.stderr): Progress {
  if (style === 'none') return { update() {}, finish() {} };
  const t0 = performance.now();
  const known = Number.isFinite(total);
  const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1);
  if (style === 'bar') {
    let last = 0;
    const draw = (done: number, failed: number) => {
      const width = 30;
      const frac = known ? Math.min(1, done / total) : 0;
      const bar = known ? '#'.repeat(Math.round(frac * width)).padEnd(width, '.') : '';
      out.write(`\r[${bar}] ${done}${known ? '/' + total : ''} done, ${failed} failed, ${elapsed()} s `);
    };
    return {
      update(done, failed) {
        const t = performance.now();
        if (t - last < 100) return; // at most 10 redraws a second
        last = t;
        draw(done, failed);
      },
      finish(done, failed) {
        draw(done, failed);
        out.write('\n');
      },
    };
  }
  let step = 0;
  let lastT = performance.now();
  return {
    update(done, failed) {
      const due = known ? Math.floor((10 * done) / total) > step : performance.now() - lastT >= 10_000;
      if (!due) return;
      step = known ? Math.floor((10 * done) / total) : step;
      lastT = performance.now();
      out.write(`bench: ${done}${known ? '/' + total : ''} done, ${failed} failed, ${elapsed()} s\n`);
    },
    finish(done, failed) {
      out.write(`bench: finished ${done} requests, ${failed} failed, ${elapsed()} s\n`);
    },
  };
}
