// The mocker's options: the `kvgate mocker` flags (src/config.ts, the one schema and the one
// set of defaults) in camelCase, resolved into the values the engine runs with.

import { parseCommandLine, type OptionsOf } from '../config.js';
import { KvgateError } from '../errors.js';

type CliOptions = OptionsOf<'mocker'>;

// SGLang's `--kv-events-config` JSON (python/sglang/srt/disaggregation/kv_events.py KVEventsConfig).
export interface KvEventsConfig {
  publisher?: 'zmq' | 'null';
  endpoint?: string;
  bind?: boolean | null;
  replay_endpoint?: string | null;
  buffer_steps?: number;
  hwm?: number;
  max_queue_size?: number;
  topic?: string;
  format?: 'default' | 'dynamo';
}

export type MockerOptions = Omit<{ -readonly [K in keyof CliOptions]: CliOptions[K] }, 'kvEventsConfig'> & {
  // The parsed JSON object, or the JSON text as the flag takes it.
  kvEventsConfig: KvEventsConfig | string | undefined;
};

// The publisher config with SGLang's defaults filled in.
export interface ResolvedKvEvents {
  publisher: 'zmq';
  endpoint: string;
  bind: boolean | null;
  replay_endpoint: string | null;
  buffer_steps: number;
  hwm: number;
  max_queue_size: number;
  topic: string;
  format: 'default' | 'dynamo';
}

export type DisaggregationMode = 'null' | 'prefill' | 'decode';
export type LoadBalanceMethod = 'round_robin' | 'total_requests' | 'total_tokens' | 'follow_bootstrap_room';

// What the engine runs with: defaults applied, aliases folded, everything checked.
export interface ResolvedOptions {
  host: string;
  port: number;
  modelPath: string;
  servedModelName: string;
  tokenizerPath: string;
  pageSize: number;
  maxTotalTokens: number;
  maxRunningRequests: number;
  chunkedPrefillSize: number;
  maxPrefillTokens: number;
  contextLength: number;
  vocabSize: number;
  eosTokenId: number;
  speedupRatio: number;
  decodeSpeedupRatio: number;
  seed: number;
  naturalOutputLen: number;
  dpSize: number;
  loadBalanceMethod: LoadBalanceMethod;
  kvEvents: ResolvedKvEvents | null;
  kvEventsWire: 'array' | 'map';
  disableRadixCache: boolean;
  disaggregationMode: DisaggregationMode;
  disaggregationBootstrapPort: number;
  disaggregationTransferBackend: string;
  bootstrapTimeoutMs: number;
  waitingTimeoutMs: number;
  decodeLocalPrefill: boolean;
  kvTransferBandwidth: number;
  kvBytesPerToken: number;
  enableMetrics: boolean;
  skipTokenizerInit: boolean;
  incrementalStreamingOutput: boolean;
  streamInterval: number;
  allowAutoTruncate: boolean;
  startupDelayMs: number;
  // --port serves SGLang's gRPC API instead of HTTP.
  grpcMode: boolean;
  // SGLang's --api-key: required as a Bearer token on all but /health* and /metrics*.
  apiKey: string | null;
  expertDistributionRecorderMode: 'stat' | 'stat_approx' | null;
  expertDistributionRecorderBufferSize: number;
  logLevel: string;
  // Echoed by /server_info so a client sees what it asked for.
  raw: MockerOptions;
}

const KV_EVENTS_KEYS = new Set(['publisher', 'endpoint', 'bind', 'replay_endpoint', 'buffer_steps', 'hwm', 'max_queue_size', 'topic', 'format']);

function bad(message: string): never {
  throw new KvgateError('invalid_config', message);
}

export function defaultOptions(): MockerOptions {
  return { ...parseCommandLine('mocker', []).options } as MockerOptions;
}

function resolveKvEvents(value: MockerOptions['kvEventsConfig']): ResolvedKvEvents | null {
  if (value === undefined || value === null || value === '') return null;
  let cfg: unknown = value;
  if (typeof value === 'string') {
    try {
      cfg = JSON.parse(value);
    } catch {
      bad(`--kv-events-config expects JSON, got '${value}'`);
    }
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) bad('--kv-events-config must be a JSON object');
  const c = cfg as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!KV_EVENTS_KEYS.has(key)) bad(`--kv-events-config: unknown key '${key}' (known: ${[...KV_EVENTS_KEYS].join(', ')})`);
  }
  const publisher = c.publisher ?? 'null';
  if (publisher !== 'zmq' && publisher !== 'null') bad(`--kv-events-config: unknown publisher '${String(publisher)}' (zmq or null)`);
  if (publisher === 'null') return null;
  const str = (k: string, d: string | null) => {
    const v = c[k] ?? d;
    if (v !== null && typeof v !== 'string') bad(`--kv-events-config: '${k}' must be a string`);
    return v as string | null;
  };
  const int = (k: string, d: number) => {
    const v = c[k] ?? d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(`--kv-events-config: '${k}' must be a positive integer`);
    return v;
  };
  const bind = c.bind ?? null;
  if (bind !== null && typeof bind !== 'boolean') bad(`--kv-events-config: 'bind' must be true, false or null`);
  const format = c.format ?? 'default';
  if (format !== 'default' && format !== 'dynamo') bad(`--kv-events-config: 'format' must be default or dynamo`);
  const endpoint = str('endpoint', 'tcp://*:5557')!;
  const replay = str('replay_endpoint', null);
  for (const ep of [endpoint, replay]) {
    if (ep !== null && !/^tcp:\/\/.+:\d+$/.test(ep)) bad(`--kv-events-config: endpoint '${ep}' must be tcp://host:port (the mocker publishes over TCP only)`);
  }
  return {
    publisher: 'zmq',
    endpoint,
    bind,
    replay_endpoint: replay,
    buffer_steps: int('buffer_steps', 10_000),
    hwm: int('hwm', 100_000),
    max_queue_size: int('max_queue_size', 100_000),
    topic: str('topic', '')!,
    format,
  };
}

