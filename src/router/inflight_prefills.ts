// Prompts the kv policy sent to a worker whose KV events do not show them stored yet: the
// engine is prefilling them, or has them queued. An engine caches a prompt's pages only once it
// has computed them, so a second prompt sharing a long prefix with one of these, sent now,
// computes that prefix a second time in the same prefill batch (SGLang's default FCFS
// scheduling does not hold it back; bench/README.md, "Where the missing cached share goes").
// Such a prompt waits here until the first one's blocks show up in the worker's events (or the
// first one ends, or the wait runs out), then is routed as if it had just arrived.
// Only a prompt that may still be waiting in the engine's queue makes others wait: one sent to
// an engine with nothing else in flight starts its prefill at once, and what arrives during it
// is batched after it, with the prefix cached (waiting would only add the events' delay).
// Used by `kvgate router --policy kv` (sgl_router/kv_policy.ts) and `kvgate serve`'s kv mode
// (kv_worker_set.ts, routed_request.ts).

import { Counter, Gauge, type Registry } from 'prom-client';
import type { KvRouter } from '../native/addon.js';

export interface Prefill {
  // Local block hashes of the prompt's full blocks (addon.blockHashes).
  readonly hashes: BigUint64Array;
  // Sent to an engine with nothing else in flight: its prefill started at once.
  readonly started: boolean;
  settled: boolean;
  readonly waiters: (() => void)[];
}

// Leading blocks two prompts share.
export function sharedBlocks(a: BigUint64Array, b: BigUint64Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

// Leading blocks of a prompt the native index shows stored on one worker (the most over its
// ranks): what settles a prefill, and what a waiting prompt compares with. Keeps findMatches'
// output rows between calls.
export class StoredDepth {
  private workers = new Uint32Array(0);
  private ranks = new Uint32Array(0);
  private depths = new Uint32Array(0);

  // `units`: the units in use (findMatches writes up to one row each).
  of(router: Pick<KvRouter, 'findMatches'>, hashes: BigUint64Array, worker: number, units: number): number {
    if (this.workers.length < units) [this.workers, this.ranks, this.depths] = [new Uint32Array(units), new Uint32Array(units), new Uint32Array(units)];
    const n = router.findMatches(hashes, this.workers, this.ranks, this.depths);
    let depth = 0;
    for (let i = 0; i < n; i++) if (this.workers[i] === worker) depth = Math.max(depth, this.depths[i]!);
    return depth;
  }
}

export class InflightPrefills {
  private readonly byWorker = new Map<number, Set<Prefill>>();
  private waiting = 0;
  private waited = 0;

  // Prefills sent and not yet stored, and requests waiting on one (gauges).
  get prefilling(): number {
    let n = 0;
    for (const s of this.byWorker.values()) n += s.size;
    return n;
  }
  get held(): number {
    return this.waiting;
  }
  // Waits begun so far.
  get waits(): number {
    return this.waited;
  }

  // Whether any prompt sent to the worker is not stored yet (O(1): a route asks first).
  has(worker: number): boolean {
    return this.byWorker.has(worker);
  }

  // Records a prompt sent to the worker; call the returned function when its request ends.
  add(worker: number, hashes: BigUint64Array, started: boolean): () => void {
    const p: Prefill = { hashes, started, settled: false, waiters: [] };
    let s = this.byWorker.get(worker);
    if (!s) this.byWorker.set(worker, (s = new Set()));
    s.add(p);
    return () => this.settle(worker, p);
  }

  // The queued prefill on the worker sharing the most leading blocks with `hashes`, when that
  // is more by over `minBlocks` than a started prefill shares (it computes them first) and than
  // `cachedBlocks()` (what the worker's events already show; asked only then).
  blocking(worker: number, hashes: BigUint64Array, cachedBlocks: () => number, minBlocks: number): Prefill | null {
    const s = this.byWorker.get(worker);
    if (!s) return null;
    let best: Prefill | null = null;
    let most = 0;
    let covered = 0;
    for (const p of s) {
      const shared = sharedBlocks(p.hashes, hashes);
      if (p.started) covered = Math.max(covered, shared);
      else if (shared > most) [best, most] = [p, shared];
    }
    return most > covered + minBlocks && most > cachedBlocks() + minBlocks ? best : null;
  }

  // Resolves when the prefill settles, the deadline passes or the signal aborts.
  async wait(p: Prefill, deadlineMs: number, signal?: AbortSignal): Promise<void> {
    if (p.settled || signal?.aborted) return;
    this.waiting++;
    this.waited++;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        p.waiters.push(resolve);
        timer = setTimeout(resolve, Math.max(0, deadlineMs - performance.now()));
        onAbort = resolve;
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      this.waiting--;
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  // The worker's events changed: settles its prefills whose blocks `stored` reports held.
  check(worker: number, stored: (hashes: BigUint64Array) => number): void {
    const s = this.byWorker.get(worker);
    if (!s) return;
    // An engine may keep a prompt's last full page to itself until the request ends.
    for (const p of s) if (stored(p.hashes) >= Math.max(1, p.hashes.length - 1)) this.settle(worker, p);
  }

  // The worker is gone (or its history lost): nothing it prefills will be confirmed.
  dropWorker(worker: number): void {
    for (const p of [...(this.byWorker.get(worker) ?? [])]) this.settle(worker, p);
  }

  private settle(worker: number, p: Prefill): void {
    if (p.settled) return;
    p.settled = true;
    const s = this.byWorker.get(worker);
    s?.delete(p);
    if (s?.size === 0) this.byWorker.delete(worker);
    for (const w of p.waiters.splice(0)) w();
  }
}

// The wait's metrics, read from `prefills()` at scrape time (null: the wait is off), in
// `registers` (empty: the caller registers them).
export function prefillMetrics(registers: Registry[], prefills: () => InflightPrefills | null): (Counter | Gauge)[] {
  return [
    new Counter({
      name: 'kvgate_router_kv_prefill_waits_total',
      help: 'kv routing: times a request waited for its chosen worker to store a prefix it was prefilling (queued) for another request',
      registers,
      collect() {
        this.reset();
        this.inc(prefills()?.waits ?? 0);
      },
    }),
    new Gauge({ name: 'kvgate_router_kv_prefill_waiting_requests', help: 'kv routing: requests waiting for a shared prefix to be stored', registers, collect() { this.set(prefills()?.held ?? 0); } }),
    new Gauge({ name: 'kvgate_router_kv_prefilling_requests', help: 'kv routing: requests sent whose prompt blocks the worker\'s KV events do not show stored yet', registers, collect() { this.set(prefills()?.prefilling ?? 0); } }),
  ];
}
