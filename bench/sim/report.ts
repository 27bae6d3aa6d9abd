// Markdown tables of simulator results.

import type { SimResult } from './simulate.js';

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function resultTable(results: readonly SimResult[]): string {
  const oracle = results.find((r) => r.policy === 'oracle');
  const rr = results.find((r) => r.policy === 'round-robin');
  const rnd = results.find((r) => r.policy === 'random');
  const lines = [
    '| policy | hit rate | vs oracle | TTFT p50 ms | TTFT p99 ms | p50 vs round-robin | output tok/s | vs random | imbalance max/mean | wall s |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.policy} | ${f(100 * r.hitRate, 1)} % | ${oracle && oracle.hitRate > 0 ? f(r.hitRate / oracle.hitRate, 2) : '-'} | ${f(r.ttftP50)} | ${f(r.ttftP99)} | ${rr ? `${f(rr.ttftP50 / r.ttftP50, 1)}x` : '-'} | ${f(r.throughput)} | ${rnd ? `${f(r.throughput / rnd.throughput, 2)}x` : '-'} | ${f(r.imbalance, 2)} | ${f(r.wallSeconds, 1)} |`,
    );
  }
  return lines.join('\n');
}
