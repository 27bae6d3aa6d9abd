// SGLang's two KV-event wires through the router: array events (SGLang <= 0.5.19) and tagged-map
// events (0.5.20 on; msgspec `tag=True`, `omit_defaults`, the batch itself stays an array).
//  - The same random event history applied with KvRouter.applyEvents in either form leaves the
//    same index (matches, counts, stats).
//  - A mocker started with kvEventsWire 'map' publishes, over real ZMQ (live PUB and the
//    topic-framed replay of 0.5.22+), batches that the router applies and that index exactly
//    the pages the engine cached.
// KVGATE_TEST_SEED=<n> replays a run.

import { createHash } from 'node:crypto';
import { decode } from '@msgpack/msgpack';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { rng, SEED } from './helpers.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { addon, type KvRouter } from '../../src/native/addon.js';
import { EngineKvSubscriber } from '../../src/transport/kv_subscriber.js';

const packr = new Packr({ useRecords: false, int64AsType: 'bigint' });
const BS = 4;


/** SGLang's page hash chain (reference/sglang.md §2.5) as signed int64. */
function pageHashes(tokens: number[]): bigint[] {
  const out: bigint[] = [];
  let prev = Buffer.alloc(0);
  for (let p = 0; p * BS < tokens.length; p++) {
    const page = Uint32Array.from(tokens.slice(p * BS, (p + 1) * BS));
    prev = createHash('sha256').update(prev).update(Buffer.from(page.buffer)).digest();
    out.push(prev.readBigInt64BE(0));
  }
  return out;
}

// One event, written by SGLang's field order; toArray/toMap give its two wire forms.
type Ev =
  | { type: 'BlockStored'; block_hashes: bigint[]; parent_block_hash: bigint | null; token_ids: number[]; block_size: number; medium: string | null }
  | { type: 'BlockRemoved'; block_hashes: bigint[]; medium: string | null }
  | { type: 'AllBlocksCleared' };

function toArray(e: Ev): unknown[] {
  switch (e.type) {
    case 'BlockStored':
      return ['BlockStored', e.block_hashes, e.parent_block_hash, e.token_ids, e.block_size, null, e.medium];
    case 'BlockRemoved':
      return ['BlockRemoved', e.block_hashes, e.medium];
    case 'AllBlocksCleared':
      return ['AllBlocksCleared'];
  }
}

// As msgspec writes it: tag first, declaration order, `medium` omitted when None, lora_id
// (no default) always written; SGLang 0.5.23's session_id/lora_name when set.
function toMap(e: Ev, next: () => number): Record<string, unknown> {
  const m: Record<string, unknown> = { type: e.type };
  if (e.type === 'BlockStored') {
    Object.assign(m, { block_hashes: e.block_hashes, parent_block_hash: e.parent_block_hash, token_ids: e.token_ids, block_size: e.block_size, lora_id: null });
  }
  if (e.type === 'BlockRemoved') m.block_hashes = e.block_hashes;
  if (e.type !== 'AllBlocksCleared' && e.medium !== null) m.medium = e.medium;
  if (e.type === 'BlockStored' && next() < 0.3) m.session_id = 'sess-1';
  return m;
}

const PROMPTS = 8;

/** A random engine history for one worker's batch: stores of prompt prefixes (one event per
 *  page, or coalesced chains as SGLang 0.5.23 sends them, a trailing partial page, host-tier
 *  copies), evictions of stored pages, and the odd clear. Prompts share prefixes. */
