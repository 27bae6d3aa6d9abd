// Migration end to end, with real worker processes: the engine serving a stream is killed
// mid-generation. With migrations allowed the stream continues on another worker, the client
// sees exactly the requested tokens once, and the migration is counted; without, the stream
// ends with a clean OpenAI error. Either way no request stays counted anywhere.

import { afterEach, describe, expect, it } from 'vitest';
import { ACTIVE_GAUGES, metricSums, migrationsByCause, mockerTokens, streamOnce } from '../../bench/chaos/load.js';
import type { KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import { MODEL, serve, startCluster, waitFor, type Cluster, type Serving } from './stack.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function system(migrationLimit: number, options: KvWorkerSetOptions = {}): Promise<{ cluster: Cluster; stack: Serving }> {
  // Slow decoding, so that a stream is still running when its engine is killed.
  const cluster = await startCluster(2, ['--speedup-ratio', '1']);
  cleanups.push(() => cluster.stop());
  const stack = await serve(cluster.workers.map((w) => w.url), { migrationLimit, ...options });
  cleanups.push(() => stack.close());
  return { cluster, stack };
}

// The worker's current engine (the agent restarts a dead one under a new pid).
export function currentEnginePid(cluster: Cluster, index: number): number {
  for (let i = cluster.lines.length - 1; i >= 0; i--) {
    const r = JSON.parse(cluster.lines[i]!) as { worker?: number; msg: string };
    const m = r.worker === index ? /^engine ready \(pid (\d+),/.exec(r.msg) : null;
    if (m) return Number(m[1]);
  }
  throw new Error(`no engine pid in worker ${index}'s log`);
}

// Signals the engine of the worker that holds the one active request, once it streams.
async function killServingEngine(cluster: Cluster, stack: Serving, sig: NodeJS.Signals = 'SIGKILL'): Promise<{ worker: string; pid: number }> {
  await waitFor(() => stack.set.unitRows().some((u) => u.activeRequests > 0 && u.prefillTokens === 0), 'the request to stream');
  await new Promise((r) => setTimeout(r, 300));
  const serving = stack.set.unitRows().find((u) => u.activeRequests > 0)!.worker;
  const w = cluster.workers.find((x) => x.url === serving)!;
  const pid = currentEnginePid(cluster, w.index);
  process.kill(-pid, sig);
  return { worker: serving, pid };
}

async function expectIdle(stack: Serving): Promise<void> {
  await waitFor(async () => Object.values(await metricSums(stack.url, ACTIVE_GAUGES)).every((v) => v === 0), 'every active gauge back to 0', 10_000).catch(() => undefined);
  expect(await metricSums(stack.url, ACTIVE_GAUGES)).toEqual(Object.fromEntries(ACTIVE_GAUGES.map((g) => [g, 0])));
  expect(stack.frontend.inflight()).toBe(0);
}

const prompt = 'Tell me about caches and routers. '.repeat(20);

describe('migration', () => {
  it('a stream whose engine dies mid-generation continues on the other worker: every token once, usage once', { timeout: 90_000 }, async () => {
    const { cluster, stack } = await system(3);
    const probe = await streamOnce({ url: stack.url, model: MODEL, prompt, maxTokens: 1, deadlineMs: 20_000 });
    expect(probe.ok).toBe(true);
    const running = streamOnce({ url: stack.url, model: MODEL, prompt, maxTokens: 400, deadlineMs: 60_000, countTokens: mockerTokens });
    await killServingEngine(cluster, stack);
    const r = await running;
    expect(r).toMatchObject({ ok: true, completionTokens: 400 });
    expect(await migrationsByCause(stack.url)).toEqual({ disconnected: 1 });
    await expectIdle(stack);
  });

  it('a stream whose engine freezes mid-generation migrates after the idle timeout; the worker is set aside, then readmitted', { timeout: 90_000 }, async () => {
    const { cluster, stack } = await system(3, { streamIdleTimeoutMs: 3000, firstTokenTimeoutMs: 10_000, penaltyMs: 500 });
    const running = streamOnce({ url: stack.url, model: MODEL, prompt, maxTokens: 400, deadlineMs: 60_000, countTokens: mockerTokens });
    const frozen = await killServingEngine(cluster, stack, 'SIGSTOP');
    try {
      expect(await running).toMatchObject({ ok: true, completionTokens: 400 });
      // On a starved machine the other worker's leg may pause too: only timeouts, at least one.
      const moved = await migrationsByCause(stack.url);
      expect(Object.keys(moved)).toEqual(['timeout']);
      expect(moved.timeout).toBeGreaterThanOrEqual(1);
      const w = stack.set.workers().find((x) => x.name === frozen.worker)!;
      expect(w.healthy).toBe(false);
      expect(w.reason).toMatch(/sent nothing for 3 s mid-stream|failed its (generation )?health check|unreachable/);
    } finally {
      process.kill(-frozen.pid, 'SIGCONT');
    }
    await waitFor(() => stack.set.readyCount(MODEL) === 2, 'the thawed worker readmitted', 30_000);
    await expectIdle(stack);
  });

  it('a stream with echo and logprobs keeps its tokens\' logprobs across the migration; the prompt\'s come once', { timeout: 90_000 }, async () => {
    const { cluster, stack } = await system(3);
    const res = fetch(`${stack.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt, max_tokens: 300, ignore_eos: true, echo: true, logprobs: 1, stream: true, stream_options: { include_usage: true } }),
      signal: AbortSignal.timeout(60_000),
    });
    await killServingEngine(cluster, stack);
    const events = (await (await res).text()).split('\n\n').filter((e) => e.startsWith('data: {'));
    const chunks = events.map((e) => JSON.parse(e.slice(6)) as { choices: { text: string; logprobs: { tokens: string[]; token_logprobs: (number | null)[] } | null }[]; usage?: { prompt_tokens: number; completion_tokens: number } | null });
    const usage = chunks.at(-1)!.usage!;
    expect(usage.completion_tokens).toBe(300);
    const lps = chunks.flatMap((c) => c.choices[0]?.logprobs?.token_logprobs ?? []);
    expect(lps).toHaveLength(usage.prompt_tokens + 300);
    // One null: the prompt's first token, sent once (the resumed leg did not ask for the prompt's).
    expect(lps.filter((v) => v === null)).toHaveLength(1);
    for (const v of lps.slice(1)) expect(Number.isFinite(v) && v! <= 0).toBe(true);
    expect(await migrationsByCause(stack.url)).toEqual({ disconnected: 1 });
    await expectIdle(stack);
  });

  it('without migrations left, the broken stream ends with an OpenAI error and nothing stays counted', { timeout: 90_000 }, async () => {
    const { cluster, stack } = await system(0);
    const running = streamOnce({ url: stack.url, model: MODEL, prompt, maxTokens: 400, deadlineMs: 60_000, countTokens: mockerTokens });
    await killServingEngine(cluster, stack);
    const r = await running;
    expect(r).toMatchObject({ ok: false, cleanError: true });
    expect(r.error).toMatch(/^error in stream: /);
    expect(await migrationsByCause(stack.url)).toEqual({});
    await expectIdle(stack);
  });
});
