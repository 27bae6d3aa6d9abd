// The frontend's Prometheus metrics (served on /metrics). Names follow Dynamo's frontend
// (reference/dynamo.md §4.6) under the `kvgate_frontend_` prefix; the process's own are the
// standard process_* and nodejs_* ones. One registry per
// frontend, so several frontends in one process (tests) do not collide.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const PREFIX = 'kvgate_frontend_';

const tokenBuckets = [1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

export type RequestStatus = 'success' | 'error' | 'cancelled';

// The per-model series, looked up once per model instead of once per observation (a label
// lookup hashes the label set; the inter-token histogram is observed per token).
export interface ModelMetrics {
  inflight: Gauge.Internal<string>;
  duration: Histogram.Internal<string>;
  ttft: Histogram.Internal<string>;
  itl: Histogram.Internal<string>;
  inputTokens: Histogram.Internal<string>;
  outputTokens: Histogram.Internal<string>;
  cachedTokens: Histogram.Internal<string>;
  preprocess: Histogram.Internal<string>;
  disconnects: Counter.Internal;
}

export class FrontendMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model' | 'endpoint' | 'request_type' | 'status'>;
  readonly inflight: Gauge<'model'>;
  readonly queued: Gauge;
  readonly duration: Histogram<'model'>;
  readonly ttft: Histogram<'model'>;
  readonly itl: Histogram<'model'>;
  readonly inputTokens: Histogram<'model'>;
  readonly outputTokens: Histogram<'model'>;
  readonly cachedTokens: Histogram<'model'>;
  readonly preprocess: Histogram<'model'>;
  readonly errors: Counter<'code'>;
  readonly workerRequests: Counter<'model' | 'worker'>;
  readonly disconnects: Counter<'model'>;
  readonly clientBufferedBytes: Gauge;
  readonly stalledStreams: Gauge;
  readonly slowClientsClosed: Counter<'reason'>;

  constructor(defaultMetrics = true) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: `${PREFIX}requests_total`,
      help: 'Requests by model, endpoint, streaming or not, and outcome',
      labelNames: ['model', 'endpoint', 'request_type', 'status'],
      registers,
    });
    this.inflight = new Gauge({ name: `${PREFIX}inflight_requests`, help: 'Requests being served', labelNames: ['model'], registers });
    this.queued = new Gauge({ name: `${PREFIX}queued_requests`, help: 'Requests waiting for a slot under --max-concurrent-requests', registers });
    this.duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Time from request received to last byte sent',
      labelNames: ['model'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 2400],
      registers,
    });
    this.ttft = new Histogram({
      name: `${PREFIX}time_to_first_token_seconds`,
      help: 'Time from request received to the first generated token',
      labelNames: ['model'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 400],
      registers,
    });
    this.itl = new Histogram({
      name: `${PREFIX}inter_token_latency_seconds`,
      help: 'Time between consecutive generated tokens (a chunk of n tokens counts n-1 zero gaps)',
      labelNames: ['model'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2, 8],
      registers,
    });
    this.inputTokens = new Histogram({ name: `${PREFIX}input_sequence_tokens`, help: 'Prompt length in tokens', labelNames: ['model'], buckets: tokenBuckets, registers });
    this.outputTokens = new Histogram({ name: `${PREFIX}output_sequence_tokens`, help: 'Generated tokens per request', labelNames: ['model'], buckets: tokenBuckets, registers });
    this.cachedTokens = new Histogram({ name: `${PREFIX}cached_tokens`, help: 'Prompt tokens the engine found in its prefix cache', labelNames: ['model'], buckets: [0, ...tokenBuckets], registers });
    this.preprocess = new Histogram({
      name: `${PREFIX}preprocess_seconds`,
      help: 'Chat template rendering and tokenization per request',
      labelNames: ['model'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.errors = new Counter({ name: `${PREFIX}errors_total`, help: 'Error responses by error code', labelNames: ['code'], registers });
    this.workerRequests = new Counter({ name: `${PREFIX}worker_requests_total`, help: 'Requests by the worker they ended on (none: no worker came up in time)', labelNames: ['model', 'worker'], registers });
    this.disconnects = new Counter({ name: `${PREFIX}disconnected_clients_total`, help: 'Clients that went away before their response ended', labelNames: ['model'], registers });
    this.clientBufferedBytes = new Gauge({
      name: `${PREFIX}client_buffered_bytes`,
      help: 'Response bytes held in memory for clients that read slower than they are sent (upper bound)',
      registers,
    });
    this.stalledStreams = new Gauge({ name: `${PREFIX}stalled_streams`, help: 'Streams paused until their client reads what was sent', registers });
    this.slowClientsClosed = new Counter({
      name: `${PREFIX}slow_clients_closed_total`,
      help: 'Streams closed because the client stopped reading (stall_timeout) or too much was held for it (buffer_limit)',
      labelNames: ['reason'],
      registers,
    });
    if (defaultMetrics) {
      // The standard names (process_*, nodejs_*), which dashboards and alerts expect.
      collectDefaultMetrics({ register: this.registry });
      // prom-client's three `_total` gauges break the rule that `_total` names a counter;
      // each is the sum of the gauge of the same name without it (by `type`), which stays.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    }
  }

  private readonly models = new Map<string, ModelMetrics>();

  forModel(model: string): ModelMetrics {
    let m = this.models.get(model);
    if (!m) {
      m = {
        inflight: this.inflight.labels(model),
        duration: this.duration.labels(model),
        ttft: this.ttft.labels(model),
        itl: this.itl.labels(model),
        inputTokens: this.inputTokens.labels(model),
        outputTokens: this.outputTokens.labels(model),
        cachedTokens: this.cachedTokens.labels(model),
        preprocess: this.preprocess.labels(model),
        disconnects: this.disconnects.labels(model),
      };
      this.models.set(model, m);
    }
    return m;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
