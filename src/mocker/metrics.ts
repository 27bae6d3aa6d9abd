// Prometheus /metrics with SGLang's metric names and labels
// (python/sglang/srt/observability/metrics_collector.py): scheduler gauges per DP rank, read at
// scrape time, and the tokenizer-side counters and latency histograms.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RequestObserver, RankScheduler } from './scheduler.js';
import type { EngineRequest } from './request.js';
import type { ResolvedOptions } from './options.js';

const TTFT_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400];
const E2E_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400];
const ITL_BUCKETS = [0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8];

function engineType(mode: string): string {
  return mode === 'prefill' || mode === 'decode' ? mode : 'unified';
}

export interface RankView {
  scheduler: RankScheduler;
  bootstrapQueue(): number;
  transferLatencyMs(): number;
}

export class MockerMetrics implements RequestObserver {
  readonly registry = new Registry();
  private readonly ttft: Histogram<string>;
  private readonly itl: Histogram<string>;
  private readonly e2e: Histogram<string>;
  private readonly tokenizerLabels: Record<string, string>;

  constructor(o: ResolvedOptions, ranks: RankView[], startupSeconds: number) {
    const model = o.servedModelName;
    const type = engineType(o.disaggregationMode);
    this.tokenizerLabels = { model_name: model, engine_type: type };
    const rankLabels = (r: number): Record<string, string | number> => {
      const l: Record<string, string | number> = { model_name: model, engine_type: type, tp_rank: 0, pp_rank: 0, moe_ep_rank: 0 };
      if (o.dpSize > 1) l.dp_rank = r;
      return l;
    };
    const labelNames = Object.keys(rankLabels(0));
    const reg = [this.registry];
    const gauge = (name: string, help: string, value: (v: RankView, r: number) => number) =>
      new Gauge({
        name: `sglang:${name}`,
        help,
        labelNames,
        registers: reg,
        collect() {
          ranks.forEach((v, r) => this.set(rankLabels(r), value(v, r)));
        },
      });
    const total = o.maxTotalTokens;
    gauge('num_running_reqs', 'The number of running requests.', (v) => v.scheduler.numRunning);
    gauge('num_queue_reqs', 'The number of requests in the waiting queue.', (v) => v.scheduler.numWaiting);
    gauge('num_used_tokens', 'The number of used tokens.', (v) => v.scheduler.usedTokens);
    gauge('token_usage', 'The token usage.', (v) => v.scheduler.usedTokens / total);
    gauge('kv_used_tokens', 'KV tokens in use.', (v) => v.scheduler.usedTokens);
    gauge('kv_available_tokens', 'KV tokens free.', (v) => total - v.scheduler.usedTokens - v.scheduler.evictableTokens);
    gauge('kv_evictable_tokens', 'KV tokens cached and evictable.', (v) => v.scheduler.evictableTokens);
    gauge('gen_throughput', 'The generation throughput (token/s).', (v) => v.scheduler.genThroughput);
    gauge('cache_hit_rate', 'The prefix cache hit rate.', (v) => v.scheduler.lastCacheHitRate);
    gauge('decode_sum_seq_lens', 'The sum of all sequence lengths in decode.', (v) => v.scheduler.decodeSumSeqLens);
    gauge('max_total_num_tokens', 'Maximum total number of tokens in the KV cache pool.', () => total);
    gauge('page_size', 'KV cache page size.', () => o.pageSize);
    gauge('context_len', 'Model context length.', () => o.contextLength);
    gauge('utilization', 'Scheduler utilization.', (v) => (v.scheduler.idle ? 0 : 1));
    gauge('num_retracted_reqs', 'The number of retracted requests.', () => 0);
    gauge('engine_startup_time', 'Engine startup time in seconds.', () => startupSeconds);
    if (o.disaggregationMode === 'prefill') {
      gauge('num_prefill_bootstrap_queue_reqs', 'Requests in the prefill bootstrap queue.', (v) => v.bootstrapQueue());
      gauge('num_prefill_inflight_queue_reqs', 'Requests whose KV is being transferred.', (v) => v.scheduler.transferring);
      gauge('kv_transfer_latency_ms', 'Latency of the last KV transfer (ms).', (v) => v.transferLatencyMs());
    } else if (o.disaggregationMode === 'decode') {
      gauge('num_decode_prealloc_queue_reqs', 'Requests waiting for KV pages.', (v) => v.scheduler.numPrealloc);
      gauge('num_decode_transfer_queue_reqs', 'Requests waiting for their KV transfer.', (v) => v.scheduler.transferring);
    }
    const tl = Object.keys(this.tokenizerLabels);
    const tokenizerLabels = this.tokenizerLabels;
    const counter = (name: string, help: string, key: keyof RankScheduler['counters']) =>
      new Counter({
        name: `sglang:${name}`,
        help,
        labelNames: tl,
        registers: reg,
        collect() {
          let sum = 0;
          for (const v of ranks) sum += v.scheduler.counters[key];
          this.reset();
          this.inc(tokenizerLabels, sum);
        },
      });
    counter('prompt_tokens_total', 'Number of prefill tokens processed.', 'promptTokens');
    counter('generation_tokens_total', 'Number of generation tokens processed.', 'generationTokens');
    counter('cached_tokens_total', 'Number of cached prompt tokens.', 'cachedTokens');
    counter('num_requests_total', 'Number of requests processed.', 'requests');
    counter('num_aborted_requests_total', 'Number of requests aborted.', 'aborted');
    const hl = [...tl, 'is_streaming'];
    this.ttft = new Histogram({ name: 'sglang:time_to_first_token_seconds', help: 'Histogram of time to first token in seconds.', labelNames: hl, buckets: TTFT_BUCKETS, registers: reg });
    this.itl = new Histogram({ name: 'sglang:inter_token_latency_seconds', help: 'Histogram of inter-token latency in seconds.', labelNames: tl, buckets: ITL_BUCKETS, registers: reg });
    this.e2e = new Histogram({ name: 'sglang:e2e_request_latency_seconds', help: 'Histogram of End-to-end request latency in seconds', labelNames: hl, buckets: E2E_BUCKETS, registers: reg });
  }

  firstToken(req: EngineRequest, seconds: number): void {
    this.ttft.observe({ ...this.tokenizerLabels, is_streaming: String(req.stream) }, seconds);
  }
  interToken(_req: EngineRequest, seconds: number): void {
    this.itl.observe(this.tokenizerLabels, seconds);
  }
  finished(req: EngineRequest): void {
    this.e2e.observe({ ...this.tokenizerLabels, is_streaming: String(req.stream) }, (performance.now() - req.arrivalMs) / 1000);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
