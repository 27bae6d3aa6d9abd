import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatReport, type Point } from '../../bench/gateway/report.js';
import type { AiperfResult } from '../../bench/gateway/aiperf.js';
import { bestCachedShare, formatSpread, parseReportArgs, sampleConversations, spread, type TraceLine } from '../../bench/suite/summary.js';
import { MOONCAKE_PATH } from '../../src/bench/workloads.js';

describe('bench:report flags', () => {
  it('runs 3 repeats by default, 1 with --quick unless --repeats says otherwise, and every peer', () => {
    expect(parseReportArgs([])).toMatchObject({ quick: false, repeats: 3, peers: ['sglang-router', 'smg', 'dynamo'], gateway: false });
    expect(parseReportArgs(['--quick']).repeats).toBe(1);
    expect(parseReportArgs(['--quick', '--repeats', '5']).repeats).toBe(5);
    expect(parseReportArgs(['--peers', 'smg']).peers).toEqual(['smg']);
    expect(parseReportArgs(['--peers', '']).peers).toEqual([]);
    expect(parseReportArgs(['--gateway-run', '/x', '--out', '/y'])).toMatchObject({ gatewayRun: '/x', out: '/y' });
  });

  it('refuses a bad repeat count, an unknown peer and an unknown flag', () => {
    for (const r of ['0', '-1', '1.5', 'three']) expect(() => parseReportArgs([`--repeats=${r}`])).toThrow(/--repeats wants a positive integer/);
    expect(() => parseReportArgs(['--peers', 'smg,nginx'])).toThrow(/unknown peer 'nginx'/);
    expect(() => parseReportArgs(['--repeat', '3'])).toThrow();
  });
});

describe('medians over repeats', () => {
  it('takes the middle value (the mean of the middle two for an even count) and the range of the finite values', () => {
    expect(spread([30, 10, 20])).toEqual({ median: 20, min: 10, max: 30, n: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([5, NaN])).toEqual({ median: 5, min: 5, max: 5, n: 1 });
    expect(spread([]).n).toBe(0);
  });

  it('prints the median with its range, a single run alone, and no run as a dash', () => {
    expect(formatSpread(spread([98.14, 110.2, 101.06]))).toBe('101.1 (98.1-110.2)');
    expect(formatSpread(spread([80.94]), 1, '%')).toBe('80.9%');
    expect(formatSpread(spread([1, 2]), 2, '%')).toBe('1.50% (1.00-2.00)');
    expect(formatSpread(spread([NaN]))).toBe('-');
  });
});

describe('the Mooncake sample', () => {
  const line = (hash_ids: number[], input_length = 512 * hash_ids.length): TraceLine => ({ timestamp: 0, input_length, output_length: 8, hash_ids });

  it('keeps whole conversations (the same second block), every n-th by first appearance, and drops long prompts', () => {
    const lines = [line([0, 1]), line([0, 2]), line([0, 1, 3]), line([0, 4]), line([0, 2, 5]), line([0, 1, 3, 6]), line([0, 7], 99_999)];
    // Conversations by first appearance: 1 (rank 0), 2 (rank 1), 4 (rank 2), 7 (dropped: too long).
    expect(sampleConversations(lines, 2, 16_384).map((l) => l.hash_ids)).toEqual([[0, 1], [0, 1, 3], [0, 4], [0, 1, 3, 6]]);
    expect(sampleConversations(lines, 1, 16_384)).toHaveLength(6);
  });

  it('counts the prefix blocks seen before as the best cached share', () => {
    // 2 blocks cold, then 2 of 3 cached, then 1 of 2 (block 0 only: block 9 is new).
    expect(bestCachedShare([line([0, 1]), line([0, 1, 3]), line([0, 9])])).toBeCloseTo((0 + 1024 + 512) / (1024 + 1536 + 1024));
    // A partial last block counts only the prompt's own tokens.
    expect(bestCachedShare([line([0], 100), line([0], 100)])).toBeCloseTo(0.5);
  });

  it('gives the shared trace more reuse than its first requests (why the report samples conversations)', () => {
    const all = readFileSync(MOONCAKE_PATH, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceLine);
    const sample = sampleConversations(all, 60, 16_384);
    expect(sample.length).toBeGreaterThan(100);
    expect(bestCachedShare(sample)).toBeGreaterThan(2 * bestCachedShare(all.slice(0, 150)));
  });
});

describe('bench:gateway report: the two clients side by side', () => {
  const stat = (p50: number) => ({ p50, p99: 2 * p50 });
  const aiperf = (rps: number): AiperfResult => ({
    requestsPerSecond: rps, ttft: stat(10), itl: stat(1), e2e: stat(70), inFlight: 16, clientWait: stat(0), ttftFromIssue: stat(11), e2eFromIssue: stat(71),
    completed: 100, errors: 0, errorSummary: [], osl: { min: 64, max: 64 }, isl: 512, startMs: 0, endMs: 1,
  });
  const info = { command: 'c', machine: 'm', peers: 'p', settings: 's' };

  it('has a row per point that ran both, with both requests/s, TTFT and E2E', () => {
    const points: Point[] = [
      { system: 'kvgate', concurrency: 16, requests: 100, result: aiperf(98.8), suite: { requestsPerS: 97.2, ttftP50: 12.5, e2eP50: 75.25, failed: 0 }, problems: [] },
      { system: 'dynamo', concurrency: 16, requests: 100, result: aiperf(90.1), problems: [] },
    ];
    const md = formatReport(points, info);
    expect(md).toContain('### aiperf and kvgate bench at the same points');
    expect(md).toContain('| kvgate | 16 | 98.8 / 97.2 | 10.00 (11.00) / 12.50 | 70.0 (71.0) / 75.3 | 0 |');
    expect(md).not.toMatch(/\| dynamo \| 16 \| 90\.1 \//);
  });

  it('has no such table when kvgate bench did not run', () => {
    expect(formatReport([{ system: 'kvgate', concurrency: 1, requests: 10, result: aiperf(18), problems: [] }], info)).not.toContain('aiperf and kvgate bench');
  });
});
