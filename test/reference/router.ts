// The naive router: the same semantics as the native KvRouter (native/binding/index.d.ts,
// native/core/kv_router.h), written to be obviously correct rather than fast. Loads are
// recomputed from the list of active requests on every call, the scheduler's formulas are
// spelled out, and the random generator is the native one, so that from the same seed the
// two make the same decisions. Randomized differential tests (test/native/differential)
// hold the native router to it, and bench/router compares their speed.
//
// Test and bench only: it hashes with @node-rs/xxhash, a dev dependency. Product code uses
// the native router through src/native/addon.ts.

import { localHashes, sequenceHashes } from './hashing.js';
import { type IndexMutation, ReferenceKvIndex, type StoreStatus } from './kv_index.js';
import { SplitMix64 } from './rng.js';

export type Policy = 'kv' | 'round-robin' | 'random' | 'power-of-two' | 'least-loaded';

export interface ReferenceRouterOptions {
  blockSize: number;
  policy?: Policy;
  overlapWeight?: number;
  temperature?: number;
  seed: bigint;
  approx?: boolean;
  approxTtlMs?: number;
  approxMaxBlocks?: number;
  approxPruneRatio?: number;
  pendingWeight?: number;
  pendingTimeoutMs?: number;
  ownWeight?: number;
  /** The own weight grows by this per prompt before its first token per candidate unit. */
  ownQueueWeight?: number;
  mutation?: IndexMutation;
  /** A deliberate defect in pending prefixes, for the mutation check. */
  pendingMutation?: 'no-shared-exclusion';
}

/** One candidate as the scheduler sees it for one request. */
export interface CandidateView {
  worker: number;
  rank: number;
  overlap: number;
  activeOverlap: number;
  activeBlocks: number;
  prefillTokens: number;
  treeSize: number;
  pendingOverlap: number;
  cost: number;
}

export interface RouteDecision {
  worker: number;
  rank: number;
  overlap: number;
  /** The candidates in (worker, rank) order, with their costs (all policies). */
  candidates: CandidateView[];
  /** Softmax only: the cumulative weights and the draw, to judge last-bit differences of exp(). */
  softmax?: { cumulative: number[]; draw: number };
}

interface Unit {
  worker: number;
  rank: number;
  candidate: boolean;
}

/** A routed request's blocks pending on its unit (until stored there, freed or timed out). */
interface Pending {
  unit: string;
  seq: bigint[];
  expiry: number;
}

interface Active {
  unit: string;
  seq: bigint[];
  partial: boolean;
  prefillTokens: number;
  prefillDone: boolean;
}

/** A decoded SGLang KV-event batch: [ts, events, dpRank?] (reference/sglang.md §2.4). */
export type SglangBatch = [number, unknown[][], (number | null)?];

const key = (worker: number, rank: number): string => `${worker}:${rank}`;

export class ReferenceRouter {
  readonly blockSize: number;
  private readonly policy: Policy;
  private readonly overlapWeight: number;
  private readonly temperature: number;
  private readonly approx: boolean;
  private readonly ttl: number;
  private readonly maxBlocks: number;
  private readonly pruneRatio: number;
  private readonly pendingWeight: number;
  private readonly pendingTimeoutMs: number;
  private readonly ownWeight: number;
  private readonly ownQueueWeight: number;
  private readonly pendingMutation: ReferenceRouterOptions['pendingMutation'];
  /** request id → its pending blocks, in routing order. */
  private readonly pending = new Map<number, Pending>();
  private rng: SplitMix64;
  private roundRobin = 0;
  private readonly index: ReferenceKvIndex;
  private readonly units = new Map<string, Unit>();
  private readonly active = new Map<number, Active>();
  /** Approximate mode: unit → sequence hash → [expiry, stamp] of its latest recording. */
  private readonly recorded = new Map<string, Map<bigint, [number, number]>>();
  private stamp = 0;
  private eventsApplied = 0;
  private eventErrors = 0;

  constructor(o: ReferenceRouterOptions) {
    this.blockSize = o.blockSize;
    this.policy = o.policy ?? 'kv';
    this.overlapWeight = o.overlapWeight ?? 1;
    this.temperature = o.temperature ?? 0;
    this.rng = new SplitMix64(o.seed);
    this.approx = o.approx ?? false;
    this.ttl = o.approxTtlMs ?? 120_000;
    this.maxBlocks = o.approxMaxBlocks ?? 1 << 20;
    this.pruneRatio = o.approxPruneRatio ?? 0.8;
    this.pendingWeight = o.pendingWeight ?? 0;
    this.pendingTimeoutMs = o.pendingTimeoutMs ?? 10_000;
    this.ownWeight = o.ownWeight ?? 0;
    this.ownQueueWeight = o.ownQueueWeight ?? 0;
    this.pendingMutation = o.pendingMutation;
    this.index = new ReferenceKvIndex(o.blockSize, o.mutation);
  }

