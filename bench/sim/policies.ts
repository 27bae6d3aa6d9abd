// Routing policies of the simulator. The native ones go through the same KvRouter binding the
// frontend uses (src/native/addon.ts; src/router/kv_worker_set.ts drives it the same way): one
// unit per simulated engine, route() per arrival, markPrefillDone() at the first token, free() at
// the end, and, for exact KV routing, the engines' KV events applied `eventDelayMs` after the
// engine emitted them. The oracle routes on the engines' true state instead.

import { addon, type KvRouter, type RouterPolicy } from '../../src/native/addon.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import type { KvEvent } from '../../src/mocker/radix_cache.js';
import type { RankScheduler } from '../../src/mocker/scheduler.js';
import type { TimingModel } from '../../src/mocker/timing.js';
import type { VirtualClock } from './clock.js';
import { CacheAwarePolicy } from '../../src/sgl_router/policies.js';
import { COMMANDS } from '../../src/config.js';

export interface SimRequest {
  readonly id: number;
  readonly tokens: number[];
  readonly u32: Uint32Array;
  readonly outputLen: number; // max new tokens: the KV the engine reserves beyond the prompt
  worker: number;
}

// What a policy may see of the fleet (the oracle reads the engines; the others only the clock).
export interface FleetView {
  readonly clock: VirtualClock;
  readonly workers: number;
  readonly blockSize: number;
  readonly engines: readonly RankScheduler[];
  readonly timing: TimingModel;
  readonly capacityTokens: number;
}

export interface Policy {
  readonly name: string;
  route(req: SimRequest): number;
  firstToken(req: SimRequest): void;
  finished(req: SimRequest): void;
  // The engine emitted these events now (the policy decides when it sees them).
  kvEvents(worker: number, events: readonly KvEvent[]): void;
  // Exact KV routing: leading blocks of a prompt (local block hashes) the policy's index shows
  // stored on the worker, and a hook run after it applied a worker's events.
  storedBlocks?(worker: number, hashes: BigUint64Array): number;
  onEventsApplied?: (worker: number) => void;
  close(): void;
}

export type PolicyKind = RouterPolicy | 'kv-approx' | 'kv-pending' | 'kv-pressure' | 'oracle' | 'sglang-cache-aware';
export const POLICY_KINDS: readonly PolicyKind[] = ['oracle', 'kv', 'kv-pending', 'kv-approx', 'sglang-cache-aware', 'round-robin', 'random', 'power-of-two', 'least-loaded'];

export interface PolicySpec {
  kind: PolicyKind;
  overlapWeight?: number; // default: the router's (1)
  temperature?: number; // default: the router's (0)
  eventDelayMs?: number; // exact KV routing: engine emit -> index, virtual ms (default 0)
  pendingWeight?: number; // kv-pending: the router's pendingWeight (default ROUTING_DEFAULTS')
  pendingTimeoutMs?: number;
  // Exact KV routing: a prompt sharing a long prefix with one its engine is still prefilling
  // waits for that prefill to be stored (kvgate router's kv policy, src/router/inflight_prefills.ts).
  holdSharedPrefill?: boolean;
  // The weight of the prompt's own uncached blocks (the router's ownWeight; default 0, the cost
  // without it; the product's is ROUTING_DEFAULTS.ownWeight). kv-pressure computes it on the
  // TypeScript side instead (the prototype of the native term, kept to compare against it).
  ownWeight?: number;
  // kv-pressure: the weight of each block a unit's KV would hold beyond its capacity.
  pressureWeight?: number;
  // How much the own weight grows per prompt the fleet has before its first token, per unit
  // (the router's ownQueueWeight; default 0: a fixed own weight). kv-pressure computes it on
  // the TypeScript side (its prototype).
  ownQueueWeight?: number;
  seed?: number;
}

// The product's kv routing (kvgate serve's defaults, src/router/routing_defaults.ts): the
// kv-pending policy with these knobs.
export const PRODUCT_KNOBS = {
  overlapWeight: ROUTING_DEFAULTS.overlapWeight,
  ownWeight: ROUTING_DEFAULTS.ownWeight,
  ownQueueWeight: ROUTING_DEFAULTS.ownQueueWeight,
  holdSharedPrefill: ROUTING_DEFAULTS.prefillWaitShare < 1,
};

