// The pure parts of bench:report: its flags, medians with their range over repeats, and the
// Mooncake sample its trace point replays.

import { parseArgs } from 'node:util';

// The peers bench:report can put beside kvgate's router modes (bench/suite/targets.ts starts them).
export const PEERS = ['sglang-router', 'smg', 'dynamo'] as const;
export type PeerName = (typeof PEERS)[number];
export const isPeer = (s: string): s is PeerName => (PEERS as readonly string[]).includes(s);

export interface ReportArgs {
  quick: boolean;
  repeats: number; // runs of each serving point; tables show the median and the min-max range
  peers: PeerName[]; // peers beside kvgate's router modes in the routing-quality points
  gateway: boolean;
  gatewayRun: string | undefined;
  out: string | undefined;
}

export function parseReportArgs(argv: string[]): ReportArgs {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      repeats: { type: 'string' },
      peers: { type: 'string', default: PEERS.join(',') },
      gateway: { type: 'boolean', default: false },
      'gateway-run': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const repeats = a.repeats === undefined ? (a.quick ? 1 : 3) : Number(a.repeats);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats wants a positive integer, got '${a.repeats}'`);
  const peers = a.peers.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of peers) if (!isPeer(p)) throw new Error(`--peers: unknown peer '${p}' (choose from ${PEERS.join(', ')}, or --peers '' for none)`);
  return { quick: a.quick, repeats, peers: peers as PeerName[], gateway: a.gateway, gatewayRun: a['gateway-run'], out: a.out };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

// Median (mean of the middle two for an even count) and range of the finite values; NaN
// when there are none.
export function spread(xs: number[]): Spread {
  const s = xs.filter(Number.isFinite).sort((p, q) => p - q);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export const median = (xs: number[]): number => spread(xs).median;

// "12.3 (11.0-14.1)"; just the median for one run; '-' for none.
export function formatSpread(s: Spread, digits = 1, suffix = ''): string {
  if (s.n === 0) return '-';
  const f = (v: number) => v.toFixed(digits);
  return s.n === 1 ? `${f(s.median)}${suffix}` : `${f(s.median)}${suffix} (${f(s.min)}-${f(s.max)})`;
}

export interface TraceLine {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

// Every `every`-th conversation of a Mooncake trace, all its turns in trace order. A
// conversation is the requests whose second block (the first after the block 0 every request
// shares) is the same: later turns extend the earlier turns' blocks. Requests longer than
// `maxInput` are left out. Sampling whole conversations keeps the trace's reuse; a contiguous
// slice of a few hundred requests holds mostly first turns (whose later turns come minutes on).
export function sampleConversations(lines: TraceLine[], every: number, maxInput: number): TraceLine[] {
  const fits = lines.filter((l) => l.input_length <= maxInput);
  const order = new Map<number, number>(); // conversation key -> its rank by first appearance
  for (const l of fits) {
    const key = l.hash_ids[1] ?? -1;
    if (!order.has(key)) order.set(key, order.size);
  }
  return fits.filter((l) => order.get(l.hash_ids[1] ?? -1)! % every === 0);
}

// The share of prompt tokens a single cache that never evicts would hold (the best any router
// over any fleet could get): each request's longest prefix of blocks seen before.
export function bestCachedShare(lines: TraceLine[], blockTokens = 512): number {
  const seen = new Set<number>();
  let hit = 0;
  let total = 0;
  for (const l of lines) {
    let n = 0;
    while (n < l.hash_ids.length && seen.has(l.hash_ids[n]!)) n++;
    hit += Math.min(n * blockTokens, l.input_length);
    total += l.input_length;
    for (const h of l.hash_ids) seen.add(h);
  }
  return total ? hit / total : 0;
}
