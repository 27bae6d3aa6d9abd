// Markdown tables of a bench:gateway run: every point as measured, then kvgate/Dynamo ratios
// at each concurrency from valid points only, and kvgate's added TTFT over the engine alone.
// Latency ratios are read "from issue" (aiperf.ts, AiperfResult): aiperf falls behind under
// some systems, and its as-sent latencies then leave out the requests' wait inside aiperf.

import type { AiperfResult } from './aiperf.js';
import type { SystemName } from './systems.js';

export interface Point {
  system: SystemName;
  concurrency: number;
  requests: number;
  result?: AiperfResult;
  cpuMsPerRequest?: Record<string, number>;
  loadAverage?: number; // the machine's 1-minute load average when the point ended
  // The suite's own client (kvgate bench) at the same point, right after aiperf.
  suite?: { requestsPerS: number; ttftP50: number; e2eP50: number; failed: number };
  // Why the point is not valid (errors, wrong output length, a process exited...); empty = valid.
  problems: string[];
}

export interface RunInfo {
  command: string;
  machine: string;
  peers: string;
  settings: string;
}

const ROLES = ['frontend', 'agents', 'engines'];

const f = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const cpuTotal = (p: Point) => Object.values(p.cpuMsPerRequest ?? {}).reduce((a, b) => a + b, 0);
const valid = (p: Point | undefined): p is Point & { result: AiperfResult } => !!p && !!p.result && p.problems.length === 0;
const signed = (x: number) => `${x >= 0 ? '+' : '−'}${f(Math.abs(x))}`;
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');

function pointsTable(points: Point[]): string[] {
  const rows = [
    '| system | concurrency | requests | req/s | in flight | waited in aiperf p50 ms | TTFT p50 / p99 ms | TTFT from issue p50 / p99 ms | ITL p50 / p99 ms | E2E p50 / p99 ms | E2E from issue p50 / p99 ms | errors | CPU ms/req: frontend | agents | engines | total | load avg | status |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of points) {
    const r = p.result;
    const cpu = p.cpuMsPerRequest;
    const status = p.problems.length === 0 ? 'ok' : `**invalid**: ${p.problems.join('; ')}`;
    if (!r) {
      rows.push(`| ${p.system} | ${p.concurrency} | ${p.requests} |${' - |'.repeat(14)} ${status} |`);
      continue;
    }
    rows.push(
      `| ${p.system} | ${p.concurrency} | ${p.requests} | ${f(r.requestsPerSecond, 1)} | ${f(r.inFlight, 1)} | ${f(r.clientWait.p50, 1)} | ${f(r.ttft.p50)} / ${f(r.ttft.p99)} | ${f(r.ttftFromIssue.p50)} / ${f(r.ttftFromIssue.p99)} | ` +
        `${f(r.itl.p50, 3)} / ${f(r.itl.p99, 3)} | ${f(r.e2e.p50, 1)} / ${f(r.e2e.p99, 1)} | ${f(r.e2eFromIssue.p50, 1)} / ${f(r.e2eFromIssue.p99, 1)} | ${r.errors} | ` +
        `${ROLES.map((role) => (cpu?.[role] === undefined ? '-' : f(cpu[role]))).join(' | ')} | ${f(cpu ? cpuTotal(p) : undefined)} | ${f(p.loadAverage, 1)} | ${status} |`,
    );
  }
  return rows;
}

