// KV events on real ZMQ sockets, decoded with @msgpack/msgpack: SGLang's frames, one BlockStored per
// page with parent chaining and SHA-256 block hashes, BlockRemoved on eviction, AllBlocksCleared on
// flush, replay through the ROUTER, both wire encodings, and one port per DP rank.

import { decode } from '@msgpack/msgpack';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, EventTap, generate, mocker, post, replay } from './helpers.js';

const taps: EventTap[] = [];
afterEach(async () => {
  await Promise.all(taps.splice(0).map((t) => t.close()));
  await closeAll();
});

const zmqConfig = (extra: Record<string, unknown> = {}) => ({ publisher: 'zmq' as const, endpoint: 'tcp://127.0.0.1:0', bind: true, topic: 'kv', ...extra });
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function tap(port: number): EventTap {
  const t = new EventTap(port);
  taps.push(t);
  return t;
}

describe('KV events (SGLang <= 0.5.19 array wire)', () => {
  it('publishes one BlockStored per page with SGLang’s chained SHA-256 int64 hashes', async () => {
    const m = await mocker({ pageSize: 16, kvEventsConfig: zmqConfig() });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    const before = Date.now() / 1000;
    // 33 tokens: two full pages are cached, the trailing token is not.
    await generate(m, { input_ids: range(1, 33), sampling_params: { max_new_tokens: 1, ignore_eos: true } });
    await t.waitFor(() => t.events().length >= 2);
    const batch = t.batches[0]!;
    expect(batch.topic).toBe('kv');
    expect(batch.dpRank).toBe(0);
    expect(batch.ts).toBeGreaterThanOrEqual(before - 1);
    expect(batch.ts).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    const stored = t.events();
    expect(stored).toHaveLength(2);
    // Golden values: hashlib.sha256 over uint32-LE tokens, chained on the previous raw digest,
    // first 8 bytes big-endian as a signed int64 (reference/sglang.md §2.5).
    expect(stored[0]).toEqual(['BlockStored', [8635429971592222890n], null, range(1, 16), 16, null, 'GPU']);
    expect(stored[1]).toEqual(['BlockStored', [1256577331724852459n], 8635429971592222890n, range(17, 16), 16, null, 'GPU']);
  });

  it('stores only new pages: a repeated prompt adds its generated pages, chained to the cached ones', async () => {
    const m = await mocker({ pageSize: 4, kvEventsConfig: zmqConfig() });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    const prompt = range(500, 10);
    const first = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 7, ignore_eos: true } });
    await t.waitFor(() => t.events().length >= 4);
    // prompt (10) + output (7) - 1 = 16 tokens with KV: four pages.
    const pages = t.events();
    expect(pages).toHaveLength(4);
    const seq = [...prompt, ...first.output_ids];
    pages.forEach((e, i) => {
      expect(e[0]).toBe('BlockStored');
      expect(e[3]).toEqual(seq.slice(i * 4, i * 4 + 4));
      expect(e[2]).toBe(i === 0 ? null : pages[i - 1][1][0]);
    });
    t.batches.length = 0;
    const second = await generate(m, { input_ids: [...seq.slice(0, 16), 1, 2, 3, 4, 5], sampling_params: { max_new_tokens: 1, ignore_eos: true } });
    expect(second.meta_info.cached_tokens).toBe(16);
    await t.waitFor(() => t.events().length >= 1);
    const fresh = t.events();
    expect(fresh).toHaveLength(1);
    expect(fresh[0][3]).toEqual([1, 2, 3, 4]);
    expect(fresh[0][2]).toBe(pages[3][1][0]);
  });

  it('evicts unpinned pages LRU, suffix first, with BlockRemoved when capacity runs out', async () => {
    // 32 pages of 4 tokens; each request below holds 6 pages while it runs.
    const m = await mocker({ pageSize: 4, maxTotalTokens: 128, kvEventsConfig: zmqConfig() });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    for (let i = 0; i < 12; i++) {
      const r = await generate(m, { input_ids: range(1000 * (i + 1), 20), sampling_params: { max_new_tokens: 4, ignore_eos: true } });
      expect(r.meta_info.finish_reason.type).toBe('length');
    }
    await new Promise((r) => setTimeout(r, 100));
    const events = [...t.warmup.flatMap((b) => b.events), ...t.events()];
    const stored = new Map<bigint, bigint | null>();
    const removed: bigint[] = [];
    for (const e of events) {
      if (e[0] === 'BlockStored') stored.set(e[1][0], e[2]);
      if (e[0] === 'BlockRemoved') {
        expect(e[2]).toBe('GPU');
        for (const h of e[1] as bigint[]) {
          expect(stored.has(h)).toBe(true);
          // Suffix first: no page still cached hangs off a removed page.
          for (const [child, parent] of stored) if (parent === h) expect(removed.includes(child) || (e[1] as bigint[]).includes(child)).toBe(true);
          removed.push(h);
        }
      }
    }
    expect(removed.length).toBeGreaterThan(0);
    // Live pages never exceed the capacity, and the oldest prompts went first.
    expect(stored.size - removed.length).toBeLessThanOrEqual(32);
    const firstPrompt = events.find((e) => e[0] === 'BlockStored' && e[3][0] === 1000)![1][0];
    expect(removed).toContain(firstPrompt);
    const lastPrompt = [...events].reverse().find((e) => e[0] === 'BlockStored' && e[3][0] === 12000)![1][0];
    expect(removed).not.toContain(lastPrompt);
    // An evicted prompt is no longer a cache hit; the newest one still is.
    expect((await generate(m, { input_ids: range(1000, 20), sampling_params: { max_new_tokens: 1 } })).meta_info.cached_tokens).toBe(0);
    expect((await generate(m, { input_ids: range(12000, 20), sampling_params: { max_new_tokens: 1 } })).meta_info.cached_tokens).toBe(16);
  });

  it('publishes AllBlocksCleared on /flush_cache', async () => {
    const m = await mocker({ pageSize: 2, kvEventsConfig: zmqConfig() });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    expect((await post(`${m.url}/flush_cache`, '')).status).toBe(200);
    await t.waitFor(() => t.events().length >= 1);
    expect(t.events()).toEqual([['AllBlocksCleared']]);
  });

  it('replays buffered batches from a start sequence, then the -1 terminator', async () => {
    const m = await mocker({ pageSize: 4, kvEventsConfig: zmqConfig({ replay_endpoint: 'tcp://127.0.0.1:0' }) });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    for (let i = 0; i < 3; i++) await generate(m, { input_ids: range(100 * (i + 1), 8), sampling_params: { max_new_tokens: 1 } });
    await t.waitFor(() => t.batches.length >= 3);
    const live = t.batches.slice(0, 3);
    const from = live[0]!.seq;
    // Sequence numbers are consecutive.
    expect(live.map((b) => b.seq)).toEqual([from, from + 1n, from + 2n]);
    const replies = await replay(m.kvReplayPorts[0]!, from);
    const terminator = replies.at(-1)!;
    expect(terminator).toHaveLength(3);
    expect(terminator[0]!.length).toBe(0);
    expect(terminator[1]!.readBigInt64BE(0)).toBe(-1n);
    expect(terminator[2]!.length).toBe(0);
    const got = replies.slice(0, -1);
    expect(got).toHaveLength(3);
    got.forEach((frames, i) => {
      expect(frames).toHaveLength(3);
      expect(frames[0]!.length).toBe(0);
      expect(frames[1]!.readBigUInt64BE(0)).toBe(from + BigInt(i));
      expect(decode(frames[2]!, { useBigInt64: true })).toEqual([live[i]!.ts, live[i]!.events, 0]);
    });
    // Beyond the newest batch: only the terminator.
    expect(await replay(m.kvReplayPorts[0]!, from + 100n)).toHaveLength(1);
  });

  it('keeps only the last buffer_steps batches for replay', async () => {
    const m = await mocker({ pageSize: 4, kvEventsConfig: zmqConfig({ replay_endpoint: 'tcp://127.0.0.1:0', buffer_steps: 2 }) });
    for (let i = 0; i < 5; i++) await generate(m, { input_ids: range(100 * (i + 1), 8), sampling_params: { max_new_tokens: 1 } });
    await new Promise((r) => setTimeout(r, 50));
    const replies = await replay(m.kvReplayPorts[0]!, 0n);
    expect(replies).toHaveLength(3);
    // History was lost: the first replayed seq is past the requested 0.
    expect(replies[0]![1]!.readBigUInt64BE(0)).toBe(3n);
    expect(replies[1]![1]!.readBigUInt64BE(0)).toBe(4n);
  });
});