export function policyLabel(s: PolicySpec): string {
  const knobs: string[] = [];
  if (s.overlapWeight !== undefined) knobs.push(`w=${s.overlapWeight}`);
  if (s.temperature !== undefined) knobs.push(`T=${s.temperature}`);
  if (s.pendingWeight !== undefined) knobs.push(`pw=${s.pendingWeight}`);
  if (s.pendingTimeoutMs !== undefined) knobs.push(`pt=${s.pendingTimeoutMs}`);
  if (s.ownWeight !== undefined) knobs.push(`own=${s.ownWeight}`);
  if (s.pressureWeight !== undefined) knobs.push(`kvw=${s.pressureWeight}`);
  if (s.ownQueueWeight) knobs.push(`queue=${s.ownQueueWeight}`);
  if (s.holdSharedPrefill) knobs.push('hold');
  return knobs.length ? `${s.kind} (${knobs.join(', ')})` : s.kind;
}

export function makePolicy(spec: PolicySpec, fleet: FleetView): Policy {
  if (spec.kind === 'oracle') return new OraclePolicy(fleet);
  if (spec.kind === 'sglang-cache-aware') return new SglangCacheAwarePolicy(fleet);
  return spec.kind === 'kv-pressure' ? new KvPressurePolicy(spec, fleet) : new NativePolicy(spec, fleet);
}

// The mocker's events as the index takes them: runs of chained BlockStored (one per page) become
// one applyStored; AllBlocksCleared clears the unit.
export function applyKvEvents(router: KvRouter, worker: number, events: readonly KvEvent[]): void {
  let i = 0;
  while (i < events.length) {
    const e = events[i]!;
    if (e.type === 'BlockRemoved') {
      router.applyRemoved(worker, 0, BigInt64Array.from(e.hashes));
      i++;
    } else if (e.type === 'AllBlocksCleared') {
      router.clearWorker(worker, 0);
      i++;
    } else {
      let j = i + 1;
      while (j < events.length) {
        const n = events[j]!;
        if (n.type !== 'BlockStored' || n.parent !== (events[j - 1] as { hash: bigint }).hash) break;
        j++;
      }
      const run = events.slice(i, j) as Extract<KvEvent, { type: 'BlockStored' }>[];
      const tokens = new Uint32Array(run.reduce((s, r) => s + r.tokens.length, 0));
      let at = 0;
      for (const r of run) {
        tokens.set(r.tokens, at);
        at += r.tokens.length;
      }
      router.applyStored(worker, 0, e.parent, tokens, BigInt64Array.from(run.map((r) => r.hash)));
      i = j;
    }
  }
}

// The oracle's queued prompts, as holds under engine hashes no engine uses: a unit holds a
// block under several engine hashes, so these holds sit beside the exact ones and leave with
// applyRemoved without touching what the engine's own events stored.
const PENDING_BASE = 1n << 61n;
function pendingHold(router: KvRouter, blockSize: number, req: SimRequest, worker: number): BigInt64Array {
  const blocks = Math.floor(req.u32.length / blockSize);
  if (blocks === 0) return new BigInt64Array(0);
  if (blocks >= 1 << 20) throw new Error(`request ${req.id}: ${blocks} blocks exceed the pending-hash space`);
  const hashes = new BigInt64Array(blocks);
  const base = PENDING_BASE + (BigInt(req.id) << 20n);
  for (let b = 0; b < blocks; b++) hashes[b] = base + BigInt(b);
  router.applyStored(worker, 0, null, req.u32.subarray(0, blocks * blockSize), hashes);
  return hashes;
}

class NativePolicy implements Policy {
  readonly name: string;
  protected readonly router: KvRouter;
  private readonly out = new Uint32Array(3);
  private readonly exact: boolean;
  private readonly delay: number;
  private readonly match = { workers: new Uint32Array(0), ranks: new Uint32Array(0), depths: new Uint32Array(0) };
  onEventsApplied?: (worker: number) => void;

  constructor(
    protected readonly spec: PolicySpec,
    protected readonly fleet: FleetView,
  ) {
    this.name = policyLabel(spec);
    const prototype = spec.kind === 'kv-pressure';
    const pending = spec.kind === 'kv-pending' || prototype;
    const kv = pending || spec.kind === 'kv' || spec.kind === 'kv-approx';
    this.exact = pending || spec.kind === 'kv';
    this.delay = spec.eventDelayMs ?? 0;
    this.router = new addon.KvRouter({
      blockSize: fleet.blockSize,
      policy: kv ? 'kv' : (spec.kind as RouterPolicy),
      approx: spec.kind === 'kv-approx',
      seed: spec.seed ?? 1,
      ...(spec.overlapWeight !== undefined ? { overlapWeight: spec.overlapWeight } : {}),
      ...(spec.temperature !== undefined ? { temperature: spec.temperature } : {}),
      // kv-pending: the native pending prefixes (kv_router.h); kv keeps them off.
      ...(pending ? { pendingWeight: spec.pendingWeight ?? ROUTING_DEFAULTS.pendingWeight, pendingTimeoutMs: spec.pendingTimeoutMs ?? ROUTING_DEFAULTS.pendingTimeoutMs } : {}),
      ...(spec.ownWeight !== undefined && !prototype ? { ownWeight: spec.ownWeight } : {}),
      ...(spec.ownQueueWeight !== undefined && !prototype ? { ownQueueWeight: spec.ownQueueWeight } : {}),
    });
    for (let w = 0; w < fleet.workers; w++) this.router.addWorker(w, 0);
    if (this.exact) this.storedBlocks = (worker, hashes) => this.stored(worker, hashes);
  }

