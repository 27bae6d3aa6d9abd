// SGLang's own routers from PyPI in PD mode in front of a kvgate prefill mocker and a kvgate
// decode mocker: they inject the bootstrap triple and send both legs, and the mockers pair
// the legs by room through the prefill's bootstrap server, the way SGLang engines do. A request
// that is served end to end proves the mockers speak SGLang's PD protocol.
// - sglang-router 0.3.2, `--pd-disaggregation --prefill URL BOOTSTRAP_PORT --decode URL`, engines
//   with --dp-size 2 that pick their rank from the room (follow_bootstrap_room, SGLang's PD
//   default): decode finds the prefill rank as room % dp size. Unary and streaming /generate.
// - smg 1.13.0 with --dp-aware: one target per (engine, rank), so each leg carries its rank
//   (routed_dp_rank, or the older data_parallel_rank) and decode is told the prefill's rank.
//   sglang-router 0.3.2's --dp-aware does not work in PD mode: it sends the legs to the worker id
//   itself (http://host:port@rank, a URL with user info) and fails them, so smg is used here.
// The routers and mockers are separate processes; the mockers run in this process.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MockerHandle } from '../../src/mocker/index.js';
import { metric } from '../frontend/fixtures/stack.js';
import { closeAll, mocker, post, sseEvents } from '../mocker/helpers.js';
import { sglangRouterPython, smgBinary, startPeerRouter, type PeerRouter, SGLANG_ROUTER_VERSION, SMG_VERSION } from './sglang_router_peer.js';

let prefill: MockerHandle;
let decode: MockerHandle;
const routers: PeerRouter[] = [];

beforeAll(async () => {
  prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, dpSize: 2, enableMetrics: true });
  decode = await mocker({ disaggregationMode: 'decode', dpSize: 2, enableMetrics: true });
}, 30_000);

afterAll(async () => {
  await Promise.all(routers.splice(0).map((r) => r.stop()));
  await closeAll();
}, 30_000);

const pd = () => ['--pd-disaggregation', '--prefill', prefill.url, String(prefill.bootstrapPort), '--decode', decode.url, '--policy', 'round_robin'];
const body = (text: string, maxNewTokens: number, stream = false) => ({ text, stream, sampling_params: { max_new_tokens: maxNewTokens, ignore_eos: true, temperature: 0 } });

// Per dp rank, prompt tokens the prefill engine holds in its cache.
async function prefillCachedByRank(): Promise<number[]> {
  const text = await (await fetch(`${prefill.url}/metrics`)).text();
  return [0, 1].map((r) => metric(text, 'sglang:kv_evictable_tokens', { dp_rank: String(r) }));
}

describe(`sglang-router ${SGLANG_ROUTER_VERSION} in PD mode in front of kvgate mockers (--dp-size 2 each)`, () => {
  let router: PeerRouter;
  beforeAll(async () => {
    router = await startPeerRouter(sglangRouterPython(), ['-m', 'sglang_router.launch_router', ...pd()]);
    routers.push(router);
  }, 400_000);

  it('serves /generate unary and streaming with the same answer, decode\'s stream ending in [DONE]', { timeout: 60_000 }, async () => {
    const prompt = 'Disaggregated serving splits the prompt from the answer';
    const unary = await post(`${router.url}/generate`, body(prompt, 12));
    expect(unary.status).toBe(200);
    const u = unary.json();
    expect(u.meta_info).toMatchObject({ completion_tokens: 12, finish_reason: { type: 'length', length: 12 } });
    expect(u.output_ids).toHaveLength(12);

    const streamed = await post(`${router.url}/generate`, body(prompt, 12, true));
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get('content-type')).toContain('text/event-stream');
    const events = sseEvents(streamed.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as { text: string; output_ids: number[]; meta_info: { completion_tokens: number; prompt_tokens: number } }[];
    expect(chunks.length).toBeGreaterThan(1);
    const last = chunks.at(-1)!;
    // The mocker's tokens depend only on the prompt and the seed: both runs answer alike.
    expect([last.text, last.output_ids, last.meta_info.prompt_tokens]).toEqual([u.text, u.output_ids, u.meta_info.prompt_tokens]);
  });

  it('pairs many concurrent rooms across both prefill ranks', { timeout: 60_000 }, async () => {
    const before = await prefillCachedByRank();
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => post(`${router.url}/generate`, body(`request number ${i} with its own words ${'x'.repeat(i)}`, 4, i % 2 === 0))));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    for (const [i, a] of answers.entries()) {
      const meta = i % 2 === 0 ? (sseEvents(a.text).at(-2) as { meta_info: unknown }).meta_info : a.json().meta_info;
      expect(meta).toMatchObject({ completion_tokens: 4 });
    }
    // Rooms are random, so with 12 of them both prefill ranks took some (1 in 2^11 that one did not).
    const grew = (await prefillCachedByRank()).map((n, r) => n - before[r]!);
    expect(grew.every((n) => n > 0)).toBe(true);
  });
});

describe(`smg ${SMG_VERSION} PD with --dp-aware in front of kvgate mockers (--dp-size 2 each)`, () => {
  let router: PeerRouter;
  beforeAll(async () => {
    router = await startPeerRouter(smgBinary(), ['launch', ...pd(), '--dp-aware']);
    routers.push(router);
  }, 400_000);

  it('one target per rank: the legs go to the chosen ranks, unary and streaming', { timeout: 60_000 }, async () => {
    const workers = (await (await fetch(`${router.url}/workers`)).json()) as { workers: { url: string; worker_type: string }[] };
    expect(workers.workers.map((w) => `${w.worker_type} ${w.url}`).sort()).toEqual([`decode ${decode.url}@0`, `decode ${decode.url}@1`, `prefill ${prefill.url}@0`, `prefill ${prefill.url}@1`]);
    // One at a time, so round robin alternates the ranks on both sides; each request's prefill
    // rank is the one whose cache grew. Had the engines ignored the ranks and followed the random
    // rooms instead, 8 requests would alternate on both sides by chance once in 2^14.
    const prefillRanks: number[] = [];
    const decodeRanks: number[] = [];
    for (let i = 0; i < 8; i++) {
      const before = await prefillCachedByRank();
      const r = await post(`${router.url}/generate`, body(`rank-aware prompt ${i} ${'y'.repeat(3 * i)}`, 3, i % 2 === 1));
      expect(r.status).toBe(200);
      const meta = (i % 2 === 1 ? (sseEvents(r.text).at(-2) as { meta_info: unknown }).meta_info : r.json().meta_info) as { dp_rank: number; completion_tokens: number };
      expect(meta.completion_tokens).toBe(3);
      decodeRanks.push(meta.dp_rank);
      const grew = (await prefillCachedByRank()).map((n, rank) => n - before[rank]!);
      expect(grew.filter((n) => n > 0)).toHaveLength(1);
      prefillRanks.push(grew.findIndex((n) => n > 0));
    }
    const alternates = (xs: number[]) => xs.every((x, i) => i === 0 || x !== xs[i - 1]);
    expect([prefillRanks, decodeRanks].map(alternates)).toEqual([true, true]);
  });
});