  setSeed(seed: bigint): void {
    this.rng = new SplitMix64(seed);
  }

  // ---- units ----

  addWorker(worker: number, rank = 0): void {
    this.unit(worker, rank).candidate = true;
  }

  removeWorker(worker: number, rank?: number): void {
    for (const [k, u] of [...this.units]) {
      if (u.worker !== worker || (rank !== undefined && u.rank !== rank)) continue;
      this.clearUnit(k);
      for (const [id, a] of [...this.active]) if (a.unit === k) this.active.delete(id);
      for (const [id, p] of [...this.pending]) if (p.unit === k) this.pending.delete(id);
      this.units.delete(k);
    }
  }

  clearWorker(worker: number, rank?: number): void {
    for (const [k, u] of this.units) {
      if (u.worker === worker && (rank === undefined || u.rank === rank)) this.clearUnit(k);
    }
  }

  // ---- KV events ----

  applyStored(worker: number, rank: number, parent: bigint | null, tokens: Uint32Array, engine: bigint[]): StoreStatus {
    const k = this.unitKey(worker, rank);
    const status = this.index.applyStored(k, parent, tokens, engine);
    // Confirmed: the unit now holds a pending request's last full block.
    if (status === 'ok') {
      for (const [id, p] of [...this.pending]) if (p.unit === k && this.index.holds(k, p.seq.at(-1)!)) this.pending.delete(id);
    }
    if (status === 'ok') this.eventsApplied++;
    else this.eventErrors++;
    return status;
  }

  applyRemoved(worker: number, rank: number, engine: bigint[]): number {
    const k = key(worker, rank);
    const missing = this.units.has(k) ? this.index.applyRemoved(k, engine) : engine.length;
    if (missing === 0) this.eventsApplied++;
    else this.eventErrors++;
    return missing;
  }

  /** A batch as the native reader decodes it; returns [events, applied, ignored, errors]. */
  applyEvents(worker: number, rank: number, batch: SglangBatch): [number, number, number, number] {
    const r = batch[2] ?? rank;
    let applied = 0;
    let ignored = 0;
    let errors = 0;
    for (const ev of batch[1]) {
      const tag = ev[0] as string;
      const medium = (tag === 'BlockStored' ? ev[6] : tag === 'BlockRemoved' ? ev[2] : null) ?? 'GPU';
      if (medium !== 'GPU') {
        ignored++;
        continue;
      }
      let ok = true;
      if (tag === 'BlockStored') {
        const parent = (ev[2] as bigint | number | null) ?? null;
        ok =
          this.applyStored(
            worker,
            r,
            parent === null ? null : BigInt(parent),
            Uint32Array.from(ev[3] as number[]),
            (ev[1] as (bigint | number)[]).map(BigInt),
          ) === 'ok';
      } else if (tag === 'BlockRemoved') {
        ok = this.applyRemoved(worker, r, (ev[1] as (bigint | number)[]).map(BigInt)) === 0;
      } else {
        if (this.units.has(key(worker, r))) this.clearUnit(key(worker, r));
        this.eventsApplied++;
      }
      if (ok) applied++;
      else errors++;
    }
    return [batch[1].length, applied, ignored, errors];
  }

  // ---- matching and routing ----

  /** unit "worker:rank" → leading query blocks cached on it. */
  findMatches(tokens: Uint32Array): Map<string, number> {
    return this.index.matchTokens(tokens);
  }

