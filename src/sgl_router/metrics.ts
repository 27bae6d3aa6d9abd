// The router's Prometheus metrics under the names SGLang users' dashboards query: the
// sgl-router era's sgl_router_* and sgl-model-gateway/SMG's smg_* (reference/sglang.md §4.11),
// updated together, plus kvgate's own kvgate_router_* names. Served on /metrics of the
// router port and of --prometheus-host/--prometheus-port.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BREAKER_STATE_VALUE } from '../router/circuit_breaker.js';
import { prefillMetrics, type InflightPrefills } from '../router/inflight_prefills.js';
import type { WorkerPool } from './workers.js';

const durationBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 45, 60, 90, 120, 180, 240];

export class RouterMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route'>[];
  private readonly httpRequests: Counter<'method' | 'path'>;
  private readonly httpResponses: Counter<'status'>;
  private readonly kvgateRequests: Counter<'route' | 'status'>;
  private readonly duration: Histogram<'route'>[];
  private readonly errors: Counter<'route'>[];
  private readonly processed: Counter<'worker'>[];
  private readonly retries: Counter[];
  private readonly retriesExhausted: Counter;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly balancing: Counter;
  readonly cbTransitions: Counter<'worker' | 'from_state' | 'to_state'>;
  private readonly kvRouted: Counter<'by'>;
  private readonly kvOverlap: Counter;
  private readonly pdPrefill: Counter;
  private readonly pdDecode: Counter;
  private readonly pdErrors: Counter;

  constructor(pool: WorkerPool, treeSize: () => number, prefills: () => InflightPrefills | null = () => null) {
    const registers = [this.registry];
    const both = <T>(make: (name: string) => T, sgl: string, smg: string): T[] => [make(sgl), make(smg)];
    this.requests = both((name) => new Counter({ name, help: 'Requests received, by route', labelNames: ['route'], registers }), 'sgl_router_requests_total', 'smg_router_requests_total');
    this.httpRequests = new Counter({ name: 'smg_http_requests_total', help: 'HTTP requests received, by method and path', labelNames: ['method', 'path'], registers });
    this.httpResponses = new Counter({ name: 'smg_http_responses_total', help: 'Responses sent, by status', labelNames: ['status'], registers });
    this.kvgateRequests = new Counter({ name: 'kvgate_router_requests_total', help: 'Requests by route and status', labelNames: ['route', 'status'], registers });
    this.duration = both(
      (name) => new Histogram({ name, help: 'Seconds from a request\'s arrival to the end of its response', labelNames: ['route'], buckets: durationBuckets, registers }),
      'sgl_router_generate_duration_seconds',
      'smg_router_request_duration_seconds',
    );
    this.errors = both((name) => new Counter({ name, help: 'Requests answered with an error status', labelNames: ['route'], registers }), 'sgl_router_request_errors_total', 'smg_router_request_errors_total');
    this.processed = both((name) => new Counter({ name, help: 'Requests sent to each worker', labelNames: ['worker'], registers }), 'sgl_router_processed_requests_total', 'smg_worker_selection_total');
    this.retries = both((name) => new Counter({ name, help: 'Retried attempts', registers }), 'sgl_router_retries_total', 'smg_worker_retries_total');
    this.retriesExhausted = new Counter({ name: 'smg_worker_retries_exhausted_total', help: 'Requests that failed after their last attempt', registers });
    this.cacheHits = new Counter({ name: 'sgl_router_cache_hits_total', help: 'cache_aware: requests sent to the worker whose tree matched over the threshold', registers });
    this.cacheMisses = new Counter({ name: 'sgl_router_cache_misses_total', help: 'cache_aware: requests sent to the worker with the smallest tree', registers });
    this.balancing = new Counter({ name: 'sgl_router_load_balancing_events_total', help: 'cache_aware: requests sent to the least loaded worker because loads were out of balance', registers });
    this.cbTransitions = new Counter({ name: 'smg_worker_cb_transitions_total', help: 'Circuit breaker state changes', labelNames: ['worker', 'from_state', 'to_state'], registers });
    this.kvRouted = new Counter({ name: 'kvgate_router_kv_decisions_total', help: 'kv policy: requests routed on KV events (by="kv_events") or by the cache_aware fallback', labelNames: ['by'], registers });
    this.kvOverlap = new Counter({ name: 'kvgate_router_kv_overlap_blocks_total', help: 'kv policy: prompt blocks the chosen worker held, per the KV events', registers });
    prefillMetrics(registers, prefills);
    this.pdPrefill = new Counter({ name: 'sgl_router_pd_prefill_requests_total', help: 'PD: prefill legs sent', registers });
    this.pdDecode = new Counter({ name: 'sgl_router_pd_decode_requests_total', help: 'PD: decode legs sent', registers });
    this.pdErrors = new Counter({ name: 'sgl_router_pd_errors_total', help: 'PD: requests whose decode or prefill leg failed', registers });
    // Gauges read from the pool at scrape time.
    for (const name of ['sgl_router_active_workers', 'smg_worker_pool_size']) {
      new Gauge({ name, help: 'Workers registered (healthy or not)', registers, collect() { this.set(pool.all().length); } });
    }
    for (const name of ['sgl_router_running_requests', 'smg_worker_requests_active']) {
      new Gauge({ name, help: 'Requests in flight on each worker', labelNames: ['worker'], registers, collect() { this.reset(); for (const w of pool.all()) this.set({ worker: w.id }, w.load); } });
    }
    new Gauge({ name: 'sgl_router_worker_health', help: '1 when a worker passes its health checks', labelNames: ['worker'], registers, collect() { this.reset(); for (const w of pool.all()) this.set({ worker: w.id }, w.healthy ? 1 : 0); } });
    for (const name of ['sgl_router_cb_state', 'smg_worker_cb_state']) {
      new Gauge({ name, help: 'Circuit breaker state: 0 closed, 1 open, 2 half-open', labelNames: ['worker'], registers, collect() { this.reset(); for (const w of pool.all()) this.set({ worker: w.id }, BREAKER_STATE_VALUE[w.breaker.state]); } });
    }
    new Gauge({ name: 'sgl_router_tree_size', help: 'cache_aware: characters in the approximate trees, summed over workers', registers, collect() { this.set(treeSize()); } });
    new Gauge({ name: 'kvgate_router_inflight_requests', help: 'Requests in flight, all workers', registers, collect() { this.set(pool.all().reduce((n, w) => n + w.load, 0)); } });
    collectDefaultMetrics({ register: this.registry });
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
  }

  received(method: string, route: string): void {
    this.httpRequests.inc({ method: method.toUpperCase(), path: route });
    for (const c of this.requests) c.inc({ route });
  }

  answered(route: string, status: number, seconds: number): void {
    this.httpResponses.inc({ status: String(status) });
    this.kvgateRequests.inc({ route, status: String(status) });
    for (const h of this.duration) h.observe({ route }, seconds);
    if (status >= 400) for (const c of this.errors) c.inc({ route });
  }

  sent(worker: string): void {
    for (const c of this.processed) c.inc({ worker });
  }

  retried(): void {
    for (const c of this.retries) c.inc();
  }

  exhausted(): void {
    this.retriesExhausted.inc();
  }

  readonly policyEvents = {
    cacheHit: () => this.cacheHits.inc(),
    cacheMiss: () => this.cacheMisses.inc(),
    balanced: () => this.balancing.inc(),
  };

  kvDecision(overlapBlocks: number | null): void {
    this.kvRouted.inc({ by: overlapBlocks === null ? 'cache_aware' : 'kv_events' });
    if (overlapBlocks !== null) this.kvOverlap.inc(overlapBlocks);
  }

  pd(leg: 'prefill' | 'decode'): void {
    (leg === 'prefill' ? this.pdPrefill : this.pdDecode).inc();
  }

  pdFailed(): void {
    this.pdErrors.inc();
  }
}
