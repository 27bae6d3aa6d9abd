// KvWorkerSet (the frontend's WorkerSet over the native KV router) against worker agents'
// request planes on real sockets: uWS servers speaking the real frames, each announcing a
// scripted SGLang HTTP engine (test/frontend/fixtures/fake_sglang.ts) in its card, which the
// frontend streams from directly, and KV-event batches in SGLang's msgpack form, sent the
// way the agent's relay sends them (a reset, then seq 0, 1, ...).
// Checked: admission by model card (dp ranks, page-size mismatch), KV events steering
// requests, resets, disconnect and reconnect, streams that outlive the agent connection,
// an engine that moved, failover before the first token, a clean error mid-stream,
// approximate mode and the simple policies.

import { Packr } from 'msgpackr';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelCard } from '../../src/engine/model_card.js';
import { KvgateError } from '../../src/errors.js';
import { KvWorkerSet, type KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { PROTOCOL_VERSION } from '../../src/transport/frames.js';
import { RequestPlaneServer, type Peer } from '../../src/transport/request_plane_server.js';
import { freePort } from '../../src/worker/ports.js';
import { card as baseCard } from '../transport/card.js';
import { startFakeSglang, type FakeSglang, type FakeSglangOptions } from '../frontend/fixtures/fake_sglang.js';
import { startMocker } from '../../src/mocker/index.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const waitFor = async (cond: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

interface Stored {
  rank: number;
  tokens: number[];
  hashes: bigint[];
}

// One fake worker agent: its request plane, its engine, and the blocks its "engine" holds,
// which every (re)connecting frontend gets as a join reset plus one batch per store.
class FakeAgent {
  readonly peers = new Set<Peer>();
  readonly resyncs: number[] = [];
  readonly stored: Stored[] = [];
  private readonly seqs = new Map<Peer, Map<number, bigint>>();
  server!: RequestPlaneServer;

  constructor(
    readonly port: number,
    readonly instanceId: bigint,
    public card: ModelCard,
    readonly engine: FakeSglang,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = new RequestPlaneServer({
      host: '127.0.0.1',
      port: this.port,
      hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: this.instanceId, card: this.card }),
      onConnect: (peer) => {
        this.peers.add(peer);
        this.seqs.set(peer, new Map());
        for (let r = 0; r < this.card.dpSize; r++) this.rebuild(peer, r, 'join');
      },
      onDisconnect: (peer) => {
        this.peers.delete(peer);
        this.seqs.delete(peer);
      },
      onResync: (peer, rank) => {
        this.resyncs.push(rank);
        this.rebuild(peer, rank, 'resync');
      },
    });
    await this.server.listen();
    cleanups.push(() => this.server.close());
    return this;
  }

  stop(): Promise<void> {
    return this.server.close();
  }

  // The engine was restarted elsewhere (a new port): a new Hello names it.
  moveEngine(to: FakeSglang): void {
    this.card = { ...this.card, engineUrl: to.url };
    for (const peer of this.peers) peer.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: this.instanceId, card: this.card });
  }

  // The engine stored full blocks of `tokens` (one engine hash per block). `dpRank`: the
  // rank the batch itself names, when it differs from the relay's rank.
  store(tokens: number[], rank = 0, dpRank = rank): bigint[] {
    const bs = this.card.pageSize;
    const hashes = Array.from({ length: Math.floor(tokens.length / bs) }, () => BigInt(Math.floor(Math.random() * 2 ** 48)));
    const s = { rank, tokens: tokens.slice(0, hashes.length * bs), hashes };
    this.stored.push(s);
    for (const peer of this.peers) this.sendBatch(peer, rank, [storedEvent(s, bs)], dpRank);
    return hashes;
  }

  // The engine dropped everything (SGLang's AllBlocksCleared).
  clear(rank = 0): void {
    this.stored.length = 0;
    for (const peer of this.peers) this.sendBatch(peer, rank, [['AllBlocksCleared']]);
  }

  // The engine was replaced: its cache is gone (the relay's engine_restart reset).
  engineRestarted(rank = 0): void {
    this.stored.length = 0;
    for (const peer of this.peers) this.rebuild(peer, rank, 'engine_restart');
  }

  private rebuild(peer: Peer, rank: number, reason: 'join' | 'resync' | 'engine_restart'): void {
    this.seqs.get(peer)!.set(rank, 0n);
    peer.send({ type: 'kv_reset', instanceId: this.instanceId, dpRank: rank, reason });
    for (const s of this.stored) if (s.rank === rank) this.sendBatch(peer, rank, [storedEvent(s, this.card.pageSize)]);
  }

  private sendBatch(peer: Peer, rank: number, events: unknown[], dpRank = rank): void {
    const seqs = this.seqs.get(peer)!;
    const seq = seqs.get(rank)!;
    seqs.set(rank, seq + 1n);
    const payload = packr.pack([Date.now() / 1000, events, dpRank]);
    peer.send({ type: 'kv_batch', instanceId: this.instanceId, dpRank: rank, seq, engineSeq: seq, snapshot: false, payload });
  }
}

const storedEvent = (s: Stored, bs: number) => ['BlockStored', s.hashes, null, s.tokens, bs, null, 'GPU'];

// A scripted engine whose output token i is (first prompt token + i).
async function engine(opts: FakeSglangOptions = {}): Promise<FakeSglang> {
  const reply = (b: { input_ids: number[]; sampling_params: Record<string, unknown> }) =>
    Array.from({ length: b.sampling_params['max_new_tokens'] as number }, (_, i) => b.input_ids[0]! + i);
  const f = await startFakeSglang({ reply, ...opts });
  cleanups.push(() => f.close());
  return f;
}

