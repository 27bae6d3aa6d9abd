// Chaos, bounded: the `npm run chaos` runner against a real `kvgate serve` with 4 mocker
// workers while a random worker's engine fails every 1.5-2 s: SIGKILLed (its agent restarts
// it), SIGSTOPped for a while (it accepts connections and reads nothing), or slowed (stopped
// and running in turn). With migrations every stream completes with exactly the requested
// tokens; without, the broken ones end with clean OpenAI errors. Every request ends within its
// deadline, every active gauge is back to zero after the run, and the frontend's resident
// memory is back within a bound of its warmed-up baseline.

import { describe, expect, it } from 'vitest';
import { runChaos, summaryTable, type ChaosSummary } from '../../bench/chaos/chaos.js';

const base = { requests: 300, concurrency: 16, maxTokens: 64, killEveryMs: 1500, workers: 4, speedupRatio: 2, deadlineMs: 30_000 };
const idle = { kvgate_frontend_inflight_requests: 0, kvgate_router_worker_active_requests: 0, kvgate_router_worker_active_blocks: 0, kvgate_router_worker_prefill_tokens: 0 };
// MiB over the warmed-up baseline (a 1,000-request run grew by about 31): far above noise,
// far below what holding on to every request would take.
const RSS_GROWTH_MIB = 128;

function expectSettled(s: ChaosSummary): void {
  expect(s.gaugesAfter).toEqual(idle);
  expect(s.rssMiB).not.toBeNull();
  expect(s.rssMiB!.after - s.rssMiB!.before).toBeLessThan(RSS_GROWTH_MIB);
}

describe('chaos', () => {
  it('with --migration-limit 3, no request fails while engines die', { timeout: 180_000 }, async () => {
    const s = await runChaos({ ...base, migrationLimit: 3 });
    console.log(summaryTable(s));
    expect(s.kills).toBeGreaterThan(0);
    expect(s.failures).toEqual([]);
    expect(s.ok).toBe(300);
    expect(Object.values(s.migrations).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expectSettled(s);
  });

  it('with --migration-limit 0, broken streams end with clean OpenAI errors and nothing hangs', { timeout: 180_000 }, async () => {
    const s = await runChaos({ ...base, migrationLimit: 0 });
    console.log(summaryTable(s));
    expect(s.kills).toBeGreaterThan(0);
    expect(s.requests).toBe(300);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.cleanErrors).toBe(s.failed);
    expect(s.migrations).toEqual({});
    expectSettled(s);
  });

  for (const fault of ['stall', 'slow'] as const) {
    it(`engines that ${fault === 'stall' ? 'stop reading their sockets' : 'answer slowly'}: requests move on through the timeouts, and none fails`, { timeout: 180_000 }, async () => {
      const s = await runChaos({ ...base, requests: 200, killEveryMs: 2000, migrationLimit: 3, fault, stallMs: 3000, timeoutMs: 1000 });
      console.log(summaryTable(s));
      expect(s.kills).toBeGreaterThan(0);
      expect(s.failures).toEqual([]);
      expect(s.ok).toBe(200);
      // Requests stuck on an impaired engine were retried elsewhere or migrated for a timeout.
      expect(s.retries + (s.migrations['timeout'] ?? 0)).toBeGreaterThan(0);
      expectSettled(s);
    });
  }
});