  storedBlocks?: (worker: number, hashes: BigUint64Array) => number;

  private stored(worker: number, hashes: BigUint64Array): number {
    const m = this.match;
    if (m.workers.length < this.fleet.workers) {
      const n = this.fleet.workers;
      [m.workers, m.ranks, m.depths] = [new Uint32Array(n), new Uint32Array(n), new Uint32Array(n)];
    }
    const n = this.router.findMatches(hashes, m.workers, m.ranks, m.depths);
    for (let i = 0; i < n; i++) if (m.workers[i] === worker) return m.depths[i]!;
    return 0;
  }

  route(req: SimRequest): number {
    if (!this.router.route(req.u32, req.id, this.out, undefined, undefined, this.fleet.clock.now())) throw new Error('no candidate');
    return this.out[0]!;
  }

  firstToken(req: SimRequest): void {
    this.router.markPrefillDone(req.id);
  }

  finished(req: SimRequest): void {
    this.router.free(req.id);
  }

  kvEvents(worker: number, events: readonly KvEvent[]): void {
    if (!this.exact) return;
    const c = this.fleet.clock;
    c.at(c.now() + this.delay, () => {
      applyKvEvents(this.router, worker, events);
      this.onEventsApplied?.(worker);
    });
  }

  close(): void {
    this.router.close();
  }
}

// kv-pressure: the kv router's cost (kv-pending's, read off score()) plus two terms the
// oracle has and the native cost lacks, for traffic where prefill dominates:
//   own    = ownWeight * (the prompt's own uncached blocks, beyond what the unit caches or
//            has pending): the compute the request takes from the fleet, apart from the wait
//            (the native cost weighs the prompt's uncached blocks like any block of backlog);
//   kvOver = pressureWeight * max(0, active_blocks + own uncached blocks - KV capacity in
//            blocks): a unit whose in-flight requests already fill its KV can take a new
//            prefix only by queueing it (or evicting prefixes other requests will want).
// With both weights 0 it picks what kv-pending picks, up to the draw among tied units. The
// pick is the lowest total (ties: the smallest tree, then at random); route() then records it
// on that unit (pending blocks included) with every other unit marked busy. The own term is now
// the router's own (RouterConfig::own_weight, the product's default): this prototype stays to
// compare the native term against (`npm run sim -- own`) and for the KV-capacity term
// (bench/README.md, "Prefill-heavy traffic").
class KvPressurePolicy extends NativePolicy {
  private readonly n: number;
  private readonly outW: Uint32Array;
  private readonly outR: Uint32Array;
  private readonly outO: Uint32Array;
  private readonly c0: Float64Array;
  private readonly c1: Float64Array;
  private readonly costs: Float64Array;
  private readonly capBlocks: number;
  private readonly reserved: Float64Array; // output blocks of each unit's requests in flight
  private readonly prefilling = new Set<number>(); // requests routed and before their first token, fleet-wide
  private seed: number;

  constructor(spec: PolicySpec, fleet: FleetView) {
    super(spec, fleet);
    this.seed = (spec.seed ?? 1) >>> 0;
    this.n = fleet.workers;
    [this.outW, this.outR, this.outO] = [new Uint32Array(this.n), new Uint32Array(this.n), new Uint32Array(this.n)];
    [this.c0, this.c1, this.costs] = [new Float64Array(this.n), new Float64Array(this.n), new Float64Array(this.n)];
    this.capBlocks = Math.floor(fleet.capacityTokens / fleet.blockSize);
    this.reserved = new Float64Array(this.n);
  }

  override firstToken(req: SimRequest): void {
    super.firstToken(req);
    this.prefilling.delete(req.id);
  }

  override finished(req: SimRequest): void {
    super.finished(req);
    this.prefilling.delete(req.id);
    this.reserved[req.worker] -= Math.ceil(req.outputLen / this.fleet.blockSize);
  }