export function resolveOptions(partial: Partial<MockerOptions> = {}): ResolvedOptions {
  const o: MockerOptions = { ...defaultOptions() };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  const intIn = (name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isInteger(v) || v < min || v > max) bad(`${name} must be an integer in [${min}, ${max}], got ${v}`);
    return v;
  };
  const posFloat = (name: string, v: number, min = 0) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) bad(`${name} must be a number >= ${min}, got ${v}`);
    return v;
  };
  const dpSize = intIn('dpSize', o.dp ?? o.dpSize, 1, 256);
  const mode = o.disaggregationMode as DisaggregationMode;
  if (!['null', 'prefill', 'decode'].includes(mode)) bad(`disaggregationMode must be null, prefill or decode, got '${mode}'`);
  const pageSize = intIn('pageSize', o.pageSize, 1, 4096);
  const maxTotalTokens = intIn('maxTotalTokens', o.maxTotalTokens, 1);
  if (maxTotalTokens < pageSize * 2) bad(`maxTotalTokens (${maxTotalTokens}) must hold at least two pages of ${pageSize} tokens`);
  const chunked = o.chunkedPrefillSize;
  if (!Number.isInteger(chunked) || (chunked < 1 && chunked !== -1)) bad(`chunkedPrefillSize must be a positive integer or -1, got ${chunked}`);
  const lb = (o.loadBalanceMethod ?? (mode === 'null' ? 'total_requests' : 'follow_bootstrap_room')) as LoadBalanceMethod;
  if (!['round_robin', 'total_requests', 'total_tokens', 'follow_bootstrap_room'].includes(lb)) bad(`unknown loadBalanceMethod '${lb}'`);
  const wire = o.kvEventsWire;
  if (wire !== 'array' && wire !== 'map') bad(`kvEventsWire must be array or map, got '${wire}'`);
  const modelPath = o.modelPath;
  return {
    host: o.host,
    port: intIn('port', o.port, 0, 65535),
    modelPath,
    servedModelName: o.servedModelName ?? modelPath,
    tokenizerPath: o.tokenizerPath ?? modelPath,
    pageSize,
    maxTotalTokens,
    maxRunningRequests: intIn('maxRunningRequests', o.maxRunningRequests, 1),
    chunkedPrefillSize: chunked,
    maxPrefillTokens: intIn('maxPrefillTokens', o.maxPrefillTokens, 1),
    contextLength: intIn('contextLength', o.contextLength, 2),
    vocabSize: intIn('vocabSize', o.vocabSize, 2),
    eosTokenId: intIn('eosTokenId', o.eosTokenId, 0),
    speedupRatio: posFloat('speedupRatio', o.speedupRatio, 1e-6),
    decodeSpeedupRatio: posFloat('decodeSpeedupRatio', o.decodeSpeedupRatio, 1e-6),
    seed: o.randomSeed ?? o.seed,
    naturalOutputLen: intIn('naturalOutputLen', o.naturalOutputLen, 1),
    dpSize,
    loadBalanceMethod: lb,
    kvEvents: resolveKvEvents(o.kvEventsConfig),
    kvEventsWire: wire,
    disableRadixCache: o.disableRadixCache,
    disaggregationMode: mode,
    disaggregationBootstrapPort: intIn('disaggregationBootstrapPort', o.disaggregationBootstrapPort, 0, 65535),
    disaggregationTransferBackend: o.disaggregationTransferBackend,
    bootstrapTimeoutMs: posFloat('disaggregationBootstrapTimeout', o.disaggregationBootstrapTimeout, 1e-3) * 1000,
    waitingTimeoutMs: posFloat('disaggregationWaitingTimeout', o.disaggregationWaitingTimeout, 1e-3) * 1000,
    decodeLocalPrefill: o.disaggregationDecodeLocalPrefill,
    kvTransferBandwidth: posFloat('kvTransferBandwidth', o.kvTransferBandwidth),
    kvBytesPerToken: intIn('kvBytesPerToken', o.kvBytesPerToken, 0),
    enableMetrics: o.enableMetrics,
    skipTokenizerInit: o.skipTokenizerInit,
    incrementalStreamingOutput: o.streamOutput ?? o.incrementalStreamingOutput,
    streamInterval: intIn('streamInterval', o.streamInterval, 1),
    allowAutoTruncate: o.allowAutoTruncate,
    startupDelayMs: posFloat('startupDelay', o.startupDelay) * 1000,
    grpcMode: o.grpcMode,
    apiKey: o.apiKey ?? null,
    expertDistributionRecorderMode: (o.expertDistributionRecorderMode as 'stat' | 'stat_approx' | undefined) ?? null,
    expertDistributionRecorderBufferSize: intIn('expertDistributionRecorderBufferSize', o.expertDistributionRecorderBufferSize, -1),
    logLevel: o.logLevel,
    raw: o,
  };
}
