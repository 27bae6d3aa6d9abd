// What a user runs: `kvgate serve` with its defaults (what `npm start` runs, on a free port:
// two mocker workers, KV routing) and the launch scripts, as processes; the official openai
// client against them; SIGTERM; and no worker or engine process left behind.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/worker/ports.js';
import { KVGATE, listening, Processes } from '../fixtures/processes.js';
import { alive, metricByWorker, MODEL, waitFor, workerEnginePids } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const procs = new Processes();
afterEach(() => procs.reap());

// Every process below `pid` (children, grandchildren, ...), from /proc.
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      parent.set(Number(d), Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

async function chat(url: string): Promise<OpenAI.Chat.Completions.ChatCompletion> {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
  const messages = [
    { role: 'system' as const, content: 'You are a terse assistant. '.repeat(20) },
    { role: 'user' as const, content: 'What does a KV-aware router do?' },
  ];
  const first = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16 });
  expect(first.choices[0]!.message.content!.length).toBeGreaterThan(0);
  expect(first.usage!.completion_tokens).toBeGreaterThan(0);
  // The engine's KV events (sent when its prefill ends) can reach the router after the answer
  // on a loaded machine; the prompt counts as cached once they do.
  const cached = async () => Math.max(0, ...(await metricByWorker(url, 'kvgate_router_worker_cached_blocks')).values());
  await waitFor(async () => (await cached()) > 0, "the first prompt's blocks in the router's index", 10_000);
  return client.chat.completions.create({ model: MODEL, messages, max_tokens: 16 });
}

describe('kvgate serve, defaults', () => {
  it('spawns two mocker workers, serves with KV routing, and stops them all on SIGTERM', { timeout: 90_000 }, async () => {
    const serve = procs.kvgate(['serve', '--port', '0']);
    const url = await listening(serve);
    const banner = serve.stdout();
    expect(banner).toContain(`model:   ${MODEL}`);
    expect(banner).toMatch(/workers: 2 x mocker \(pids \d+, \d+\), router kv/);
    expect(banner).toContain(`curl ${url}/v1/chat/completions`);
    const agents = [.../pids (\d+), (\d+)\)/.exec(banner)!.slice(1)].map(Number);
    const engines = workerEnginePids(serve.stderr());
    expect(engines).toHaveLength(2);
    procs.stray(...agents, ...engines);
    expect([...agents, ...engines].every(alive)).toBe(true);

    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; models: Record<string, number> };
    expect(health).toMatchObject({ status: 'healthy', models: { [MODEL]: 2 } });
    // The same prompt again goes where its prefix is cached.
    const again = await chat(url);
    expect(again.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(again.usage!.prompt_tokens - 16);

    serve.proc.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect([...agents, ...engines].filter(alive)).toEqual([]);
  });

  it('refuses what it cannot run, with the reason', async () => {
    const sglang = procs.kvgate(['serve', '--port', '0', '--engine', 'sglang']);
    expect(await sglang.exited).toBe(1);
    expect(sglang.stderr()).toMatch(/--engine sglang needs a model: kvgate serve --engine sglang -- --model-path/);
    const badUrl = procs.kvgate(['serve', '--worker-urls', 'http://127.0.0.1:1']);
    expect(await badUrl.exited).toBe(1);
    expect(badUrl.stderr()).toMatch(/--worker-urls: 'http:\/\/127.0.0.1:1' is not a ws:\/\/host:port URL/);
    const badMode = procs.kvgate(['serve', '--router-mode', 'fastest']);
    expect(await badMode.exited).toBe(1);
    expect(badMode.stderr()).toMatch(/--router-mode must be one of kv, round-robin, random, power-of-two, least-loaded/);
    const stray = procs.kvgate(['serve', '--worker-urls', 'ws://127.0.0.1:1', '--', '--page-size', '16']);
    expect(await stray.exited).toBe(1);
    expect(stray.stderr()).toMatch(/engine arguments after -- are for the workers serve spawns/);
  });
});

