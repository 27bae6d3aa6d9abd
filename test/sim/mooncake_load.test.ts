// The Mooncake trace's cache ceiling (bench/sim/mooncake_load.ts), on the real trace file: the
// share of prompt tokens in blocks an earlier request already had, over the first requests
// and the whole trace.

import { describe, expect, it } from 'vitest';
import { readTrace, traceCeiling } from '../../bench/sim/mooncake_load.js';
import { bestCachedShare } from '../../bench/suite/summary.js';
import { MOONCAKE_PATH } from '../../src/bench/workloads.js';

describe('the Mooncake trace ceiling', () => {
  const lines = readTrace(MOONCAKE_PATH);

  it('takes the first `limit` requests and their time span', () => {
    const c = traceCeiling(lines, 50);
    expect(c.requests).toBe(50);
    expect(c.share).toBeCloseTo(bestCachedShare(lines.slice(0, 50)), 12);
    expect(c.spanSec).toBeCloseTo((lines[49]!.timestamp - lines[0]!.timestamp) / 1000, 9);
    // The first request's blocks are all new: one request caches nothing.
    expect(traceCeiling(lines, 1).share).toBe(0);
  });

  it('grows with more of the trace: about 21 % of the first 1,000 requests, 37 % of all', () => {
    const first = traceCeiling(lines, 1000);
    const all = traceCeiling(lines);
    expect(all.requests).toBe(lines.length);
    expect(first.share).toBeGreaterThan(0.2);
    expect(first.share).toBeLessThan(0.23);
    expect(all.share).toBeGreaterThan(0.36);
    expect(all.share).toBeLessThan(0.39);
  });
});