function randomBatch(next: () => number, prompts: number[][], held: Set<bigint>): Ev[] {
  const events: Ev[] = [];
  for (let n = 1 + Math.floor(next() * 4); n > 0; n--) {
    const r = next();
    if (r < 0.6) {
      const tokens = prompts[Math.floor(next() * PROMPTS)]!;
      const hashes = pageHashes(tokens);
      const pages = 1 + Math.floor(next() * hashes.length);
      const medium = next() < 0.1 ? 'CPU_PINNED' : next() < 0.5 ? 'GPU' : null;
      const coalesce = next() < 0.5;
      let p = 0;
      while (p < pages) {
        const full = (p + 1) * BS <= tokens.length;
        const run = coalesce && full ? Math.max(1, Math.min(pages - p, Math.floor(tokens.length / BS) - p)) : 1;
        const pageTokens = tokens.slice(p * BS, (p + run) * BS);
        events.push({ type: 'BlockStored', block_hashes: hashes.slice(p, p + run), parent_block_hash: p === 0 ? null : hashes[p - 1]!,
          token_ids: pageTokens, block_size: full ? BS : pageTokens.length, medium });
        if (medium !== 'CPU_PINNED') for (const h of hashes.slice(p, p + run)) held.add(h);
        p += run;
      }
    } else if (r < 0.95) {
      const pool = [...held];
      if (pool.length === 0) continue;
      const hashes = Array.from({ length: 1 + Math.floor(next() * 3) }, () => pool[Math.floor(next() * pool.length)]!);
      for (const h of hashes) held.delete(h);
      events.push({ type: 'BlockRemoved', block_hashes: hashes, medium: next() < 0.5 ? 'GPU' : null });
    } else {
      held.clear();
      events.push({ type: 'AllBlocksCleared' });
    }
  }
  return events;
}

