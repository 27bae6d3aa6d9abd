// The fleet simulator: N engines (the mocker's RankScheduler: radix cache with LRU eviction,
// continuous batching with chunked prefill, the polynomial timing model) on one virtual clock,
// a routing policy in front, and a workload feeding arrivals. No HTTP, no processes: a run of
// thousands of requests over thousands of engines takes seconds to tens of seconds.

import { RankScheduler } from '../../src/mocker/scheduler.js';
import { EngineRequest, type SamplingRules } from '../../src/mocker/request.js';
import { polynomialTiming } from '../../src/mocker/timing.js';
import { VirtualClock } from './clock.js';
import { makePolicy, policyLabel, type FleetView, type PolicySpec, type SimRequest } from './policies.js';
import type { Arrival, Workload } from '../../src/bench/workloads.js';
import { addon } from '../../src/native/addon.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { InflightPrefills } from '../../src/router/inflight_prefills.js';

// holdSharedPrefill: the shared part a prompt must have beyond what its engine has stored to
// wait (kvgate router's default --cache-threshold, kvgate serve's --router-prefill-wait-share).
const HOLD_MIN_SHARE = ROUTING_DEFAULTS.prefillWaitShare;

export interface EngineSpec {
  pageSize: number;
  maxTotalTokens: number; // KV capacity per engine, tokens
  maxRunningRequests: number;
  chunkedPrefillSize: number;
  maxPrefillTokens: number;
  speedupRatio: number;
}

// The mocker's defaults (src/config.ts), page size 16 as `kvgate serve` gives its mockers.
export const ENGINE_DEFAULTS: EngineSpec = {
  pageSize: 16,
  maxTotalTokens: 262_144,
  maxRunningRequests: 1024,
  chunkedPrefillSize: 8192,
  maxPrefillTokens: 16_384,
  speedupRatio: 1,
};

export interface SimOptions {
  workers: number;
  engine: EngineSpec;
  policy: PolicySpec;
  seed?: number;
  // Virtual ms between load-imbalance samples.
  sampleMs?: number;
  // Called at each sample with the fleet (diagnostics: queues, KV over time).
  observe?: (fleet: FleetView) => void;
}

export interface SimResult {
  policy: string;
  workers: number;
  requests: number;
  promptTokens: number;
  cachedTokens: number;
  hitRate: number;
  ttftP50: number; // ms
  ttftP99: number;
  // Output tokens per second of virtual time, first arrival to last finish.
  throughput: number;
  makespanMs: number;
  // Mean over samples of (max / mean active requests per engine), while any is active.
  imbalance: number;
  // Requests per engine: the largest and smallest share one engine took, over the fair share 1/N
  // (the burst check; starvation).
  maxShare: number;
  minShareOfFair: number;
  // Multi-turn: the share of later turns routed to the engine of the conversation's last turn.
  turnAffinity: number;
  wallSeconds: number;
  // holdSharedPrefill: requests that waited for a prefill they share.
  held: number;
  // Per-request record, for tests and the burst check.
  perRequest: { worker: number; cached: number; isl: number; ttft: number; session?: number; turn?: number }[];
}

// What the simulator asks of every request: exactly maxNewTokens output tokens.
export const RULES = (maxNewTokens: number): SamplingRules => ({
  maxNewTokens,
  minNewTokens: 0,
  ignoreEos: true,
  stopTokenIds: null,
  stopStrings: null,
  noStopTrim: false,
  skipSpecialTokens: true,
  streamInterval: 1 << 30,
  samplingSeed: null,
});
const NO_SINK = { output() {} };