describe('KV events: publisher placement and chunked prefill', () => {
  it('connects the PUB socket to a collector when the endpoint host is concrete', async () => {
    const { tap: t, port } = await EventTap.bound();
    taps.push(t);
    const m = await mocker({ pageSize: 4, kvEventsConfig: { publisher: 'zmq', endpoint: `tcp://127.0.0.1:${port}`, topic: 'kv' } });
    await t.live(m);
    await generate(m, { input_ids: range(40, 8), sampling_params: { max_new_tokens: 1 } });
    await t.waitFor(() => t.events().length >= 2);
    expect(t.events().map((e) => e[3])).toEqual([range(40, 4), range(44, 4)]);
    expect((await (await fetch(`${m.url}/server_info`)).json()).kv_events).toMatchObject({ endpoint_host: '127.0.0.1', endpoint_port_base: port });
  });

  it('caches a long prompt chunk by chunk (one batch per chunked-prefill step)', async () => {
    const m = await mocker({ pageSize: 4, chunkedPrefillSize: 16, kvEventsConfig: zmqConfig() });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    await generate(m, { input_ids: range(2000, 50), sampling_params: { max_new_tokens: 1, ignore_eos: true } });
    await t.waitFor(() => t.events().length >= 12);
    // Chunks of 16, 16, 16 and 2 tokens: 4 + 4 + 4 pages; the last 2 tokens never fill a page.
    expect(t.batches.map((b) => b.events.length)).toEqual([4, 4, 4]);
    expect(t.events().map((e) => e[3][0])).toEqual(range(0, 12).map((i) => 2000 + 4 * i));
  });
});