  /** What route() sees: every candidate with its cost. */
  score(tokens: Uint32Array, overlapWeight = this.overlapWeight): CandidateView[] {
    const seq = sequenceHashes(localHashes(tokens, this.blockSize));
    const cached = this.index.match(seq);
    const isl = tokens.length;
    const bs = this.blockSize;
    const candidates = this.candidates();
    // The own weight at the fleet's prefill queue: prompts before their first token per candidate.
    const prefilling = [...this.active.values()].filter((a) => !a.prefillDone).length;
    const ownWeight = this.ownWeight * (this.ownQueueWeight > 0 && candidates.length > 0 ? 1 + (this.ownQueueWeight * prefilling) / candidates.length : 1);
    return candidates.map(([k, u]) => {
      const mine = [...this.active.values()].filter((a) => a.unit === k);
      const activeSeq = new Set(mine.flatMap((a) => a.seq));
      let activeOverlap = 0;
      while (activeOverlap < seq.length && activeSeq.has(seq[activeOverlap]!)) activeOverlap++;
      const activeBlocks = activeSeq.size + mine.filter((a) => a.partial).length;
      const prefillTokens = mine.filter((a) => !a.prefillDone).reduce((s, a) => s + a.prefillTokens, 0);
      const overlap = cached.get(k) ?? 0;
      const pendingSeq = new Set([...this.pending.values()].filter((p) => p.unit === k).flatMap((p) => p.seq));
      let pendingOverlap = 0;
      while (pendingOverlap < seq.length && pendingSeq.has(seq[pendingOverlap]!)) pendingOverlap++;
      // Pending blocks beyond the cached overlap: computed once there, by their own request.
      const extra = this.pendingWeight > 0 ? Math.max(0, pendingOverlap - overlap) : 0;
      const shared = this.pendingMutation === 'no-shared-exclusion' ? 0 : Math.min(prefillTokens, extra * bs);
      // Dynamo 2026-04: prefill blocks still to compute, weighted, plus decode blocks.
      const newPrefill = Math.max(0, isl - overlap * bs);
      const prefillBlocks = (prefillTokens - shared + newPrefill) / bs;
      const newBlocks = Math.max(0, Math.ceil(isl / bs) - activeOverlap);
      // The prompt's own part left to compute there, weighed again (the fleet's compute).
      const ownBlocks = Math.max(0, newPrefill - shared) / bs;
      const cost = overlapWeight * prefillBlocks + (activeBlocks + newBlocks) - this.pendingWeight * extra + ownWeight * ownBlocks;
      return {
        worker: u.worker,
        rank: u.rank,
        overlap,
        activeOverlap,
        activeBlocks,
        prefillTokens,
        treeSize: this.index.unitBlocks(k),
        pendingOverlap,
        cost,
      };
    });
  }

  /** null when there is no candidate. Throws on a request id already active. */
  route(
    tokens: Uint32Array,
    requestId: number,
    overlapWeight = this.overlapWeight,
    temperature = this.temperature,
    nowMs = 0,
  ): RouteDecision | null {
    const cands = this.candidates();
    if (cands.length === 0) return null;
    if (this.active.has(requestId)) throw new Error(`request ${requestId} is already active`);
    if (this.approx) this.expire(nowMs);
    this.expirePending(nowMs);
    const views = this.score(tokens, overlapWeight);
    const n = views.length;
    const load = (c: CandidateView) => c.activeBlocks + c.prefillTokens / this.blockSize;
    let pick: number;
    let softmax: RouteDecision['softmax'];
    switch (this.policy) {
      case 'kv': {
        const costs = views.map((c) => c.cost);
        const lo = Math.min(...costs);
        const hi = Math.max(...costs);
        if (temperature > 0) {
          const range = hi - lo;
          if (range === 0) {
            pick = this.rng.below(n);
            break;
          }
          const zmax = -(lo / range) / temperature;
          const weights = costs.map((c) => Math.exp(-(c / range) / temperature - zmax));
          const sum = weights.reduce((a, b) => a + b, 0);
          const draw = this.rng.uniform() * sum;
          const cumulative: number[] = [];
          weights.reduce((acc, w) => (cumulative.push(acc + w), acc + w), 0);
          pick = cumulative.findIndex((c) => draw < c);
          if (pick < 0) pick = n - 1;
          softmax = { cumulative, draw };
          break;
        }
        const minTree = Math.min(...views.filter((c) => c.cost === lo).map((c) => c.treeSize));
        const ties = views.flatMap((c, i) => (c.cost === lo && c.treeSize === minTree ? [i] : []));
        pick = ties.length > 1 ? ties[this.rng.below(ties.length)]! : ties[0]!;
        break;
      }
      case 'round-robin':
        pick = this.roundRobin++ % n;
        break;
      case 'random':
        pick = this.rng.below(n);
        break;
      case 'power-of-two': {
        if (n === 1) {
          pick = 0;
          break;
        }
        const a = this.rng.below(n);
        let b = this.rng.below(n - 1);
        if (b >= a) b++;
        pick = load(views[b]!) < load(views[a]!) ? b : a;
        break;
      }
      case 'least-loaded': {
        const lo = Math.min(...views.map(load));
        const ties = views.flatMap((c, i) => (load(c) === lo ? [i] : []));
        pick = ties.length > 1 ? ties[this.rng.below(ties.length)]! : ties[0]!;
        break;
      }
    }
    const chosen = views[pick]!;
    const k = key(chosen.worker, chosen.rank);
    const seq = sequenceHashes(localHashes(tokens, this.blockSize));
    const pending = this.pendingWeight > 0;
    // What the unit computes: blocks pending there are computed once, by their request.
    const computed = pending ? Math.max(chosen.overlap, chosen.pendingOverlap) : chosen.overlap;
    this.active.set(requestId, {
      unit: k,
      seq,
      partial: tokens.length % this.blockSize !== 0,
      prefillTokens: Math.max(0, tokens.length - computed * this.blockSize),
      prefillDone: false,
    });
    if (this.approx) this.record(k, seq, nowMs);
    else if (pending && seq.length > 0) this.pending.set(requestId, { unit: k, seq, expiry: nowMs + this.pendingTimeoutMs });
    return { worker: chosen.worker, rank: chosen.rank, overlap: chosen.overlap, candidates: views, softmax };
  }

