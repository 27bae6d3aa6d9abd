// Data-parallel ranks end to end: a real `kvgate serve --workers 1 -- --dp-size 2` (one worker
// agent, one mocker engine with two independent ranks, each with its own cache, scheduler and
// KV-event port). The routing unit is (worker, rank). Checked from the outside:
// - each rank's KV events land on that rank's part of the index: the router's per-rank block
//   count equals what the engine's own per-rank cache gauge says;
// - the engine serves each request on the rank the router chose (data_parallel_rank): after
//   each request, the rank the router counted a decision for is the rank whose engine cache grew;
// - distinct prompts sent together spread over the ranks (each rank's active load is in the
//   cost), and a repeated prefix goes back to the rank holding it (its cached_tokens say so);
// - per-rank load is reported (router and engine gauges by dp_rank) and back to zero after.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric } from '../frontend/fixtures/stack.js';
import { listening, Processes, type Proc } from '../fixtures/processes.js';
import { MODEL, waitFor } from './stack.js';

const PAGE = 16;
const procs = new Processes();
let serve: Proc;
let url: string;
let engineUrl: string;
let client: OpenAI;

const text = async (u: string) => (await fetch(`${u}/metrics`)).text();
// A prompt of its own from the first token on, about 20 blocks long.
const prompt = (i: number) => `Topic ${i}: ${Array.from({ length: 300 }, (_, k) => `w${i}x${k}`).join(' ')}`;

interface Ranks {
  decisions: number[];
  indexBlocks: number[];
  engineCachedTokens: number[];
}

async function ranks(): Promise<Ranks> {
  const [front, engine] = await Promise.all([text(url), text(engineUrl)]);
  const per = (t: string, name: string) => [0, 1].map((r) => metric(t, name, { dp_rank: String(r) }));
  return {
    decisions: per(front, 'kvgate_router_decisions_total'),
    indexBlocks: per(front, 'kvgate_router_worker_cached_blocks'),
    engineCachedTokens: per(engine, 'sglang:kv_evictable_tokens'),
  };
}

const diff = (a: number[], b: number[]) => a.map((x, i) => x - b[i]!);

// Every rank's part of the index matches the engine rank's own cache, once the events are in.
async function indexMatchesEngine(): Promise<Ranks> {
  let last: Ranks | null = null;
  await waitFor(async () => {
    last = await ranks();
    return last.indexBlocks.every((b, r) => b * PAGE === last!.engineCachedTokens[r]);
  }, `the index per rank to match the engine's caches (last: ${JSON.stringify(last)})`);
  return last!;
}

beforeAll(async () => {
  serve = procs.kvgate(['serve', '--workers', '1', '--port', '0', '--', '--dp-size', '2']);
  url = await listening(serve, 60_000);
  const ready = /engine ready \(pid \d+, (http:\/\/[\d.:]+)\)/.exec(serve.stderr());
  if (!ready) throw new Error(`no engine URL in serve's log:\n${serve.stderr().slice(-3000)}`);
  engineUrl = ready[1]!;
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
}, 90_000);

afterAll(async () => {
  if (serve && serve.proc.exitCode === null) {
    serve.proc.kill('SIGTERM');
    await serve.exited;
  }
  await procs.reap();
});

describe('kvgate serve with one worker of two dp ranks', () => {
  it('routes per (worker, rank): events land on their rank, the engine serves the chosen rank, prompts spread and come back', { timeout: 90_000 }, async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; workers: unknown[] };
    expect(health).toMatchObject({ status: 'healthy' });
    expect(health.workers).toHaveLength(1);

    // Four distinct prompts at once: each one routed adds to its rank's active load, so they
    // split two and two.
    const before = await ranks();
    const first = await Promise.all([0, 1, 2, 3].map((i) => client.completions.create({ model: MODEL, prompt: prompt(i), max_tokens: 64 })));
    const spread = await indexMatchesEngine();
    expect(diff(spread.decisions, before.decisions)).toEqual([2, 2]);
    expect(spread.indexBlocks.every((b) => b >= 2 * 18)).toBe(true);
    expect(first.every((r) => r.usage!.prompt_tokens_details!.cached_tokens === 0)).toBe(true);

    // Each prompt again with a new ending, one at a time: it goes to the rank that holds it
    // (the decision and the engine's cache growth name the same rank) and finds its prefix.
    const home: number[] = [];
    for (const i of [0, 1, 2, 3]) {
      const b = await ranks();
      const r = await client.completions.create({ model: MODEL, prompt: `${prompt(i)} and then something else ${i}`, max_tokens: 8 });
      const a = await indexMatchesEngine();
      const chosen = diff(a.decisions, b.decisions);
      expect(chosen.reduce((x, y) => x + y, 0)).toBe(1);
      const rank = chosen.indexOf(1);
      const grew = diff(a.engineCachedTokens, b.engineCachedTokens);
      expect(grew[rank]).toBeGreaterThan(0);
      expect(grew[1 - rank]).toBe(0);
      const promptTokens = first[i]!.usage!.prompt_tokens;
      expect(r.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(Math.floor(promptTokens / PAGE) * PAGE - PAGE);
      home.push(rank);
    }
    expect(home.filter((r) => r === 0)).toHaveLength(2);

    // Per-rank load: reported by the engine through the agent and by the router's own
    // bookkeeping, and both idle again.
    // The engine's load report comes every interval: wait for one taken after the last request.
    const idle = (s: string) => ['0', '1'].every((r) => new RegExp(`kvgate_worker_running_requests\\{worker="[^"]+",dp_rank="${r}"\\} 0`).test(s));
    await waitFor(async () => idle(await text(url)), 'both ranks reported idle');
    const after = await text(url);
    for (const r of ['0', '1']) {
      expect(after).toMatch(new RegExp(`kvgate_worker_running_requests\\{worker="[^"]+",dp_rank="${r}"\\} 0`));
      expect(metric(after, 'kvgate_router_worker_active_requests', { dp_rank: r })).toBe(0);
      expect(metric(after, 'kvgate_router_worker_active_blocks', { dp_rank: r })).toBe(0);
    }
  });
});
