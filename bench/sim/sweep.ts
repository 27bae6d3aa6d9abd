// The kv policy's overlap weight x temperature across workloads and fleet sizes (exact events,
// the report's event delay). Each setting is scored per scenario against the oracle (hit-rate
// ratio) and against the best setting of the scenario (TTFT p50 ratio); the recommendation is
// the setting of least geometric-mean TTFT p50 ratio over every scenario. Writes the table to
// stdout and a plot to bench/sim/sweep.svg.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { scenario, type WorkloadName } from './scenarios.js';
import { simulate } from './simulate.js';

export const WEIGHTS = [0.5, 1, 2, 4, 8];
export const TEMPERATURES = [0, 0.1, 0.5];
export const SCENARIOS: [WorkloadName, number][] = [
  ['shared-prefix', 8],
  ['shared-prefix', 64],
  ['shared-prefix', 1000],
  ['multi-turn', 8],
  ['mooncake', 8],
];

interface Cell {
  scenario: string;
  weight: number;
  temperature: number;
  hitRate: number;
  oracleHitRate: number;
  ttftP50: number;
  ttftP99: number;
  throughput: number;
}

export function runSweep(seed: number, eventDelayMs: number): Cell[] {
  const cells: Cell[] = [];
  for (const [w, n] of SCENARIOS) {
    const sc = scenario(w, n, seed);
    const oracle = simulate(sc.make(), { workers: n, engine: sc.engine, policy: { kind: 'oracle' }, seed });
    for (const weight of WEIGHTS) {
      for (const temperature of TEMPERATURES) {
        const r = simulate(sc.make(), { workers: n, engine: sc.engine, policy: { kind: 'kv', overlapWeight: weight, temperature, eventDelayMs, seed }, seed });
        cells.push({ scenario: `${w} x${n}`, weight, temperature, hitRate: r.hitRate, oracleHitRate: oracle.hitRate, ttftP50: r.ttftP50, ttftP99: r.ttftP99, throughput: r.throughput });
        process.stderr.write(`${w} x${n} w=${weight} T=${temperature}: ${r.wallSeconds.toFixed(1)} s\n`);
      }
    }
  }
  const scenarios = [...new Set(cells.map((c) => c.scenario))];
  const bestP50 = new Map(scenarios.map((s) => [s, Math.min(...cells.filter((c) => c.scenario === s).map((c) => c.ttftP50))]));
  console.log('\n### Sweep: kv policy, hit rate / oracle and TTFT p50 / best TTFT p50 of the scenario\n');
  console.log(`| overlap weight | temperature | ${scenarios.join(' | ')} | geo-mean TTFT p50 ratio |`);
  console.log(`|---|---|${scenarios.map(() => '---').join('|')}|---|`);
  let best = { weight: 0, temperature: 0, score: Infinity };
  for (const weight of WEIGHTS) {
    for (const temperature of TEMPERATURES) {
      const row = scenarios.map((s) => cells.find((c) => c.scenario === s && c.weight === weight && c.temperature === temperature)!);
      const ratios = row.map((c) => c.ttftP50 / bestP50.get(c.scenario)!);
      const score = Math.exp(ratios.reduce((a, x) => a + Math.log(x), 0) / ratios.length);
      if (score < best.score) best = { weight, temperature, score };
      console.log(`| ${weight} | ${temperature} | ${row.map((c, i) => `${(c.hitRate / c.oracleHitRate).toFixed(2)} / ${ratios[i]!.toFixed(2)}`).join(' | ')} | ${score.toFixed(2)} |`);
    }
  }
  console.log(`\nBest across scenarios: overlap weight ${best.weight}, temperature ${best.temperature} (geo-mean TTFT p50 ratio ${best.score.toFixed(2)}).`);
  writeFileSync(fileURLToPath(new URL('./sweep.svg', import.meta.url)), plot(cells, scenarios, bestP50));
  return cells;
}

// Small multiples: one panel per scenario, TTFT p50 / best (log) against overlap weight, a line
// per temperature.
function plot(cells: Cell[], scenarios: string[], bestP50: Map<string, number>): string {
  const W = 260;
  const H = 200;
  const pad = 36;
  const colors = ['#1f77b4', '#d62728', '#2ca02c'];
  const x = (w: number) => pad + ((Math.log2(w) - Math.log2(WEIGHTS[0]!)) / (Math.log2(WEIGHTS.at(-1)!) - Math.log2(WEIGHTS[0]!))) * (W - pad - 10);
  const maxRatio = Math.max(2, ...cells.map((c) => c.ttftP50 / bestP50.get(c.scenario)!));
  const y = (r: number) => H - pad - (Math.log(r) / Math.log(maxRatio)) * (H - pad - 24);
  const panels = scenarios.map((s, i) => {
    const ox = i * W;
    const lines = TEMPERATURES.map((t, k) => {
      const pts = WEIGHTS.map((w) => {
        const c = cells.find((c) => c.scenario === s && c.weight === w && c.temperature === t)!;
        return `${(ox + x(w)).toFixed(1)},${y(c.ttftP50 / bestP50.get(s)!).toFixed(1)}`;
      });
      return `<polyline fill="none" stroke="${colors[k]}" stroke-width="2" points="${pts.join(' ')}"/>`;
    });
    const ticks = WEIGHTS.map((w) => `<text x="${(ox + x(w)).toFixed(1)}" y="${H - pad + 14}" font-size="10" text-anchor="middle">${w}</text>`);
    return [
      `<text x="${ox + W / 2}" y="14" font-size="12" text-anchor="middle">${s}</text>`,
      `<line x1="${ox + pad}" y1="${H - pad}" x2="${ox + W - 10}" y2="${H - pad}" stroke="#888"/>`,
      `<line x1="${ox + pad}" y1="24" x2="${ox + pad}" y2="${H - pad}" stroke="#888"/>`,
      `<text x="${ox + pad - 4}" y="${y(1) + 4}" font-size="10" text-anchor="end">1</text>`,
      `<text x="${ox + pad - 4}" y="${y(maxRatio) + 4}" font-size="10" text-anchor="end">${maxRatio.toFixed(0)}</text>`,
      ...ticks,
      ...lines,
    ].join('\n');
  });
  const legend = TEMPERATURES.map((t, k) => `<text x="${10 + k * 110}" y="${H + 22}" font-size="12" fill="${colors[k]}">temperature ${t}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * scenarios.length}" height="${H + 30}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W * scenarios.length - 10}" y="${H + 22}" font-size="12" text-anchor="end">x: overlap weight (log); y: TTFT p50 / best of the panel (log)</text>
${panels.join('\n')}
${legend.join('\n')}
</svg>
`;
}