  markPrefillDone(requestId: number): boolean {
    const a = this.active.get(requestId);
    if (!a || a.prefillDone) return false;
    a.prefillDone = true;
    return true;
  }

  free(requestId: number): boolean {
    this.pending.delete(requestId);
    return this.active.delete(requestId);
  }

  /** Drops pending blocks whose timeout ended by nowMs. */
  expirePending(nowMs: number): void {
    for (const [id, p] of [...this.pending]) if (p.expiry <= nowMs) this.pending.delete(id);
  }

  /** Approximate mode: drops recordings whose TTL ended by nowMs; and pending blocks. */
  expire(nowMs: number): void {
    this.expirePending(nowMs);
    for (const [k, m] of this.recorded) {
      for (const [seq, [expiry]] of [...m]) {
        if (expiry <= nowMs) this.forget(k, seq);
      }
    }
  }

  // ---- introspection ----

  stats() {
    let approxBlocks = 0;
    for (const m of this.recorded.values()) approxBlocks += m.size;
    return {
      ...this.index.stats(),
      candidates: this.candidates().length,
      units: this.units.size,
      activeRequests: this.active.size,
      eventsApplied: this.eventsApplied,
      eventErrors: this.eventErrors,
      approxBlocks,
      pendingRequests: this.pending.size,
      pendingBlocks: [...this.pending.values()].reduce((s, p) => s + p.seq.length, 0),
    };
  }

  unitInfo() {
    return [...this.units]
      .sort(([, a], [, b]) => a.worker - b.worker || a.rank - b.rank)
      .map(([k, u]) => {
        const mine = [...this.active.values()].filter((a) => a.unit === k);
        return {
          worker: u.worker,
          rank: u.rank,
          candidate: u.candidate,
          activeBlocks: new Set(mine.flatMap((a) => a.seq)).size + mine.filter((a) => a.partial).length,
          prefillTokens: mine.filter((a) => !a.prefillDone).reduce((s, a) => s + a.prefillTokens, 0),
          activeRequests: mine.length,
          cachedBlocks: this.index.unitBlocks(k),
        };
      });
  }

  // ---- internals ----

  private unit(worker: number, rank: number): Unit {
    const k = key(worker, rank);
    let u = this.units.get(k);
    if (!u) this.units.set(k, (u = { worker, rank, candidate: false }));
    return u;
  }

  private unitKey(worker: number, rank: number): string {
    this.unit(worker, rank);
    return key(worker, rank);
  }

  private candidates(): [string, Unit][] {
    return [...this.units].filter(([, u]) => u.candidate).sort(([, a], [, b]) => a.worker - b.worker || a.rank - b.rank);
  }

  private clearUnit(k: string): void {
    this.index.clearUnit(k);
    this.recorded.delete(k);
  }

  private record(k: string, seq: bigint[], nowMs: number): void {
    const m = this.recorded.get(k) ?? new Map<bigint, [number, number]>();
    this.recorded.set(k, m);
    for (const s of seq) {
      this.index.claim(k, s, s);
      m.set(s, [nowMs + this.ttl, this.stamp++]);
    }
    let total = 0;
    for (const r of this.recorded.values()) total += r.size;
    if (total <= this.maxBlocks) return;
    // Over the cap: drop the oldest recordings down to max * ratio.
    const all = [...this.recorded].flatMap(([u, r]) => [...r].map(([s, [, stamp]]) => ({ u, s, stamp })));
    all.sort((a, b) => a.stamp - b.stamp);
    const target = this.maxBlocks * this.pruneRatio;
    for (const { u, s } of all) {
      if (total <= target) break;
      this.forget(u, s);
      total--;
    }
  }

  private forget(k: string, seq: bigint): void {
    this.recorded.get(k)!.delete(seq);
    this.index.release(k, seq);
  }
}