function ratioTable(points: Point[]): string[] {
  const at = (s: SystemName, c: number) => points.find((p) => p.system === s && p.concurrency === c);
  const cs = [...new Set(points.map((p) => p.concurrency))];
  const rows = [
    '| concurrency | req/s | in flight, kvgate / Dynamo | TTFT p50 from issue | TTFT p50 as sent | ITL p50 ms, kvgate / Dynamo | E2E p50 from issue | E2E p99 from issue | CPU ms/req whole stack, kvgate / Dynamo | CPU ms/req frontend, kvgate / Dynamo |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of cs) {
    const k = at('kvgate', c);
    const d = at('dynamo', c);
    if (!k || !d) continue;
    if (!valid(k) || !valid(d)) {
      const why = [k, d].filter((p) => !valid(p)).map((p) => `${p.system} invalid`).join(', ');
      rows.push(`| ${c} | ${why} | | | | | | | | |`);
      continue;
    }
    const a = k.result;
    const b = d.result;
    rows.push(
      `| ${c} | **${ratio(a.requestsPerSecond, b.requestsPerSecond)}** | ${f(a.inFlight, 1)} / ${f(b.inFlight, 1)} | **${ratio(a.ttftFromIssue.p50, b.ttftFromIssue.p50)}** | ${ratio(a.ttft.p50, b.ttft.p50)} | ` +
        `${f(a.itl.p50, 3)} / ${f(b.itl.p50, 3)} | ${ratio(a.e2eFromIssue.p50, b.e2eFromIssue.p50)} | ${ratio(a.e2eFromIssue.p99, b.e2eFromIssue.p99)} | ` +
        `${f(cpuTotal(k))} / ${f(cpuTotal(d))} = **${ratio(cpuTotal(k), cpuTotal(d))}** | ${f(k.cpuMsPerRequest?.['frontend'])} / ${f(d.cpuMsPerRequest?.['frontend'])} = ${ratio(k.cpuMsPerRequest?.['frontend'] ?? NaN, d.cpuMsPerRequest?.['frontend'] ?? NaN)} |`,
    );
  }
  return rows;
}

function addedTtft(points: Point[]): string[] {
  const out: string[] = [];
  const floor = points.find((p) => p.system === 'engine' && p.concurrency === 1);
  for (const s of ['kvgate', 'dynamo'] as const) {
    const p = points.find((q) => q.system === s && q.concurrency === 1);
    if (!p || !floor) continue;
    if (!valid(p) || !valid(floor)) {
      out.push(`- ${s}: added TTFT over the engine alone at concurrency 1: not measured (invalid point)`);
      continue;
    }
    out.push(
      `- ${s}: TTFT p50 ${f(p.result.ttft.p50)} ms vs the engine alone ${f(floor.result.ttft.p50)} ms: **${signed(p.result.ttft.p50 - floor.result.ttft.p50)} ms** added at concurrency 1 ` +
        `(E2E p50 ${signed(p.result.e2e.p50 - floor.result.e2e.p50)} ms)`,
    );
  }
  return out;
}

// aiperf and kvgate bench side by side at every point that ran both.
function clientsTable(points: Point[]): string[] {
  const both = points.filter((p) => p.result && p.suite);
  if (both.length === 0) return [];
  return [
    '### aiperf and kvgate bench at the same points',
    '',
    '| system | concurrency | req/s, aiperf / kvgate bench | TTFT p50 ms, aiperf (from issue) / kvgate bench | E2E p50 ms, aiperf (from issue) / kvgate bench | kvgate bench failed |',
    '|---|---|---|---|---|---|',
    ...both.map((p) => {
      const r = p.result!;
      const s = p.suite!;
      return `| ${p.system} | ${p.concurrency} | ${f(r.requestsPerSecond, 1)} / ${f(s.requestsPerS, 1)} | ${f(r.ttft.p50)} (${f(r.ttftFromIssue.p50)}) / ${f(s.ttftP50)} | ${f(r.e2e.p50, 1)} (${f(r.e2eFromIssue.p50, 1)}) / ${f(s.e2eP50, 1)} | ${s.failed} |`;
    }),
    '',
  ];
}

export function formatReport(points: Point[], info: RunInfo): string {
  return [
    `Command: \`${info.command}\``,
    `Machine: ${info.machine}`,
    `Peers: ${info.peers}`,
    `Settings: ${info.settings}`,
    '',
    '### kvgate / Dynamo',
    '',
    ...ratioTable(points),
    '',
    '### Added latency over the engine alone',
    '',
    ...addedTtft(points),
    '',
    ...clientsTable(points),
    '### Every point',
    '',
    ...pointsTable(points),
    '',
  ].join('\n');
}
