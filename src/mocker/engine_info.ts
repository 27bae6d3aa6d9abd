// What the mocker reports about itself, whichever API asks: /model_info, /server_info and
// /v1/loads over HTTP, GetModelInfo, GetServerInfo and GetLoads over gRPC.

import type { MockEngine } from './engine.js';
import type { KvEventPorts } from './kv_events.js';
import { maxReqInputLen } from './protocol.js';

export function engineModelInfo(o: MockEngine['opts']) {
  return {
    model_path: o.modelPath,
    served_model_name: o.servedModelName,
    tokenizer_path: o.tokenizerPath,
    is_generation: true,
    preferred_sampling_params: null,
    weight_version: 'default',
    load_format: 'auto',
    reasoning_parser: null,
    tool_call_parser: null,
    disaggregation_mode: o.disaggregationMode,
    has_image_understanding: false,
    has_audio_understanding: false,
    model_type: 'qwen3',
    architectures: ['Qwen3ForCausalLM'],
  };
}

function kvEventsDescriptor(o: MockEngine['opts'], kvPorts: KvEventPorts | null) {
  if (!o.kvEvents || !kvPorts) return null;
  const d: Record<string, unknown> = {
    publisher: 'zmq',
    endpoint_host: kvPorts.endpointHost,
    endpoint_port_base: kvPorts.publishBase,
    topic: o.kvEvents.topic,
    block_size: o.pageSize,
    dp_size: o.dpSize,
  };
  if (kvPorts.replayBase !== null) d.replay_endpoint_port_base = kvPorts.replayBase;
  return d;
}

// The keys of /server_info that come from the scheduler, not ServerArgs (gRPC's
// GetServerInfo carries them apart, in scheduler_info).
export const SCHEDULER_INFO_KEYS = ['max_total_num_tokens', 'max_req_input_len'] as const;

export function engineServerInfo(engine: MockEngine, kvPorts: KvEventPorts | null, bootstrapPort: number | null) {
  const o = engine.opts;
  return {
    model_path: o.modelPath,
    tokenizer_path: o.tokenizerPath,
    served_model_name: o.servedModelName,
    host: o.host,
    port: o.port,
    grpc_mode: o.grpcMode,
    skip_tokenizer_init: o.skipTokenizerInit,
    context_length: o.contextLength,
    page_size: o.pageSize,
    max_total_tokens: o.maxTotalTokens,
    max_running_requests: o.maxRunningRequests,
    chunked_prefill_size: o.chunkedPrefillSize,
    max_prefill_tokens: o.maxPrefillTokens,
    tp_size: 1,
    pp_size: 1,
    ep_size: 1,
    dp_size: o.dpSize,
    enable_dp_attention: false,
    expert_distribution_recorder_mode: o.expertDistributionRecorderMode,
    expert_distribution_recorder_buffer_size: o.expertDistributionRecorderBufferSize,
    load_balance_method: o.loadBalanceMethod,
    random_seed: o.seed,
    stream_interval: o.streamInterval,
    incremental_streaming_output: o.incrementalStreamingOutput,
    enable_metrics: o.enableMetrics,
    disable_radix_cache: o.disableRadixCache,
    allow_auto_truncate: o.allowAutoTruncate,
    kv_events_config: o.kvEvents ? JSON.stringify(o.kvEvents) : null,
    disaggregation_mode: o.disaggregationMode,
    disaggregation_bootstrap_port: o.disaggregationMode === 'prefill' ? bootstrapPort : o.disaggregationBootstrapPort,
    disaggregation_transfer_backend: o.disaggregationTransferBackend,
    speculative_algorithm: null,
    launch_command: null,
    // Scheduler info.
    max_total_num_tokens: o.maxTotalTokens,
    max_req_input_len: maxReqInputLen(o),
    kv_events: kvEventsDescriptor(o, kvPorts),
    startup_time: engine.startedAt / 1000,
    internal_states: engine.ranks.map((s) => ({
      last_gen_throughput: s.genThroughput,
      memory_usage: { kv_cache: s.usedTokens / o.maxTotalTokens, token_capacity: o.maxTotalTokens },
      avg_spec_accept_length: null,
      effective_max_running_requests_per_dp: o.maxRunningRequests,
      step_time_dict: {},
    })),
    version: 'kvgate-mocker',
    frontend: 'python',
    // The mocker has no tokenizer: a `text` prompt is tokenized one id per UTF-8 byte.
    mocker: { text_tokenization: 'utf8-bytes', kv_events_wire: o.kvEventsWire, speedup_ratio: o.speedupRatio },
  };
}

