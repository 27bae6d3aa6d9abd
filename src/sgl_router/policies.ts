// SGLang's router policies over the available workers of one kind (reference/sglang.md §4.3).
// Load is the router's own count of requests in flight per worker.

import { NativeTextTree, type TextTree } from './text_tree.js';
import type { Worker } from './workers.js';

export type PolicyName = 'random' | 'round_robin' | 'power_of_two' | 'cache_aware';

export interface Policy {
  readonly name: PolicyName;
  // `workers` is non-empty. `text` is the request's routing text (cache_aware only).
  select(workers: readonly Worker[], text: string): Worker;
  removed(worker: Worker): void;
  close(): void;
}

export interface CacheAwareConfig {
  cacheThreshold: number;
  balanceAbsThreshold: number;
  balanceRelThreshold: number;
  evictionIntervalMs: number;
  maxTreeSize: number;
}

// What cache_aware decided, for the metrics.
export interface PolicyEvents {
  cacheHit(): void;
  cacheMiss(): void;
  balanced(): void;
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

class RandomPolicy implements Policy {
  readonly name = 'random';
  select(workers: readonly Worker[]): Worker {
    return pick(workers);
  }
  removed(): void {}
  close(): void {}
}

class RoundRobinPolicy implements Policy {
  readonly name = 'round_robin';
  private next = 0;
  select(workers: readonly Worker[]): Worker {
    return workers[this.next++ % workers.length]!;
  }
  removed(): void {}
  close(): void {}
}

class PowerOfTwoPolicy implements Policy {
  readonly name = 'power_of_two';
  select(workers: readonly Worker[]): Worker {
    if (workers.length === 1) return workers[0]!;
    const i = Math.floor(Math.random() * workers.length);
    let j = Math.floor(Math.random() * (workers.length - 1));
    if (j >= i) j++;
    const a = workers[i]!;
    const b = workers[j]!;
    return b.load < a.load ? b : a;
  }
  removed(): void {}
  close(): void {}
}

// What load-aware choices read of a worker.
export type Target = Pick<Worker, 'id' | 'load'>;

export function leastLoaded<T extends Target>(workers: readonly T[]): T {
  let best = workers[0]!;
  for (const w of workers) if (w.load < best.load) best = w;
  return best;
}

// SGLang's cache_aware: shortest queue when the loads are out of balance; otherwise the
// worker whose tree matches more than cacheThreshold of the text, else the one whose tree
// holds the least text (the most free cache). The text is then recorded under the choice.
// The trees are evicted every evictionIntervalMs, or, when that is 0, only by evict() (the
// fleet simulator runs cache_aware in virtual time).
export class CacheAwarePolicy implements Policy {
  readonly name = 'cache_aware';
  private readonly timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly config: CacheAwareConfig,
    private readonly events: PolicyEvents,
    readonly tree: TextTree = new NativeTextTree(),
  ) {
    if (config.evictionIntervalMs > 0) {
      this.timer = setInterval(() => this.evict(), config.evictionIntervalMs);
      this.timer.unref();
    }
  }

  evict(): void {
    this.tree.evict(this.config.maxTreeSize);
  }

  select<T extends Target>(workers: readonly T[], text: string): T {
    const chosen = this.choose(workers, text);
    this.tree.insert(text, chosen.id);
    return chosen;
  }

  // The loads are out of balance: max - min over the absolute threshold and max over min
  // times the relative one.
  imbalanced(workers: readonly Target[]): boolean {
    let max = -Infinity;
    let min = Infinity;
    for (const w of workers) {
      max = Math.max(max, w.load);
      min = Math.min(min, w.load);
    }
    return max - min > this.config.balanceAbsThreshold && max > min * this.config.balanceRelThreshold;
  }

  get cacheThreshold(): number {
    return this.config.cacheThreshold;
  }

  private choose<T extends Target>(workers: readonly T[], text: string): T {
    if (this.imbalanced(workers)) {
      this.events.balanced();
      return leastLoaded(workers);
    }
    const m = this.tree.prefixMatch(text);
    if (m.length > 0 && m.matched / m.length > this.config.cacheThreshold) {
      const hit = workers.find((w) => w.id === m.tenant);
      if (hit) {
        this.events.cacheHit();
        return hit;
      }
    }
    this.events.cacheMiss();
    const smallest = this.tree.smallestTenant(workers.map((w) => w.id));
    return workers.find((w) => w.id === smallest) ?? workers[0]!;
  }

  removed(worker: Worker): void {
    this.tree.removeTenant(worker.id);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export function makePolicy(name: PolicyName, cache: CacheAwareConfig, events: PolicyEvents): Policy {
  switch (name) {
    case 'random':
      return new RandomPolicy();
    case 'round_robin':
      return new RoundRobinPolicy();
    case 'power_of_two':
      return new PowerOfTwoPolicy();
    case 'cache_aware':
      return new CacheAwarePolicy(cache, events);
  }
}
