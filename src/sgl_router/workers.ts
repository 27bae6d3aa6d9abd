// The workers a router sends to: plain SGLang servers by URL (one routing target per DP rank
// with --dp-aware), their health (background probes), their circuit breakers and the
// router's own count of requests in flight on each (the load the policies read).

import type { Logger } from '../observability/log.js';
import { CircuitBreaker, type BreakerOptions, type BreakerState } from '../router/circuit_breaker.js';

export type WorkerType = 'regular' | 'prefill' | 'decode';

export class Worker {
  // In-flight requests the router sent here.
  load = 0;
  healthy = true;
  private healthStreak = 0; // > 0: passes in a row, < 0: failures in a row
  readonly breaker: CircuitBreaker;
  constructor(
    // The routing target's id: the URL, with @rank under --dp-aware (SGLang's spelling).
    readonly id: string,
    readonly baseUrl: string,
    readonly type: WorkerType,
    readonly dpRank: number | null,
    // Prefill workers: the bootstrap port to send (null: the engine's default).
    readonly bootstrapPort: number | null,
    breaker: BreakerOptions,
    onBreaker: (w: Worker, from: BreakerState, to: BreakerState) => void,
  ) {
    this.breaker = new CircuitBreaker(breaker, (from, to) => onBreaker(this, from, to));
  }

  get available(): boolean {
    return this.healthy && this.breaker.allows();
  }

  // A request's outcome, for the breaker: 5xx and failed connections count against it.
  outcome(ok: boolean): void {
    if (ok) this.breaker.success();
    else this.breaker.failure();
  }

  // Applies one health probe's result with the thresholds; true when `healthy` changed.
  probed(ok: boolean, failureThreshold: number, successThreshold: number): boolean {
    this.healthStreak = ok ? Math.max(1, this.healthStreak + 1) : Math.min(-1, this.healthStreak - 1);
    const was = this.healthy;
    if (!ok && -this.healthStreak >= failureThreshold) this.healthy = false;
    if (ok && this.healthStreak >= successThreshold) this.healthy = true;
    return was !== this.healthy;
  }
}

export interface HealthConfig {
  enabled: boolean;
  endpoint: string;
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
}

export async function probe(url: string, path: string, timeoutMs: number, headers: Record<string, string>): Promise<boolean> {
  try {
    const res = await fetch(url + path, { headers, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

// Polls `url` until its health check passes (at start-up, and when a worker is added).
export async function waitHealthy(url: string, health: HealthConfig, timeoutMs: number, headers: Record<string, string>, pollMs: number): Promise<boolean> {
  if (!health.enabled) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe(url, health.endpoint, health.timeoutMs, headers)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
}

export class WorkerPool {
  private readonly byId = new Map<string, Worker>();
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly health: HealthConfig,
    private readonly headers: Record<string, string>,
    private readonly log: Logger,
    private readonly onRemoved: (w: Worker) => void,
  ) {}

  add(w: Worker): void {
    this.byId.set(w.id, w);
  }

  // Removes every routing target of a server URL; returns how many went.
  removeUrl(url: string): number {
    let n = 0;
    for (const w of [...this.byId.values()]) {
      if (w.baseUrl !== url) continue;
      this.byId.delete(w.id);
      this.onRemoved(w);
      n++;
    }
    return n;
  }

  hasUrl(url: string): boolean {
    for (const w of this.byId.values()) if (w.baseUrl === url) return true;
    return false;
  }

  all(type?: WorkerType): Worker[] {
    const out: Worker[] = [];
    for (const w of this.byId.values()) if (type === undefined || w.type === type) out.push(w);
    return out;
  }

  available(type: WorkerType): Worker[] {
    const out: Worker[] = [];
    for (const w of this.byId.values()) if (w.type === type && w.available) out.push(w);
    return out;
  }

  // Distinct server URLs (a DP-aware server is one URL, several targets).
  urls(type?: WorkerType): string[] {
    return [...new Set(this.all(type).map((w) => w.baseUrl))];
  }

  startHealthChecks(): void {
    if (!this.health.enabled) return;
    this.timer = setInterval(() => void this.checkAll(), this.health.intervalMs);
    this.timer.unref();
  }

  async checkAll(): Promise<void> {
    const urls = this.urls();
    const results = await Promise.all(urls.map((u) => probe(u, this.health.endpoint, this.health.timeoutMs, this.headers)));
    urls.forEach((url, i) => {
      for (const w of this.all()) {
        if (w.baseUrl !== url) continue;
        if (w.probed(results[i]!, this.health.failureThreshold, this.health.successThreshold)) {
          this.log.warn(w.healthy ? 'worker healthy again' : 'worker unhealthy', { worker: w.id });
        }
      }
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