let nextInstance = 1n;
async function agent(card: Partial<ModelCard> = {}, engineOpts: FakeSglangOptions = {}, port?: number, instanceId?: bigint): Promise<FakeAgent> {
  const e = await engine(engineOpts);
  return new FakeAgent(port ?? (await freePort()), instanceId ?? nextInstance++, { ...baseCard, ...card, engineUrl: e.url }, e).start();
}

function workerSet(opts: KvWorkerSetOptions = {}): { set: KvWorkerSet; registry: Registry } {
  const set = new KvWorkerSet({ healthIntervalMs: 0, ...opts });
  const registry = new Registry();
  set.registerMetrics(registry);
  cleanups.push(() => set.close());
  return { set, registry };
}

const prompt = (first: number, n = 64) => Array.from({ length: n }, (_, i) => first + i);

// Routes and runs one request to its end; returns the worker it ended on and its tokens.
async function run(set: KvWorkerSet, tokenIds: number[], maxNewTokens = 4): Promise<{ worker: string; tokens: number[] }> {
  const d = set.dispatch({ model: 'test-model', requestId: `r${Math.random()}`, tokenIds });
  const tokens: number[] = [];
  try {
    for await (const c of d.engine.generate({ requestId: 'r', tokenIds, sampling: { maxNewTokens } })) {
      if (tokens.length === 0 && c.tokenIds.length > 0) d.firstToken();
      tokens.push(...c.tokenIds);
    }
    d.finish('ok');
  } catch (err) {
    d.finish('error', err);
    throw err;
  }
  return { worker: d.worker, tokens };
}

const cached = (set: KvWorkerSet, url: string) => set.unitRows().filter((u) => u.worker === url).reduce((n, u) => n + u.cachedBlocks, 0);
const metric = async (registry: Registry, name: string) => (await registry.getSingleMetric(name)!.get()).values;