export function simulate(workload: Workload, o: SimOptions): SimResult {
  const wall0 = performance.now();
  const clock = new VirtualClock();
  const e = o.engine;
  const timing = polynomialTiming({ speedupRatio: e.speedupRatio, decodeSpeedupRatio: 1, kvBytesPerToken: 0, kvTransferBandwidth: 0 });
  const engines: RankScheduler[] = [];
  const fleet: FleetView = { clock, workers: o.workers, blockSize: e.pageSize, engines, timing, capacityTokens: e.maxTotalTokens };
  const policy = makePolicy({ seed: o.seed ?? 1, ...o.policy }, fleet);
  const active = new Int32Array(o.workers);
  const served = new Int32Array(o.workers);
  const live = new Map<EngineRequest, { sim: SimRequest; arrival: Arrival; prefilled?: () => void }>();
  // holdSharedPrefill: prompts sent and not yet stored per the policy's events, per engine.
  const hold = o.policy.holdSharedPrefill && policy.storedBlocks ? { prefills: new InflightPrefills(), stored: policy.storedBlocks.bind(policy) } : null;
  if (hold) policy.onEventsApplied = (w) => hold.prefills.check(w, (h) => hold.stored(w, h));
  let held = 0;
  const perRequest: SimResult['perRequest'] = [];
  let outputTokens = 0;
  let firstArrival = Infinity;
  let lastFinish = 0;
  let outstanding = 0;
  let moreArrivals = true;

  for (let w = 0; w < o.workers; w++) {
    engines.push(
      new RankScheduler(
        {
          rank: 0,
          pageSize: e.pageSize,
          maxTotalTokens: e.maxTotalTokens,
          maxRunningRequests: e.maxRunningRequests,
          chunkedPrefillSize: e.chunkedPrefillSize,
          maxPrefillTokens: e.maxPrefillTokens,
          eosTokenId: 0,
          withText: false,
          mode: 'null',
          cacheEnabled: true,
          timing,
          clock,
        },
        {
          events: (_rank, events) => policy.kvEvents(w, events),
          observer: {
            firstToken: (req, ttftSeconds) => {
              const r = live.get(req)!;
              perRequest[r.sim.id]!.ttft = ttftSeconds * 1000;
              policy.firstToken(r.sim);
            },
            interToken() {},
            finished() {},
          },
          ended: (req) => finished(req),
        },
      ),
    );
  }

  const capacityPages = Math.floor(e.maxTotalTokens / e.pageSize);
  let nextId = 0;
  const arrive = (a: Arrival) => {
    // A request that can never fit one engine's KV would wait forever: cut its prompt.
    const maxIsl = (capacityPages - Math.ceil(a.outputLen / e.pageSize) - 1) * e.pageSize;
    const tokens = a.tokens.length > maxIsl ? a.tokens.slice(0, maxIsl) : a.tokens;
    const sim: SimRequest = { id: nextId++, tokens, u32: Uint32Array.from(tokens), outputLen: a.outputLen, worker: -1 };
    perRequest.push({ worker: -1, cached: 0, isl: tokens.length, ttft: NaN, ...(a.session !== undefined ? { session: a.session, turn: a.turn } : {}) });
    firstArrival = Math.min(firstArrival, clock.now());
    const w = policy.route(sim);
    sim.worker = w;
    perRequest[sim.id]!.worker = w;
    active[w]!++;
    served[w]!++;
    outstanding++;
    const req = new EngineRequest({ rid: String(sim.id), inputIds: tokens, rules: RULES(a.outputLen), stream: false, sink: NO_SINK, seed: o.seed ?? 1, arrivalMs: clock.now() });
    const entry: { sim: SimRequest; arrival: Arrival; prefilled?: () => void } = { sim, arrival: a };
    live.set(req, entry);
    if (!hold) return engines[w]!.submit(req);
    const hashes = addon.blockHashes(sim.u32, e.pageSize);
    const send = () => {
      // Started at once when nothing else is in flight on its engine (as kvgate router's KvPolicy.sent).
      if (hashes.length > 0 && hold.stored(w, hashes) < hashes.length) entry.prefilled = hold.prefills.add(w, hashes, active[w] === 1);
      engines[w]!.submit(req);
    };
    const blocking = hashes.length === 0 ? null : hold.prefills.blocking(w, hashes, () => hold.stored(w, hashes), Math.floor((HOLD_MIN_SHARE * tokens.length) / e.pageSize));
    if (!blocking) return send();
    // Waits (once) for the prefill it shares, or the pending timeout.
    held++;
    let sent = false;
    const release = () => {
      if (sent) return;
      sent = true;
      send();
    };
    blocking.waiters.push(release);
    clock.at(clock.now() + ROUTING_DEFAULTS.pendingTimeoutMs, release);
  };
  const finished = (req: EngineRequest) => {
    const r = live.get(req)!;
    live.delete(req);
    active[r.sim.worker]!--;
    outstanding--;
    outputTokens += req.outputIds.length;
    lastFinish = clock.now();
    perRequest[r.sim.id]!.cached = req.cachedTokens;
    policy.finished(r.sim);
    r.prefilled?.();
    const next = workload.followUp?.(r.arrival, req.outputIds, clock.now());
    if (next) {
      outstanding++; // held until it arrives
      clock.at(next.at, () => {
        outstanding--;
        arrive(next);
      });
    }
  };
  const pull = () => {
    const a = workload.next();
    if (!a) {
      moreArrivals = false;
      return;
    }
    clock.at(a.at, () => {
      arrive(a);
      pull();
    });
  };
  pull();

  // Load imbalance: max/mean active requests per engine, sampled while work is in flight.
  const sampleMs = o.sampleMs ?? 100;
  let imbalanceSum = 0;
  let samples = 0;
  const sample = () => {
    let max = 0;
    let sum = 0;
    for (let w = 0; w < o.workers; w++) {
      const a = active[w]!;
      sum += a;
      if (a > max) max = a;
    }
    o.observe?.(fleet);
    if (sum > 0) {
      imbalanceSum += max / (sum / o.workers);
      samples++;
    }
    if (outstanding > 0 || moreArrivals) clock.at(clock.now() + sampleMs, sample);
  };
  clock.at(sampleMs, sample);

  clock.run();
  policy.close();
  if (outstanding !== 0 || live.size !== 0) throw new Error(`simulation ended with ${outstanding} request(s) outstanding`);
  // Every engine gave back what its requests held.
  engines.forEach((eng, w) => {
    if (!eng.idle || eng.cache.activePages !== 0) throw new Error(`engine ${w} ended holding ${eng.cache.activePages} KV pages (idle: ${eng.idle})`);
  });

  let promptTokens = 0;
  let cachedTokens = 0;
  const ttfts = new Float64Array(perRequest.length);
  perRequest.forEach((r, i) => {
    promptTokens += r.isl;
    cachedTokens += r.cached;
    ttfts[i] = r.ttft;
  });
  ttfts.sort();
  const pct = (p: number) => (ttfts.length ? ttfts[Math.min(ttfts.length - 1, Math.floor(p * ttfts.length))]! : NaN);
  // Turns in order per conversation (a turn is sent after the previous one finished).
  const lastWorker = new Map<number, number>();
  let laterTurns = 0;
  let stayed = 0;
  for (const r of perRequest) {
    if (r.session === undefined) continue;
    const prev = lastWorker.get(r.session);
    if (prev !== undefined) {
      laterTurns++;
      if (prev === r.worker) stayed++;
    }
    lastWorker.set(r.session, r.worker);
  }
  const makespanMs = lastFinish - (Number.isFinite(firstArrival) ? firstArrival : 0);
  return {
    policy: policyLabel(o.policy),
    workers: o.workers,
    requests: perRequest.length,
    promptTokens,
    cachedTokens,
    hitRate: promptTokens ? cachedTokens / promptTokens : 0,
    ttftP50: pct(0.5),
    ttftP99: pct(0.99),
    throughput: makespanMs > 0 ? (outputTokens * 1000) / makespanMs : 0,
    makespanMs,
    imbalance: samples ? imbalanceSum / samples : 1,
    maxShare: perRequest.length ? Math.max(...served) / perRequest.length : 0,
    minShareOfFair: perRequest.length ? (Math.min(...served) * o.workers) / perRequest.length : 0,
    turnAffinity: laterTurns ? stayed / laterTurns : NaN,
    wallSeconds: (performance.now() - wall0) / 1000,
    held,
    perRequest,
  };
}