function matches(router: KvRouter, query: Uint32Array): Record<string, number> {
  const w = new Uint32Array(64);
  const r = new Uint32Array(64);
  const d = new Uint32Array(64);
  const n = router.findMatches(query, w, r, d);
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${w[i]}:${r[i]}`, d[i]]));
}

describe(`KvRouter.applyEvents: tagged-map and array batches (KVGATE_TEST_SEED=${SEED})`, () => {
  it('leaves the same index for the same history in either form', () => {
    const next = rng(SEED);
    // Prompts with shared prefixes: 4 bases, each extended twice; lengths not page-aligned.
    const bases = Array.from({ length: 4 }, (_, b) => Array.from({ length: 4 * BS + b }, (_, i) => 1000 * b + i));
    const prompts = Array.from({ length: PROMPTS }, (_, i) => [...bases[i % 4]!, ...Array.from({ length: 2 + Math.floor(next() * 20) }, () => Math.floor(next() * 150_000))]);
    const queries = prompts.map((p) => Uint32Array.from(p));
    const viaArray = new addon.KvRouter({ blockSize: BS, seed: 1 });
    const viaMap = new addon.KvRouter({ blockSize: BS, seed: 1 });
    const held = new Map<string, Set<bigint>>();
    const outA = new Uint32Array(4);
    const outM = new Uint32Array(4);
    let stored = 0;
    for (let step = 0; step < 400; step++) {
      const worker = Math.floor(next() * 4);
      const rank = Math.floor(next() * 2);
      const key = `${worker}:${rank}`;
      if (!held.has(key)) held.set(key, new Set());
      const events = randomBatch(next, prompts, held.get(key)!);
      stored += events.filter((e) => e.type === 'BlockStored').length;
      const ts = 1.7e9 + step;
      // The rank rides in the batch (attn_dp_rank) or, nil, comes from the caller.
      const dp = next() < 0.5 ? rank : null;
      const arrayBytes = packr.pack([ts, events.map(toArray), dp]);
      const mapBytes = packr.pack([ts, events.map((e) => toMap(e, next)), dp]);
      const msg = `step ${step} (KVGATE_TEST_SEED=${SEED})`;
      expect(addon.parseKvEventBatch(mapBytes), msg).toEqual(addon.parseKvEventBatch(arrayBytes));
      const errA = viaArray.applyEvents(worker, dp === null ? rank : 0, arrayBytes, outA);
      const errM = viaMap.applyEvents(worker, dp === null ? rank : 0, mapBytes, outM);
      expect([errM, ...outM], msg).toEqual([errA, ...outA]);
      for (const q of queries) expect(matches(viaMap, q), msg).toEqual(matches(viaArray, q));
      expect(viaMap.stats(), msg).toEqual(viaArray.stats());
    }
    // The history did build an index worth comparing.
    expect(stored).toBeGreaterThan(200);
    expect(viaArray.stats().pairs).toBeGreaterThan(0);
    viaArray.close();
    viaMap.close();
  });
});

describe('mocker --kv-events-wire map into the router', () => {
  let mocker: MockerHandle | null = null;
  let sub: EngineKvSubscriber | null = null;
  afterEach(async () => {
    sub?.close();
    sub = null;
    await mocker?.close(0);
    mocker = null;
  });

  async function generate(m: MockerHandle, inputIds: number[]): Promise<{ output_ids: number[] }> {
    const res = await fetch(`${m.url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_ids: inputIds, sampling_params: { max_new_tokens: 3, ignore_eos: true } }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { output_ids: number[] };
  }

  async function until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('publishes batches the native reader applies, indexing exactly the cached pages', async () => {
    mocker = await startMocker({
      port: 0, speedupRatio: 50, pageSize: BS, kvEventsWire: 'map',
      kvEventsConfig: { publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', bind: true, topic: 'kv', replay_endpoint: 'tcp://127.0.0.1:0' },
    });
    await mocker.ready;
    const router = new addon.KvRouter({ blockSize: BS, seed: 1 });
    router.addWorker(7);
    const payloads: Uint8Array[] = [];
    const counts = new Uint32Array(4);
    const totals = [0, 0, 0, 0];
    let historyLost = false;
    // The engine's own subscriber path: live PUB, and the replay socket for what the SUB
    // missed while joining (0.5.22+ replay frames carry the topic).
    sub = new EngineKvSubscriber({
      dpRank: 0, endpoint: `tcp://127.0.0.1:${mocker.kvEventPorts[0]}`, replayEndpoint: `tcp://127.0.0.1:${mocker.kvReplayPorts[0]}`,
      topic: 'kv', tailCheckMs: 50,
      onBatch: (b) => {
        payloads.push(b.payload);
        expect(router.applyEvents(7, 0, b.payload, counts)).toBe(0);
        counts.forEach((c, i) => (totals[i]! += c));
      },
      onHistoryLost: () => {
        historyLost = true;
      },
    });
    await sub.open();
    sub.start();

    // Three prompts sharing a 3-page prefix, then one more after the others are cached.
    const shared = Array.from({ length: 3 * BS }, (_, i) => 500 + i);
    const prompts = [0, 1, 2].map((k) => [...shared, ...Array.from({ length: 2 * BS + k }, (_, i) => 10_000 * (k + 1) + i)]);
    const cachedSeqs: number[][] = [];
    for (const p of prompts) {
      const r = await generate(mocker, p);
      // What SGLang caches: the prompt and the output but the last token, full pages only.
      cachedSeqs.push([...p, ...r.output_ids].slice(0, p.length + r.output_ids.length - 1));
    }
    const fullPages = (s: number[]) => Math.floor(s.length / BS);
    const distinct = new Set(cachedSeqs.flatMap((s) => pageHashes(s).slice(0, fullPages(s)).map(String)));
    await until(() => router.stats().pairs === distinct.size, `${distinct.size} indexed pages (have ${router.stats().pairs})`);
    for (const s of cachedSeqs) {
      expect(matches(router, Uint32Array.from(s))).toEqual({ '7:0': fullPages(s) });
      // One page past what is cached does not match further.
      expect(matches(router, Uint32Array.from([...s.slice(0, fullPages(s) * BS), ...Array(BS).fill(3)]))).toEqual({ '7:0': fullPages(s) });
    }
    // They really were tagged maps, and the router applied every event of them.
    expect(payloads.length).toBeGreaterThan(0);
    const decoded = payloads.map((p) => decode(p, { useBigInt64: true }) as [number, unknown[], number | null]);
    for (const [ts, events, dp] of decoded) {
      expect(typeof ts).toBe('number');
      expect(dp).toBe(0);
      for (const e of events) expect(e).toMatchObject({ type: expect.stringMatching(/^(BlockStored|BlockRemoved|AllBlocksCleared)$/) });
    }
    const eventCount = decoded.reduce((n, [, events]) => n + events.length, 0);
    expect(totals).toEqual([eventCount, eventCount, 0, 0]);
    expect(historyLost).toBe(false);

    // A flush publishes AllBlocksCleared: the unit's index empties.
    const flush = await fetch(`${mocker.url}/flush_cache`, { method: 'POST' });
    expect(flush.status).toBe(200);
    await until(() => router.stats().pairs === 0, 'the index to empty after flush_cache');
    expect(matches(router, Uint32Array.from(cachedSeqs[0]!))).toEqual({});
    expect(decode(payloads.at(-1)!, { useBigInt64: true })).toMatchObject([expect.any(Number), [{ type: 'AllBlocksCleared' }], 0]);
    router.close();
  });
});