// Dispatches until the set refuses (its load reports are applied asynchronously); the error.
async function refusedDispatch(set: KvWorkerSet, tokenIds: number[], what: string): Promise<unknown> {
  let refused: unknown = null;
  await waitFor(() => {
    try {
      set.dispatch({ model: 'test-model', requestId: 'busy', tokenIds }).finish('cancelled');
      return false;
    } catch (err) {
      refused = err;
      return true;
    }
  }, what);
  return refused;
}
describe('KvWorkerSet', () => {
  it('admits each agent by its card: every dp rank a candidate, a different page size refused, a prefill worker that cannot be paired refused', async () => {
    const a = await agent();
    const b = await agent({ dpSize: 2 });
    const c = await agent({ pageSize: 32 });
    const d = await agent({ role: 'prefill' });
    const { set } = workerSet();
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    set.addAgent(b.url);
    set.addAgent(c.url);
    set.addAgent(d.url);
    await set.waitForWorkers(2, 5000);
    await waitFor(() => set.workers().filter((w) => w.reason !== undefined && /page size|tp_size/.test(w.reason)).length === 2, 'C and D refused');
    // D's engine (the fake) reports no TP size, which pairing with decode workers needs.
    expect(set.workers().find((w) => w.name === d.url)!.reason).toMatch(/cannot pair it: its \/server_info reports no tp_size/);

    expect(set.readyCount('test-model')).toBe(2);
    expect(set.readyCount('other-model')).toBe(0);
    const units = set.unitRows().map((u) => `${u.worker}#${u.rank}`).sort();
    expect(units).toEqual([`${a.url}#0`, `${b.url}#0`, `${b.url}#1`].sort());
    const info = set.workers().find((w) => w.name === c.url)!;
    expect(info).toMatchObject({ healthy: false, model: 'test-model' });
    expect(info.reason).toMatch(/page size 32 differs from 16/);
    expect(() => set.dispatch({ model: 'other-model', requestId: 'x', tokenIds: [1] })).toThrow(/no worker can serve model 'other-model'/);
  });

  it('routes a prompt to the worker whose KV events hold its prefix; a reset or a clear empties that worker', async () => {
    const a = await agent();
    const b = await agent();
    const { set, registry } = workerSet();
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);

    const p = prompt(100);
    a.store(p.slice(0, 48));
    await waitFor(() => cached(set, a.url) === 3, 'A holds 3 blocks');
    for (let i = 0; i < 4; i++) expect((await run(set, p)).worker).toBe(a.url);
    expect(set.routerStats('test-model')).toMatchObject({ blocks: 3, eventsApplied: 1 });
    const overlap = await metric(registry, 'kvgate_router_overlap_blocks');
    expect(overlap.find((v) => (v as { metricName?: string }).metricName === 'kvgate_router_overlap_blocks_sum')!.value).toBe(12);

    // B gets the longer prefix: now B wins.
    b.store(p);
    await waitFor(() => cached(set, b.url) === 4, 'B holds 4 blocks');
    expect((await run(set, p)).worker).toBe(b.url);

    // The engine cleared its cache: the index follows.
    b.clear();
    await waitFor(() => cached(set, b.url) === 0, 'B cleared');
    expect((await run(set, p)).worker).toBe(a.url);
    // A's engine restarted: the reset empties A in the index.
    a.engineRestarted();
    await waitFor(() => cached(set, a.url) === 0, 'A reset');
    expect(set.routerStats('test-model')!.blocks).toBe(0);
    const resets = await metric(registry, 'kvgate_router_kv_resets_total');
    expect(resets.filter((v) => v.labels['worker'] === a.url).map((v) => [v.labels['reason'], v.value]).sort()).toEqual([['engine_restart', 1], ['join', 1]]);
    const events = await metric(registry, 'kvgate_router_kv_events_total');
    expect(events.filter((v) => v.labels['worker'] === b.url).map((v) => [v.labels['result'], v.value])).toEqual([['applied', 2]]);
  });

  it("keeps a prompt with its cached prefix behind another prompt's prefill by default (own weight), where the cost without it moves to an idle worker", async () => {
    // bench/README.md's prefill-heavy decision (the scheduler gtest's numbers at page 16): A
    // caches 32 of the prompt's 34 blocks and has a 44-block prompt queued (40 to prefill); B
    // is idle. Without the own weight both costs are mostly wait, and B is cheaper.
    const pick = async (opts: KvWorkerSetOptions) => {
      const a = await agent();
      const b = await agent();
      const { set } = workerSet({ prefillWaitShare: 1, ...opts });
      set.addAgent(a.url);
      set.addAgent(b.url);
      await set.waitForWorkers(2, 5000);
      const p = prompt(1000, 34 * 16);
      const q = prompt(5000, 44 * 16);
      a.store(p.slice(0, 32 * 16));
      a.store(q.slice(0, 4 * 16));
      await waitFor(() => cached(set, a.url) === 36, 'A holds 36 blocks');
      const queued = set.dispatch({ model: 'test-model', requestId: 'queued', tokenIds: q });
      expect(queued.worker).toBe(a.url);
      const d = set.dispatch({ model: 'test-model', requestId: 'p', tokenIds: p });
      const chosen = d.worker === a.url ? 'A' : 'B';
      d.finish('cancelled');
      queued.finish('cancelled');
      return chosen;
    };
    expect(ROUTING_DEFAULTS.ownWeight).toBeGreaterThan(0);
    expect(await pick({})).toBe('A');
    expect(await pick({ ownWeight: 0 })).toBe('B');
  });

  it('drops a disconnected worker from the index and takes it back when it reconnects', async () => {
    const a = await agent();
    const b = await agent();
    const { set } = workerSet();
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(500);
    a.store(p);
    await waitFor(() => cached(set, a.url) === 4, 'A holds its blocks');

    await a.stop();
    await waitFor(() => set.readyCount('test-model') === 1, 'A out');
    expect(set.unitRows().map((u) => u.worker)).toEqual([b.url]);
    expect(set.routerStats('test-model')!.blocks).toBe(0);
    expect(set.workers().find((w) => w.name === a.url)).toMatchObject({ healthy: false });
    for (let i = 0; i < 3; i++) expect((await run(set, p)).worker).toBe(b.url);

    // The same agent comes back on its address: the client reconnects, the join rebuilds.
    const again = await agent({}, {}, a.port, a.instanceId);
    again.stored.push(...a.stored);
    await waitFor(() => set.readyCount('test-model') === 2, 'A back', 15_000);
    await waitFor(() => cached(set, a.url) === 4, 'A rebuilt');
    expect((await run(set, p)).worker).toBe(a.url);
  });

  it('streams from the engine itself: a stream outlives its agent connection, and follows an engine that moved', async () => {
    const a = await agent({}, { tokenDelayMs: 10 });
    const { set } = workerSet();
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    const p = prompt(40);
    const d = set.dispatch({ model: 'test-model', requestId: 'long', tokenIds: p });
    const tokens: number[] = [];
    for await (const c of d.engine.generate({ requestId: 'long', tokenIds: p, sampling: { maxNewTokens: 30 } })) {
      tokens.push(...c.tokenIds);
      // The agent goes away mid-stream: the worker leaves routing, the stream goes on.
      if (tokens.length === 1) await a.stop();
    }
    d.finish('ok');
    expect(tokens).toEqual(Array.from({ length: 30 }, (_, i) => 40 + i));
    expect(a.engine.received).toHaveLength(1);
    expect(set.readyCount('test-model')).toBe(0);

    const b = await agent({}, { tokenDelayMs: 1 });
    set.addAgent(b.url);
    await set.waitForWorkers(1, 5000);
    expect((await run(set, p)).tokens).toEqual([40, 41, 42, 43]);
    const moved = await engine();
    b.moveEngine(moved);
    await waitFor(() => set.cards()[0]?.engineUrl === moved.url, 'the new card');
    expect((await run(set, p)).tokens).toEqual([40, 41, 42, 43]);
    expect([b.engine.received.length, moved.received.length]).toEqual([1, 1]);
  });

  it('moves a request whose worker fails before its first token to another worker, once', async () => {
    const a = await agent({}, { failStatus: 503, failWhen: (b) => b.input_ids[0] === 7 });
    const failing = a.engine;
    const b = await agent();
    const { set, registry } = workerSet({ penaltyMs: 300 });
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(7);
    a.store(p);
    await waitFor(() => cached(set, a.url) === 4, 'A holds the prefix');

    const r = await run(set, p);
    expect(r).toEqual({ worker: b.url, tokens: [7, 8, 9, 10] });
    expect(failing.received).toHaveLength(1);
    expect((await metric(registry, 'kvgate_router_retries_total'))[0]!.value).toBe(1);
    // A sat out its penalty, then came back with its ranks rebuilt from a resync.
    expect(set.readyCount('test-model')).toBe(1);
    await waitFor(() => set.readyCount('test-model') === 2, 'A readmitted');
    await waitFor(() => cached(set, a.url) === 4, 'A resynced');
    expect(a.resyncs).toEqual([0]);

    // With nowhere else to go, the worker's error is the request's error.
    await b.stop();
    await waitFor(() => set.readyCount('test-model') === 1, 'B gone');
    await expect(run(set, p)).rejects.toMatchObject({ code: 'engine_unavailable' });
    expect(() => set.dispatch({ model: 'test-model', requestId: 'x', tokenIds: p })).toThrow(KvgateError);
  });

  it('retries a request that never started on other workers, with backoff, within the budget', async () => {
    const busy = { failStatus: 503 };
    const a = await agent({}, busy);
    const b = await agent({}, busy);
    const c = await agent();
    const { set, registry } = workerSet({ penaltyMs: 60_000, retry: { maxRetries: 2, initialBackoffMs: 100 } });
    for (const x of [a, b, c]) set.addAgent(x.url);
    await set.waitForWorkers(3, 5000);
    // A and B hold the prefix, so the router tries them first.
    const p = prompt(3);
    a.store(p);
    b.store(p);
    await waitFor(() => cached(set, a.url) === 4 && cached(set, b.url) === 4, 'A and B hold the prefix');
    const t0 = Date.now();
    expect(await run(set, p)).toEqual({ worker: c.url, tokens: [3, 4, 5, 6] });
    // Two waits: 100 ms and 150 ms, each +-20 %.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect((await metric(registry, 'kvgate_router_retries_total'))[0]!.value).toBe(2);
    // C busy too, and the budget spent on the way: the last failure is the request's error.
    const { set: set2 } = workerSet({ penaltyMs: 60_000, retry: { maxRetries: 1, initialBackoffMs: 1 } });
    set2.addAgent(a.url);
    set2.addAgent(b.url);
    await set2.waitForWorkers(2, 5000);
    await expect(run(set2, p)).rejects.toMatchObject({ code: 'engine_unavailable' });
    expect(a.engine.received.length + b.engine.received.length).toBe(4);
    expect(set2.unitRows().map((u) => u.activeRequests)).toEqual([]);
  });

  it('says so when a request timed out on its worker and no other could take it', async () => {
    const a = await agent({}, { tokenDelayMs: 5000 });
    const { set } = workerSet({ firstTokenTimeoutMs: 200, penaltyMs: 60_000, workerWaitMs: 300 });
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    await expect(run(set, prompt(5))).rejects.toMatchObject({
      code: 'engine_timeout',
      message: expect.stringMatching(/sent no first token within 0.2 s; no other worker could take the request within 0.3 s$/),
    });
    expect(set.unitRows()).toEqual([]);
  });

  it('moves a request on when its worker sends no first token in time, and sets that worker aside', async () => {
    const a = await agent({}, { tokenDelayMs: 5000 });
    const b = await agent();
    const { set, registry } = workerSet({ firstTokenTimeoutMs: 300, penaltyMs: 60_000 });
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(5);
    a.store(p);
    await waitFor(() => cached(set, a.url) === 4, 'A holds the prefix');
    const t0 = Date.now();
    expect(await run(set, p)).toEqual({ worker: b.url, tokens: [5, 6, 7, 8] });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(set.workers().find((w) => w.name === a.url)).toMatchObject({ healthy: false, reason: expect.stringMatching(/no first token within 0.3 s/) });
    expect((await metric(registry, 'kvgate_router_retries_total'))[0]!.value).toBe(1);
    // The engine was told: its stream was dropped.
    await waitFor(() => a.engine.running.size === 0, 'the slow request aborted on A');
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0]);
  });

  it('opens a worker\'s circuit breaker after failures in a row, then readmits it on probation', async () => {
    const a = await agent({}, { failStatus: 500, failWhen: (b) => b.input_ids[0] === 9 });
    const { set, registry } = workerSet({ breaker: { failureThreshold: 3, openMs: 400 } });
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    const state = async () => (await metric(registry, 'kvgate_router_worker_circuit_state'))[0]!.value;
    for (let i = 0; i < 2; i++) await expect(run(set, prompt(9))).rejects.toMatchObject({ code: 'engine_error' });
    expect(set.readyCount('test-model')).toBe(1);
    await expect(run(set, prompt(9))).rejects.toMatchObject({ code: 'engine_error' });
    expect(set.readyCount('test-model')).toBe(0);
    expect(set.workers()[0]!.reason).toMatch(/circuit breaker open/);
    expect(await state()).toBe(1);
    await waitFor(() => set.readyCount('test-model') === 1, 'A back after the open period');
    expect(await state()).toBe(2);
    for (let i = 0; i < 3; i++) expect((await run(set, prompt(10))).tokens).toEqual([10, 11, 12, 13]);
    expect(await state()).toBe(0);
    const moves = (await metric(registry, 'kvgate_router_worker_circuit_transitions_total')).map((r) => `${r.labels['from_state']}>${r.labels['to_state']}=${r.value}`);
    expect(moves.sort()).toEqual(['closed>open=1', 'half_open>closed=1', 'open>half_open=1']);
  });

  it('gives an idle worker a generation health check and sets it aside when its engine cannot generate', async () => {
    const hung = await agent({}, { healthGenerateStatus: 503 });
    const fine = await agent();
    const { set } = workerSet({ healthIntervalMs: 100, idleHealthCheckMs: 300, penaltyMs: 60_000 });
    set.addAgent(hung.url);
    set.addAgent(fine.url);
    await set.waitForWorkers(2, 5000);
    // Busy workers are not probed: both still up after a few probe rounds of traffic.
    const until = Date.now() + 250;
    while (Date.now() < until) await run(set, prompt(1));
    expect(set.readyCount('test-model')).toBe(2);
    await waitFor(() => set.readyCount('test-model') === 1, 'the hung worker set aside');
    expect(set.workers().find((w) => w.name === hung.url)).toMatchObject({ healthy: false, reason: expect.stringMatching(/failed its generation health check/) });
    await new Promise((r) => setTimeout(r, 500));
    expect(set.workers().find((w) => w.name === fine.url)!.healthy).toBe(true);
  });

  it('gives no generation check to a worker with a request in flight, however long nothing was routed there', async () => {
    // A saturated engine: its health_generate would queue behind the work (here: fail).
    const slow = await agent({}, { healthGenerateStatus: 503, tokenDelayMs: 400 });
    const { set } = workerSet({ healthIntervalMs: 100, idleHealthCheckMs: 300, penaltyMs: 60_000 });
    set.addAgent(slow.url);
    await set.waitForWorkers(1, 5000);
    // One request of ~1.6 s: routed once, then nothing routed or finished for > 5 probe rounds.
    expect((await run(set, prompt(1))).tokens).toHaveLength(4);
    expect(set.readyCount('test-model')).toBe(1);
    // Idle now: the next probes check it, and its engine fails the check.
    await waitFor(() => set.readyCount('test-model') === 0, 'the idle worker checked and set aside');
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([]);
  });

  it('refuses requests with 503 and Retry-After while every worker\'s KV cache is past the busy threshold', async () => {
    const a = await agent();
    const b = await agent();
    const { set } = workerSet({ busyThreshold: 0.9 });
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const load = (x: FakeAgent, used: number) =>
      x.server.broadcast({ type: 'load', report: { instanceId: x.instanceId, timestampMs: Date.now(), ranks: [{ dpRank: 0, running: 1, queued: 0, kvUsedTokens: used * 16, kvTotalTokens: 1600, kvUsedBlocks: used, kvTotalBlocks: 100, tokenUsage: used / 100 }] } });
    load(a, 95);
    load(b, 50);
    await new Promise((r) => setTimeout(r, 200));
    // One worker with room: requests are served.
    expect((await run(set, prompt(1))).tokens).toHaveLength(4);
    load(b, 91);
    const refused = await refusedDispatch(set, prompt(1), 'both busy');
    expect(refused).toMatchObject({ code: 'workers_busy', status: 503, retryAfter: 1 });
    load(a, 10);
    await waitFor(() => set.unitRows().length === 2 && (() => { try { set.dispatch({ model: 'test-model', requestId: 'ok', tokenIds: prompt(1) }).finish('cancelled'); return true; } catch { return false; } })(), 'A free again');
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0]);
  });

  it('pairs a prefill and a decode agent: both legs carry one room, the decode leg the prefill rank; a long prefill queue sends requests to decode alone', async () => {
    const p = await agent({ role: 'prefill', bootstrapHost: '10.1.2.3', bootstrapPort: 8998 }, { tpSize: 1 });
    const d = await agent({ role: 'decode' }, { tpSize: 1 });
    const { set, registry } = workerSet({ pd: { localPrefillQueue: 4 } });
    set.addAgent(p.url);
    set.addAgent(d.url);
    await set.waitForWorkers(2, 5000);
    expect(set.pools()['test-model']).toEqual({ mode: 'disaggregated', agg: 0, prefill: 1, decode: 1 });
    expect((await run(set, prompt(1))).worker).toBe(`${p.url} > ${d.url}`);
    const [pre, dec] = [p.engine.received.at(-1) as unknown as Record<string, unknown>, d.engine.received.at(-1) as unknown as Record<string, unknown>];
    expect(pre).toMatchObject({ bootstrap_host: '10.1.2.3', bootstrap_port: 8998, data_parallel_rank: 0 });
    expect(dec).toMatchObject({ bootstrap_host: '10.1.2.3', bootstrap_port: 8998, data_parallel_rank: 0, disagg_prefill_dp_rank: 0 });
    expect(pre['bootstrap_room']).toBe(dec['bootstrap_room']);
    expect(pre['rid']).toBe(dec['rid']);

    // The prefill engine reports a long queue: the decode worker prefills alone.
    p.server.broadcast({ type: 'load', report: { instanceId: p.instanceId, timestampMs: Date.now(), ranks: [{ dpRank: 0, running: 8, queued: 6, kvUsedTokens: 0, kvTotalTokens: 1600, kvUsedBlocks: 0, kvTotalBlocks: 100, tokenUsage: 0 }] } });
    await new Promise((r) => setTimeout(r, 200));
    const before = p.engine.received.length;
    expect((await run(set, prompt(100))).worker).toBe(d.url);
    expect(p.engine.received.length).toBe(before);
    expect(d.engine.received.at(-1)).not.toHaveProperty('bootstrap_room');
    const decisions = await metric(registry, 'kvgate_router_pd_decisions_total');
    expect(decisions.map((v) => [v.labels['decision'], v.value]).sort()).toEqual([
      ['disaggregated', 1],
      ['local_prefill_queue', 1],
    ]);
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0]);
    expect(set.rooms.inFlight).toBe(0);
  });

  it('re-runs a disaggregated request whose decode engine aborted it before any token on another pair; after tokens it fails as it is', async () => {
    const p = await agent({ role: 'prefill', bootstrapHost: '10.1.2.3', bootstrapPort: 8998 }, { tpSize: 1 });
    const refusing = await agent({ role: 'decode' }, { tpSize: 1, abortAfter: 0 });
    const fine = await agent({ role: 'decode' }, { tpSize: 1 });
    const { set, registry } = workerSet({ retry: { initialBackoffMs: 1 } });
    for (const a of [p, refusing, fine]) set.addAgent(a.url);
    await set.waitForWorkers(3, 5000);
    // Concurrent: the decode router spreads them by load, so the refusing engine gets some.
    const runs = await Promise.all(Array.from({ length: 4 }, (_, i) => run(set, prompt(10 * i + 1))));
    expect(runs).toEqual(Array.from({ length: 4 }, (_, i) => ({ worker: `${p.url} > ${fine.url}`, tokens: [10 * i + 1, 10 * i + 2, 10 * i + 3, 10 * i + 4] })));
    // Each attempt on the refusing engine was retried once (the retry passes it over), with
    // a fresh room each time.
    const refused = refusing.engine.received.length;
    expect(refused).toBeGreaterThan(0);
    expect((await metric(registry, 'kvgate_router_retries_total'))[0]!.value).toBe(refused);
    const rooms = (e: FakeAgent) => e.engine.received.map((b) => (b as unknown as Record<string, unknown>)['bootstrap_room']);
    expect(new Set([...rooms(refusing), ...rooms(fine)]).size).toBe(refused + 4);
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0, 0]);
    expect(set.rooms.inFlight).toBe(0);

    // An engine that aborts after its first tokens reached the caller: no retry.
    const p2 = await agent({ role: 'prefill', bootstrapHost: '10.1.2.3', bootstrapPort: 8998 }, { tpSize: 1 });
    const late = await agent({ role: 'decode' }, { tpSize: 1, abortAfter: 2, tokenDelayMs: 20 });
    const two = workerSet();
    two.set.addAgent(p2.url);
    two.set.addAgent(late.url);
    await two.set.waitForWorkers(2, 5000);
    await expect(run(two.set, prompt(1))).rejects.toMatchObject({ code: 'engine_error', message: expect.stringMatching(/decode engine .* aborted/) });
    expect(late.engine.received).toHaveLength(1);
    expect((await metric(two.registry, 'kvgate_router_retries_total')).map((v) => v.value)).toEqual([]);
    expect(two.set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0]);
    expect(two.set.rooms.inFlight).toBe(0);
  });

  it('avoids a decode worker whose handoff from the prefill is slow while the other has near-equal load, not when the other is loaded', async () => {
    const p = await agent({ role: 'prefill', bootstrapHost: '10.1.2.3', bootstrapPort: 8998 }, { tpSize: 1 });
    // The slow link: the decode engine's first token comes ~300 ms after the prefill's
    // answer, against ~20 ms on the fast one (a gap counts once the prefill answered first).
    const slow = await agent({ role: 'decode' }, { tpSize: 1, tokenDelayMs: 300 });
    const fast = await agent({ role: 'decode' }, { tpSize: 1, tokenDelayMs: 20 });
    const { set } = workerSet();
    for (const a of [p, slow, fast]) set.addAgent(a.url);
    await set.waitForWorkers(3, 5000);
    // Both pairs get handoffs (their stats count from 3): concurrent requests spread by load.
    const handoffs = (d: FakeAgent) => set.rooms.pairStats(0, [slow, fast].indexOf(d) + 1)?.handoffs ?? 0;
    for (let round = 0; round < 6 && Math.min(handoffs(slow), handoffs(fast)) < 3; round++) {
      await Promise.all(Array.from({ length: 4 }, (_, i) => run(set, prompt(100 * round + 10 * i + 1), 1)));
    }
    expect(Math.min(handoffs(slow), handoffs(fast))).toBeGreaterThanOrEqual(3);
    const sent = (a: FakeAgent) => a.engine.received.length;
    // Idle decode workers (equal load): every request takes the fast pair.
    const before = sent(slow);
    for (let i = 0; i < 6; i++) expect((await run(set, prompt(2000 + 10 * i), 1)).worker).toBe(`${p.url} > ${fast.url}`);
    expect(sent(slow)).toBe(before);
    // The fast decode worker loaded far beyond the slow pair's penalty: the slow one serves.
    const held = Array.from({ length: 40 }, (_, i) => set.dispatch({ model: 'test-model', requestId: `h${i}`, tokenIds: prompt(1000 + i) }));
    expect(held.filter((h) => h.worker.endsWith(slow.url)).length).toBeGreaterThan(0);
    for (const h of held) h.finish('cancelled');
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0, 0]);
  });

  it('passes over a busy decode worker while another is free, and refuses with 503 workers_busy when every decode worker is busy', async () => {
    const p = await agent({ role: 'prefill', bootstrapHost: '10.1.2.3', bootstrapPort: 8998 }, { tpSize: 1 });
    const d1 = await agent({ role: 'decode' }, { tpSize: 1 });
    const d2 = await agent({ role: 'decode' }, { tpSize: 1 });
    const { set } = workerSet({ busyThreshold: 0.9 });
    for (const a of [p, d1, d2]) set.addAgent(a.url);
    await set.waitForWorkers(3, 5000);
    const load = (x: FakeAgent, used: number) =>
      x.server.broadcast({ type: 'load', report: { instanceId: x.instanceId, timestampMs: Date.now(), ranks: [{ dpRank: 0, running: 1, queued: 0, kvUsedTokens: used * 16, kvTotalTokens: 1600, kvUsedBlocks: used, kvTotalBlocks: 100, tokenUsage: used / 100 }] } });
    load(d1, 95);
    load(d2, 10);
    await new Promise((r) => setTimeout(r, 200));
    // D1 busy: every request goes to D2 (without the exclusion, load alone alternates them).
    for (let i = 0; i < 4; i++) expect((await run(set, prompt(10 * i + 1))).worker).toBe(`${p.url} > ${d2.url}`);
    load(d2, 92);
    const refused = await refusedDispatch(set, prompt(1), 'both decode workers busy');
    expect(refused).toMatchObject({ code: 'workers_busy', status: 503, retryAfter: 1, message: expect.stringMatching(/every decode worker of test-model is busy/) });
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0, 0]);
    expect(set.rooms.inFlight).toBe(0);
  });

  it('keeps a worker whose engine reported an error for one request: the engine is up', async () => {
    const a = await agent({}, { failStatus: 500, failWhen: (b) => b.input_ids[0] === 9 });
    const { set } = workerSet();
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    await expect(run(set, prompt(9))).rejects.toMatchObject({ code: 'engine_error' });
    expect(set.readyCount('test-model')).toBe(1);
    expect((await run(set, prompt(10))).tokens).toEqual([10, 11, 12, 13]);
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0]);
  });

  it('ends a request whose engine is lost mid-stream with a clean error, without hanging or moving it', async () => {
    const a = await agent({}, { tokenDelayMs: 20 });
    const b = await agent();
    const bEngine = b.engine;
    const { set } = workerSet();
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(1);
    a.store(p);
    await waitFor(() => cached(set, a.url) === 4, 'A holds the prefix');
    const d = set.dispatch({ model: 'test-model', requestId: 'mid', tokenIds: p });
    expect(d.worker).toBe(a.url);
    const it = d.engine.generate({ requestId: 'mid', tokenIds: p, sampling: { maxNewTokens: 1000 } })[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ tokenIds: [1] });
    await a.engine.close();
    const started = Date.now();
    await expect((async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })()).rejects.toMatchObject({ code: 'engine_unavailable' });
    expect(Date.now() - started).toBeLessThan(5000);
    d.finish('error');
    // Tokens already went out: the request is not replayed elsewhere (that is migration).
    expect(bEngine.received).toHaveLength(0);
    expect(set.unitRows().map((u) => [u.worker, u.activeRequests])).toEqual([[b.url, 0]]);
  });

  it('migrates a stream broken mid-way when the card allows: prompt plus generated tokens, fewer max tokens, usage once', async () => {
    // Each engine continues the sequence from the end of what it is given.
    const reply = (b: { input_ids: number[] }) => Array.from({ length: 10 }, (_, i) => 1000 + b.input_ids.length - 64 + i);
    const a = await agent({ migrationLimit: 1 }, { reply, dropAfter: 3, cachedTokens: 32 });
    const b = await agent({ migrationLimit: 1 }, { reply, cachedTokens: 7 });
    const { set, registry } = workerSet();
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(1);
    a.store(p);
    await waitFor(() => cached(set, a.url) === 4, 'A holds the prefix');
    const d = set.dispatch({ model: 'test-model', requestId: 'mig', tokenIds: p });
    expect(d.worker).toBe(a.url);
    const chunks = [];
    for await (const c of d.engine.generate({ requestId: 'mig', tokenIds: p, sampling: { maxNewTokens: 8, minNewTokens: 5 } })) {
      if (chunks.length === 0) d.firstToken();
      chunks.push(c);
    }
    d.finish('ok');
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
    // B got A's prompt and A's 3 tokens, with 5 tokens left to make.
    expect(b.engine.received).toHaveLength(1);
    expect(b.engine.received[0]!.input_ids).toEqual([...p, 1000, 1001, 1002]);
    expect(b.engine.received[0]!.sampling_params).toMatchObject({ max_new_tokens: 5, min_new_tokens: 2 });
    expect(chunks.at(-1)).toMatchObject({ finishReason: { type: 'length' }, usage: { promptTokens: 64, completionTokens: 8, cachedTokens: 32 } });
    expect(d.worker).toBe(b.url);
    expect(d.migrations).toBe(1);
    expect((await metric(registry, 'kvgate_router_migrations_total')).map((v) => [v.labels.cause, v.value])).toEqual([['disconnected', 1]]);
    // B held none of it: it prefilled the 64 prompt tokens and the 3 generated ones.
    expect((await metric(registry, 'kvgate_router_migration_recomputed_tokens')).find((v) => v.metricName?.endsWith('_sum'))?.value).toBe(67);
    expect(set.unitRows().map((u) => [u.activeRequests, u.activeBlocks, u.prefillTokens])).toEqual([[0, 0, 0]]);
  });

  it('migrates on an engine abort that is not the request\'s fault, keeping that worker; a spent limit ends with the error', async () => {
    const reply = (b: { input_ids: number[] }) => Array.from({ length: 10 }, (_, i) => 2000 + b.input_ids.length - 64 + i);
    const a = await agent({ migrationLimit: 0 }, { reply, abortAfter: 2 });
    const b = await agent({ migrationLimit: 0 }, { reply, abortAfter: 2 });
    // The frontend's override wins over the cards: one migration.
    const { set, registry } = workerSet({ migrationLimit: 1 });
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(1);
    const d = set.dispatch({ model: 'test-model', requestId: 'ab', tokenIds: p });
    const tokens: number[] = [];
    const it = (async () => {
      for await (const c of d.engine.generate({ requestId: 'ab', tokenIds: p, sampling: { maxNewTokens: 8 } })) {
        if (tokens.length === 0) d.firstToken();
        tokens.push(...c.tokenIds);
        if (c.finishReason) return c.finishReason;
      }
      return null;
    })();
    // The second leg aborts too, with no migration left: the abort reaches the caller.
    expect(await it).toMatchObject({ type: 'abort' });
    d.finish('error');
    expect(tokens).toEqual([2000, 2001, 2002, 2003]);
    expect(set.readyCount('test-model')).toBe(2);
    expect((await metric(registry, 'kvgate_router_migrations_total')).map((v) => [v.labels.cause, v.value])).toEqual([['engine_abort', 1]]);
    expect(set.unitRows().map((u) => u.activeRequests)).toEqual([0, 0]);
  });

  it('approximate mode ignores KV events and predicts caches from its own decisions', async () => {
    const a = await agent();
    const b = await agent();
    const { set } = workerSet({ kvEvents: false });
    set.addAgent(a.url);
    set.addAgent(b.url);
    await set.waitForWorkers(2, 5000);
    a.store(prompt(300));
    const p = prompt(900);
    const first = (await run(set, p)).worker;
    for (let i = 0; i < 4; i++) expect((await run(set, p)).worker).toBe(first);
    expect(set.routerStats('test-model')).toMatchObject({ eventsApplied: 0, approxBlocks: 4 });
    expect(cached(set, a.url) + cached(set, b.url)).toBe(4);
  });

  it('decides approximate or exact routing per worker, whichever is admitted first', async () => {
    // The first worker publishes no KV events, the second does: the second's events still
    // steer routing, and only the first gets predicted cache entries.
    const quiet = await agent({ kvEvents: false });
    const loud = await agent();
    const { set } = workerSet();
    set.addAgent(quiet.url);
    await set.waitForWorkers(1, 5000);
    set.addAgent(loud.url);
    await set.waitForWorkers(2, 5000);
    const p = prompt(4000);
    loud.store(p);
    await waitFor(() => cached(set, loud.url) === 4, 'the KV events of the second worker applied');
    for (let i = 0; i < 3; i++) expect((await run(set, p)).worker).toBe(loud.url);
    expect(set.routerStats('test-model')).toMatchObject({ eventsApplied: 1, approxBlocks: 0 });
    // The quiet worker's events are ignored. A fresh prompt goes to it (the tie goes to the
    // smaller cache), and is predicted as cached there: it goes there again.
    quiet.store(prompt(7000));
    const q = prompt(20_000);
    expect((await run(set, q)).worker).toBe(quiet.url);
    expect((await run(set, q)).worker).toBe(quiet.url);
    expect(set.routerStats('test-model')).toMatchObject({ eventsApplied: 1, approxBlocks: 4 });
    expect(cached(set, quiet.url)).toBe(4);
  });

  it("a reset clears the ranks its relay's batches named by their own dp_rank", async () => {
    const a = await agent({ dpSize: 2 });
    const { set } = workerSet();
    set.addAgent(a.url);
    await set.waitForWorkers(1, 5000);
    // Relay rank 0 carries a batch that says dp_rank 1: its blocks land on rank 1.
    a.store(prompt(100), 0, 1);
    a.store(prompt(300), 0, 0);
    await waitFor(() => cached(set, a.url) === 8, 'both batches applied');
    expect(set.unitRows().map((u) => [u.rank, u.cachedBlocks])).toEqual([[0, 4], [1, 4]]);
    // The relay resets rank 0 (its engine restarted): nothing it sent may linger.
    a.stored.length = 0;
    a.engineRestarted(0);
    await waitFor(() => cached(set, a.url) === 0, 'everything relay rank 0 sent is cleared');
    expect(set.routerStats('test-model')!.blocks).toBe(0);
  });

  it('round-robin and least-loaded spread requests over the workers', async () => {
    const a = await agent();
    const b = await agent();
    const rr = workerSet({ mode: 'round-robin' }).set;
    rr.addAgent(a.url);
    rr.addAgent(b.url);
    await rr.waitForWorkers(2, 5000);
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push((await run(rr, prompt(1))).worker);
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen.slice(2)).toEqual(seen.slice(0, 2));

    const ll = workerSet({ mode: 'least-loaded' }).set;
    ll.addAgent(a.url);
    ll.addAgent(b.url);
    await ll.waitForWorkers(2, 5000);
    // Two requests in flight at once land on different workers.
    const d1 = ll.dispatch({ model: 'test-model', requestId: '1', tokenIds: prompt(1) });
    const d2 = ll.dispatch({ model: 'test-model', requestId: '2', tokenIds: prompt(1) });
    expect(d1.worker).not.toBe(d2.worker);
    d1.finish('cancelled');
    d2.finish('cancelled');
    expect(ll.unitRows().map((u) => u.activeRequests)).toEqual([0, 0]);
  });

  it('routes plain SGLang HTTP servers approximately, and moves a request off one that is down', async () => {
    const mockers = await Promise.all([0, 1].map(() => startMocker({ port: 0, pageSize: 16, speedupRatio: 50, servedModelName: 'test-model' })));
    cleanups.push(async () => void (await Promise.all(mockers.map((m) => m.close()))));
    const { set, registry } = workerSet({ penaltyMs: 200 });
    for (const m of mockers) set.addEngine(m.url);
    await set.waitForWorkers(2, 10_000);
    expect(set.routerStats('test-model')).toMatchObject({ candidates: 2 });
    const p = prompt(1000, 80);
    const first = (await run(set, p)).worker;
    // Approximate: the router remembers where it sent the prompt.
    for (let i = 0; i < 3; i++) expect((await run(set, p)).worker).toBe(first);
    expect(set.routerStats('test-model')!.approxBlocks).toBe(5);

    // That engine goes away: the request moves to the other one, which takes over.
    await mockers.find((m) => m.url === first)!.close();
    const moved = await run(set, p);
    expect(moved.worker).not.toBe(first);
    expect(moved.tokens).toHaveLength(4);
    expect((await metric(registry, 'kvgate_router_retries_total'))[0]!.value).toBe(1);
    expect(set.workers().find((w) => w.name === first)).toMatchObject({ healthy: false });
    // Its probe keeps failing: it stays out.
    await new Promise((r) => setTimeout(r, 500));
    expect(set.readyCount('test-model')).toBe(1);
  });
});