describe('KV events (SGLang >= 0.5.22 map wire)', () => {
  it('publishes tagged maps and topic-framed replay replies', async () => {
    const m = await mocker({ pageSize: 4, kvEventsWire: 'map', kvEventsConfig: zmqConfig({ replay_endpoint: 'tcp://127.0.0.1:0' }) });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    await generate(m, { input_ids: [100, 200, 300, 400, 5], sampling_params: { max_new_tokens: 1 } });
    await t.waitFor(() => t.events().length >= 1);
    expect(t.events()[0]).toEqual({ type: 'BlockStored', block_hashes: [-5843842687383801071n], parent_block_hash: null, token_ids: [100, 200, 300, 400], block_size: 4, lora_id: null, medium: 'GPU' });
    await post(`${m.url}/flush_cache`, '');
    await t.waitFor(() => t.batches.length >= 2);
    expect(t.batches[1]!.events).toEqual([{ type: 'AllBlocksCleared' }]);
    const replies = await replay(m.kvReplayPorts[0]!, t.batches[0]!.seq);
    expect(replies).toHaveLength(3);
    expect(replies[0]!.map((f) => f.length > 0)).toEqual([false, true, true, true]);
    expect(replies[0]![1]!.toString()).toBe('kv');
    expect(replies[0]![2]!.readBigUInt64BE(0)).toBe(t.batches[0]!.seq);
    expect(replies[2]!).toHaveLength(4);
    expect(replies[2]![2]!.readBigInt64BE(0)).toBe(-1n);
  });
});

describe('KV events per DP rank', () => {
  it('publishes each rank on base + rank with its dp_rank and its own cache', async () => {
    const m = await mocker({ pageSize: 4, dpSize: 2, kvEventsConfig: zmqConfig() });
    expect(m.kvEventPorts[1]).toBe(m.kvEventPorts[0]! + 1);
    const t0 = tap(m.kvEventPorts[0]!);
    const t1 = tap(m.kvEventPorts[1]!);
    await t0.live(m, 0);
    await t1.live(m, 1);
    const prompt = range(700, 9);
    const a = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 1 }, routed_dp_rank: 1 });
    expect(a.meta_info.dp_rank).toBe(1);
    await t1.waitFor(() => t1.events().length >= 2);
    expect(t1.batches.every((b) => b.dpRank === 1)).toBe(true);
    expect(t1.events().map((e) => e[3])).toEqual([range(700, 4), range(704, 4)]);
    // The other rank has its own cache: no hit there, a hit on rank 1.
    const b = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 1 }, data_parallel_rank: 0 });
    expect(b.meta_info.dp_rank).toBe(0);
    expect(b.meta_info.cached_tokens).toBe(0);
    const c = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 1 }, routed_dp_rank: 1 });
    expect(c.meta_info.cached_tokens).toBe(8);
    await t0.waitFor(() => t0.events().length >= 2);
    expect(t0.batches.every((x) => x.dpRank === 0)).toBe(true);
    // Each rank numbers its batches on its own.
    const load = await (await fetch(`${m.url}/get_load`)).json();
    expect(load.map((l: { dp_rank: number }) => l.dp_rank)).toEqual([0, 1]);
  });

  it('spreads requests without a rank over the ranks', async () => {
    const m = await mocker({ dpSize: 2, speedupRatio: 1 });
    const rs = await Promise.all(range(0, 6).map((i) => generate(m, { input_ids: [i + 1, 2, 3], sampling_params: { max_new_tokens: 4, ignore_eos: true } })));
    const ranks = new Set(rs.map((r) => r.meta_info.dp_rank));
    expect([...ranks].sort()).toEqual([0, 1]);
  });
});

describe('page size 1 (SGLang’s default)', () => {
  it('publishes one event per token, chained, on the empty topic', async () => {
    const m = await mocker({ pageSize: 1, kvEventsConfig: zmqConfig({ topic: '' }) });
    const t = tap(m.kvEventPorts[0]!);
    await t.live(m);
    await generate(m, { input_ids: [5, 6], sampling_params: { max_new_tokens: 1 } });
    await t.waitFor(() => t.events().length >= 2);
    expect(t.batches[0]!.topic).toBe('');
    const [a, b] = t.events();
    expect(a).toEqual(['BlockStored', [expect.any(BigInt)], null, [5], 1, null, 'GPU']);
    expect(b).toEqual(['BlockStored', [expect.any(BigInt)], a[1][0], [6], 1, null, 'GPU']);
    expect(t.events()).toHaveLength(2);
  });
});