  // mulberry32, for ties only (the native generator's draws are not reachable from here).
  private rand(): number {
    let t = (this.seed = (this.seed + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  override route(req: SimRequest): number {
    const r = this.router;
    const bs = this.fleet.blockSize;
    const w = this.spec.overlapWeight ?? ROUTING_DEFAULTS.overlapWeight;
    const own = (this.spec.ownWeight ?? 0) * (1 + ((this.spec.ownQueueWeight ?? 0) * this.prefilling.size) / this.n);
    const kvw = this.spec.pressureWeight ?? 0;
    const isl = req.u32.length;
    // cost(w) = w * prefill_blocks + rest: two scores give both parts.
    r.score(req.u32, this.outW, this.outR, this.outO, this.c1, 1);
    r.score(req.u32, this.outW, this.outR, this.outO, this.c0, 0);
    const units = r.units();
    let best = -1;
    let ties = 0;
    for (let i = 0; i < this.n; i++) {
      const u = units[i]!;
      if (u.worker !== this.outW[i]) throw new Error('score() and units() disagree on order');
      const prefill = this.c1[i]! - this.c0[i]!;
      // prefill = (backlog - shared + isl - overlap*bs) / bs, shared = the backlog's pending
      // part this prompt shares: what is left of the prompt to compute here.
      const newTokens = Math.max(0, isl - this.outO[i]! * bs);
      const shared = Math.max(0, u.prefillTokens + newTokens - prefill * bs);
      const ownBlocks = Math.max(0, newTokens - shared) / bs;
      let cost = w * prefill + this.c0[i]! + own * ownBlocks;
      const over = u.activeBlocks + this.reserved[i]! + ownBlocks - this.capBlocks;
      if (over > 0) cost += kvw * over;
      this.costs[i] = cost;
      // Equal within rounding (the parts come back as differences): the smaller tree, then
      // uniformly at random (reservoir), as the native pick.
      const d = best < 0 ? -1 : cost - this.costs[best]!;
      const eps = 1e-9 * Math.max(1, Math.abs(cost));
      if (best < 0 || d < -eps || (Math.abs(d) <= eps && u.cachedBlocks < units[best]!.cachedBlocks)) {
        best = i;
        ties = 1;
      } else if (Math.abs(d) <= eps && u.cachedBlocks === units[best]!.cachedBlocks && this.rand() * ++ties < 1) {
        best = i;
      }
    }
    const pick = this.outW[best]!;
    for (let i = 0; i < this.n; i++) if (i !== best) r.setBusy(this.outW[i]!, true);
    const got = super.route(req);
    for (let i = 0; i < this.n; i++) if (i !== best) r.setBusy(this.outW[i]!, false);
    if (got !== pick) throw new Error(`kv-pressure: route() took ${got}, not ${pick}`);
    this.reserved[best] += Math.ceil(req.outputLen / bs);
    this.prefilling.add(req.id);
    return got;
  }
}

// SGLang's cache_aware (sglang-router's and smg's default policy) with sglang-router's defaults,
// as `kvgate router --policy cache_aware` runs it (src/sgl_router/policies.ts): a tree of the
// prompts it routed, no KV events; load is its count of requests in flight per engine. The tree
// matches characters, and a prompt's text here is its tokens, two characters each (the policy
// compares ratios, so the spelling does not change a decision). Its eviction runs on the virtual
// clock, every --eviction-interval-secs.
class SglangCacheAwarePolicy implements Policy {
  readonly name = 'sglang-cache-aware';
  private readonly policy: CacheAwarePolicy;
  private readonly engines: { id: string; load: number }[];
  private readonly evictEveryMs: number;
  private nextEvictMs: number;

  constructor(private readonly fleet: FleetView) {
    const o = COMMANDS.router.options;
    this.evictEveryMs = o.evictionIntervalSecs.default * 1000;
    this.nextEvictMs = this.evictEveryMs;
    const config = {
      cacheThreshold: o.cacheThreshold.default,
      balanceAbsThreshold: o.balanceAbsThreshold.default,
      balanceRelThreshold: o.balanceRelThreshold.default,
      evictionIntervalMs: 0,
      maxTreeSize: o.maxTreeSize.default,
    };
    const nothing = () => {};
    this.policy = new CacheAwarePolicy(config, { cacheHit: nothing, cacheMiss: nothing, balanced: nothing });
    this.engines = Array.from({ length: fleet.workers }, (_, w) => ({ id: String(w), load: 0 }));
  }

  route(req: SimRequest): number {
    const now = this.fleet.clock.now();
    if (now >= this.nextEvictMs) {
      this.policy.evict();
      this.nextEvictMs = now + this.evictEveryMs;
    }
    let text = '';
    for (const t of req.u32) text += String.fromCharCode(0x100 + (t & 0x3fff), 0x100 + (t >>> 14));
    const engine = this.policy.select(this.engines, text);
    engine.load++;
    return Number(engine.id);
  }

  firstToken(): void {}

  finished(req: SimRequest): void {
    this.engines[req.worker]!.load--;
  }

  kvEvents(): void {}

  close(): void {
    this.policy.close();
  }
}

// The ceiling: knows every engine's true cache (its events applied the moment they happen) and
// the prompts already queued on each engine (they will be cached by the time a new request is
// scheduled there), and picks the engine of least estimated time to first token plus the
// prefill compute the request takes from the fleet. The TTFT estimate: the engine's prefill
// backlog plus this prompt's uncached part, one decode step if the engine is decoding, and a
// wait when the engine's KV cannot hold the request. It is a heuristic ceiling, not a proven
// one: where its TTFT estimate trades a cache hit for a shorter queue, a policy can cache more.
class OraclePolicy implements Policy {
  readonly name = 'oracle';
  private readonly truth: KvRouter;
  private readonly backlog: Float64Array; // uncached prompt tokens routed, before first token
  private readonly reserved: Float64Array; // KV tokens routed requests will take, before admission
  private readonly mine = new Map<number, { uncached: number; need: number; holds: BigInt64Array }>();
  private readonly outW: Uint32Array;
  private readonly outR: Uint32Array;
  private readonly outD: Uint32Array;
  private readonly overlap: Uint32Array;

  constructor(private readonly fleet: FleetView) {
    this.truth = new addon.KvRouter({ blockSize: fleet.blockSize });
    for (let w = 0; w < fleet.workers; w++) this.truth.addWorker(w, 0);
    this.backlog = new Float64Array(fleet.workers);
    this.reserved = new Float64Array(fleet.workers);
    this.outW = new Uint32Array(fleet.workers + 8);
    this.outR = new Uint32Array(fleet.workers + 8);
    this.outD = new Uint32Array(fleet.workers + 8);
    this.overlap = new Uint32Array(fleet.workers);
  }

  route(req: SimRequest): number {
    const f = this.fleet;
    const bs = f.blockSize;
    const isl = req.u32.length;
    const n = this.truth.findMatches(req.u32, this.outW, this.outR, this.outD);
    for (let i = 0; i < n; i++) this.overlap[this.outW[i]!] = this.outD[i]!;
    let best = -1;
    let bestCost = Infinity;
    let bestActive = Infinity;
    let bestUncached = isl;
    const base = f.timing.prefillMs(0);
    for (let w = 0; w < f.workers; w++) {
      const e = f.engines[w]!;
      // The engine always computes at least the last prompt token.
      const cached = Math.min(this.overlap[w]! * bs, isl - 1);
      const uncached = isl - cached;
      // Its own wait, plus the compute its uncached part takes from the fleet (so a hit that
      // costs a short wait beats a recompute elsewhere).
      let cost = f.timing.prefillMs(this.backlog[w]! + uncached) + (f.timing.prefillMs(uncached) - base);
      if (e.numRunning > 0) cost += f.timing.decodeMs(e.usedTokens, f.capacityTokens);
      const over = e.usedTokens + this.reserved[w]! + uncached - f.capacityTokens;
      if (over > 0) cost += (1000 * over) / f.capacityTokens;
      const active = e.numRequests;
      if (cost < bestCost || (cost === bestCost && active < bestActive)) {
        best = w;
        bestCost = cost;
        bestActive = active;
        bestUncached = uncached;
      }
    }
    for (let i = 0; i < n; i++) this.overlap[this.outW[i]!] = 0;
    const uncached = bestUncached;
    this.backlog[best] += uncached;
    this.reserved[best] += uncached;
    this.mine.set(req.id, { uncached, need: uncached, holds: pendingHold(this.truth, bs, req, best) });
    return best;
  }

  firstToken(req: SimRequest): void {
    const m = this.mine.get(req.id);
    if (!m || m.uncached < 0) return;
    this.backlog[req.worker] -= m.uncached;
    this.reserved[req.worker] -= m.need;
    m.uncached = -1;
    // Its blocks are in the engine's cache now, and the truth index has them.
    this.truth.applyRemoved(req.worker, 0, m.holds);
  }

  finished(req: SimRequest): void {
    this.firstToken(req);
    this.mine.delete(req.id);
  }

  kvEvents(worker: number, events: readonly KvEvent[]): void {
    applyKvEvents(this.truth, worker, events);
  }

  close(): void {
    this.truth.close();
  }
}