const LOAD_SECTIONS = ['core', 'memory', 'spec', 'lora', 'disagg', 'queues', 'all'];

// /v1/loads `include` (and GetLoads.include): null = every section; throws SGLang's text on
// an unknown one.
export function parseLoadSections(raw: readonly string[] | undefined): Set<string> | null {
  if (!raw || raw.length === 0 || (raw.length === 1 && raw[0] === '')) return null;
  const include = new Set(raw.map((s) => s.trim()));
  const invalid = [...include].filter((s) => !LOAD_SECTIONS.includes(s));
  if (invalid.length) {
    throw new Error(`Invalid include sections: {${invalid.map((s) => `'${s}'`).join(', ')}}. Valid options: [${[...LOAD_SECTIONS].sort().map((s) => `'${s}'`).join(', ')}]`);
  }
  return include;
}

// One DP rank's /v1/loads entry.
export function rankLoad(engine: MockEngine, r: number, include: Set<string> | null): Record<string, unknown> {
  const o = engine.opts;
  const pd = o.disaggregationMode !== 'null';
  const s = engine.ranks[r]!;
  const used = s.usedTokens;
  const load: Record<string, unknown> = {
    timestamp: Date.now() / 1000,
    dp_rank: r,
    num_running_reqs: s.numRunning,
    num_waiting_reqs: s.numWaiting + s.numBootstrapping,
    num_waiting_uncached_tokens: s.waitingTokens,
    num_used_tokens: used,
    num_total_tokens: used + s.waitingTokens,
    num_active_tokens: used + s.waitingTokens,
    num_prealloc_ready_tokens: 0,
    max_total_num_tokens: o.maxTotalTokens,
    max_running_requests: o.maxRunningRequests,
    token_usage: used / o.maxTotalTokens,
    gen_throughput: s.genThroughput,
    cache_hit_rate: s.lastCacheHitRate,
    utilization: s.idle ? 0 : 1,
    total_prefill_uncached_tokens: 0,
    total_prefill_busy_us: 0,
    decode_moments: null,
  };
  if (include !== null && include.has('core') && include.size === 1) return load;
  const want = (name: string) => include === null || include.has('all') || include.has(name);
  if (want('memory')) load.memory = { weight_gb: 0, kv_cache_gb: (o.maxTotalTokens * o.raw.kvBytesPerToken) / 1e9, graph_gb: 0, token_capacity: o.maxTotalTokens };
  if (pd && want('disagg')) {
    load.disaggregation = {
      mode: o.disaggregationMode,
      prefill_prealloc_queue_reqs: o.disaggregationMode === 'prefill' ? s.numBootstrapping : 0,
      prefill_inflight_queue_reqs: o.disaggregationMode === 'prefill' ? s.transferring : 0,
      decode_prealloc_queue_reqs: o.disaggregationMode === 'decode' ? s.numPrealloc : 0,
      decode_transfer_queue_reqs: o.disaggregationMode === 'decode' ? s.transferring : 0,
      decode_retracted_queue_reqs: 0,
      kv_transfer_speed_gb_s: o.kvTransferBandwidth,
      kv_transfer_latency_ms: engine.rendezvous?.lastTransferMs ?? 0,
    };
  }
  if (want('queues')) load.queues = { waiting: s.numWaiting + s.numBootstrapping, grammar: 0, paused: 0, retracted: 0 };
  return load;
}