// launch/disagg_dp_attn.sh: each engine runs tp 2 x dp 2 with DP attention, and each of its ranks
// is a routing unit: the repeated chat found its prefix on the prefill rank that holds it, and
// distinct prompts sent together spread over both prefill ranks.
async function dpAttention(url: string, commands: string, repeated: OpenAI.Chat.Completions.ChatCompletion): Promise<void> {
  expect(commands).toMatch(/^\+ .* --role prefill .* -- .*--tp 2 --dp-size 2 --enable-dp-attention/m);
  expect(commands).toMatch(/^\+ .* --role decode .* -- .*--tp 2 --dp-size 2 --enable-dp-attention/m);
  expect(repeated.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
  await Promise.all([1, 2, 3, 4].map((i) => client.completions.create({ model: MODEL, prompt: `Prompt ${i}: ${'words of its own '.repeat(30)}`, max_tokens: 32 })));
  const text = await (await fetch(`${url}/metrics`)).text();
  const prefill = [...text.matchAll(/^kvgate_router_worker_cached_blocks\{[^}]*worker="([^"]+)",dp_rank="(\d)"\} (\d+)$/gm)].filter((m) => Number(m[3]) > 0);
  // Only the prefill worker caches (a decode engine keeps no prefix cache), on both its ranks.
  expect(new Set(prefill.map((m) => m[1]))).toHaveProperty('size', 1);
  expect(prefill.map((m) => m[2]).sort()).toEqual(['0', '1']);
}

describe('launch scripts', () => {
  for (const [script, workers] of [['agg.sh', 1], ['agg_router.sh', 2], ['disagg.sh', 2], ['disagg_dp_attn.sh', 2]] as const) {
    const disagg = script.startsWith('disagg');
    it(`launch/${script} serves with ${workers} worker(s) and stops everything it started`, { timeout: 90_000 }, async () => {
      const httpPort = await freePort();
      const ports = [await freePort(), await freePort()];
      const env = { KVGATE: KVGATE.join(' '), HTTP_PORT: String(httpPort), WORKER_PORT: String(ports[0]), WORKER_PORTS: ports.join(' ') };
      const sh = procs.spawn('bash', [`launch/${script}`], { cwd: root, env });
      const url = await listening(sh);
      expect(sh.stderr()).toMatch(/^\+ .* worker --engine mocker (--role \w+ )?--port \d+ -- --model-path Qwen\/Qwen3-0.6B/m);
      expect(sh.stderr()).toMatch(/^\+ .* serve --port \d+ .*--worker-urls ws:\/\/127.0.0.1:\d+/m);
      await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { models: Record<string, number> }).models[MODEL] === workers, `${workers} worker(s) up`, 30_000);
      if (disagg) {
        expect(sh.stderr()).toMatch(/^\+ .* worker --engine mocker --role prefill --port/m);
        expect(sh.stderr()).toMatch(/^\+ .* worker --engine mocker --role decode --port/m);
        const health = (await (await fetch(`${url}/health`)).json()) as { pools: Record<string, unknown> };
        expect(health.pools[MODEL]).toEqual({ mode: 'disaggregated', agg: 0, prefill: 1, decode: 1 });
      }
      const second = await chat(url);
      if (disagg) expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^kvgate_router_pd_decisions_total\{[^}]*decision="disaggregated"\} 2$/m);
      if (script === 'disagg_dp_attn.sh') await dpAttention(url, sh.stderr(), second);
      const tree = descendants(sh.proc.pid!);
      procs.stray(...tree);
      expect(tree.length).toBeGreaterThanOrEqual(2 * workers + 1);

      sh.proc.kill('SIGTERM');
      await sh.exited;
      await waitFor(() => tree.every((p) => !alive(p)), 'every process the script started to stop', 30_000);
    });
  }
});
