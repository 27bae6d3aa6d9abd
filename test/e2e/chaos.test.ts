// Chaos, bounded: the `npm run chaos` runner against a real `kvgate serve` with 4 mocker
// workers while a random worker's engine is SIGKILLed every 1.5 s (its agent restarts it).
// With migrations every stream completes with exactly the requested tokens; without, the
// broken ones end with clean OpenAI errors. Every request ends within its deadline, and
// every active gauge is back to zero after the run.

import { describe, expect, it } from 'vitest';
import { runChaos, summaryTable } from '../../bench/chaos/chaos.js';

const base = { requests: 300, concurrency: 16, maxTokens: 64, killEveryMs: 1500, workers: 4, speedupRatio: 2, deadlineMs: 30_000 };
const idle = { kvgate_frontend_inflight_requests: 0, kvgate_router_worker_active_requests: 0, kvgate_router_worker_active_blocks: 0, kvgate_router_worker_prefill_tokens: 0 };

describe('chaos', () => {
  it('with --migration-limit 3, no request fails while engines die', { timeout: 180_000 }, async () => {
    const s = await runChaos({ ...base, migrationLimit: 3 });
    console.log(summaryTable(s));
    expect(s.kills).toBeGreaterThan(0);
    expect(s.failures).toEqual([]);
    expect(s.ok).toBe(300);
    expect(Object.values(s.migrations).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(s.gaugesAfter).toEqual(idle);
  });

  it('with --migration-limit 0, broken streams end with clean OpenAI errors and nothing hangs', { timeout: 180_000 }, async () => {
    const s = await runChaos({ ...base, migrationLimit: 0 });
    console.log(summaryTable(s));
    expect(s.kills).toBeGreaterThan(0);
    expect(s.requests).toBe(300);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.cleanErrors).toBe(s.failed);
    expect(s.migrations).toEqual({});
    expect(s.gaugesAfter).toEqual(idle);
  });
});
