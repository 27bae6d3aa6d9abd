// The one config schema: every flag of every subcommand, with its type, default and help.
// parseCommandLine() validates argv against it and returns a frozen options object.
// Flags are kebab-case on the command line (`--max-total-tokens`) and camelCase in code.

import { KvgateError } from './errors.js';
import { DEFAULT_SEGMENT_CACHE_BYTES } from './preprocess/segmented_encoder.js';
import { ROUTING_DEFAULTS } from './router/routing_defaults.js';

// 'args': argparse's nargs; each occurrence takes the values up to the next --flag, and a
// repeated flag adds another group (`--prefill URL 8998 --prefill URL2`).
type Kind = 'string' | 'int' | 'float' | 'bool' | 'json' | 'list' | 'args';

interface OptionSpec {
  readonly kind: Kind;
  readonly help: string;
  readonly default?: unknown;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
}

interface CommandSpec {
  readonly summary: string;
  readonly usage: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
}

// Options shared by the roles that log.
const common = {
  logLevel: { kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], help: 'log verbosity' },
  logFormat: { kind: 'string', default: 'json', choices: ['json', 'text'], help: 'log lines on stderr: one JSON object each (json), or readable text (text)' },
} as const satisfies Record<string, OptionSpec>;

// Cluster security of serve and worker (src/security/secrets.ts). Secrets are read from a
// file or an environment variable, never from a flag value (command lines are world-readable).
const cluster = {
  clusterTokenFile: { kind: 'string', help: 'file holding the cluster token (or set KVGATE_CLUSTER_TOKEN): frontends and workers prove it to each other on every request-plane connection without sending it (HMAC; a worker answers 401, a frontend drops a worker that cannot prove it); all of a cluster need the same one' },
  engineApiKeyFile: { kind: 'string', help: 'file holding the engine API key (or set KVGATE_ENGINE_API_KEY): a worker starts its engine with --api-key, and workers and frontends send it as Authorization: Bearer on every engine request' },
  etcdUsername: { kind: 'string', help: 'etcd user (with --discovery; its password in KVGATE_ETCD_PASSWORD or --etcd-password-file)' },
  etcdPasswordFile: { kind: 'string', help: 'file holding the etcd password (or set KVGATE_ETCD_PASSWORD)' },
  etcdCaFile: { kind: 'string', help: 'CA certificate (PEM) that signed etcd\'s server certificate: connect to etcd over TLS' },
  etcdCertFile: { kind: 'string', help: 'client certificate (PEM) for etcd (with --etcd-key-file)' },
  etcdKeyFile: { kind: 'string', help: 'key (PEM) of --etcd-cert-file' },
  natsUser: { kind: 'string', help: 'NATS user (with --event-plane; its password in KVGATE_NATS_PASSWORD or --nats-password-file)' },
  natsPasswordFile: { kind: 'string', help: 'file holding the NATS password (or set KVGATE_NATS_PASSWORD)' },
  natsTokenFile: { kind: 'string', help: 'file holding a NATS authentication token (or set KVGATE_NATS_TOKEN); instead of --nats-user' },
  natsCaFile: { kind: 'string', help: 'CA certificate (PEM) that signed the NATS server certificate: connect over TLS' },
  natsCertFile: { kind: 'string', help: 'client certificate (PEM) for NATS (with --nats-key-file)' },
  natsKeyFile: { kind: 'string', help: 'key (PEM) of --nats-cert-file' },
} as const satisfies Record<string, OptionSpec>;

export const COMMANDS = {
  // ---- serve (frontend; issue 4 / 5) ----
  serve: {
    summary: 'OpenAI-compatible frontend with KV-aware routing (what `npm start` runs)',
    usage:
      'kvgate serve [options] [-- engine args]\n\n' +
      'Workers, one of:\n' +
      '  (default)              spawn --workers worker agents (kvgate worker --engine ...), engine args after --\n' +
      '  --prefill-workers N --decode-workers M   spawn a disaggregated fleet (kvgate worker --role prefill|decode)\n' +
      '  --worker-urls ws://..  worker agents started elsewhere (kvgate worker); KV events over the request plane\n' +
      '  --discovery etcd://..  worker agents found in etcd (kvgate worker --discovery etcd://..), joining and leaving as they come\n' +
      '  --engine-urls http://.. plain SGLang servers, no agent: no KV events, so kv routing is approximate;\n' +
      '                         grpc://host:port for servers started with --grpc-mode\n' +
      'Examples:\n' +
      '  kvgate serve                                   2 mocker workers, KV routing, http://127.0.0.1:8000\n' +
      '  kvgate serve --workers 4 --engine sglang -- --model-path Qwen/Qwen3-0.6B --page-size 16\n' +
      '  kvgate serve --prefill-workers 1 --decode-workers 1         prefill/decode disaggregation on 2 mockers',
    options: {
      ...common,
      host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on' },
      port: { kind: 'int', default: 8000, min: 0, max: 65535, help: 'HTTP port' },
      workers: { kind: 'int', default: 2, min: 0, max: 256, help: 'worker agents to spawn, each with its own engine (not with --worker-urls/--engine-urls)' },
      prefillWorkers: { kind: 'int', default: 0, min: 0, max: 256, help: 'disaggregated serving: prefill worker agents to spawn (kvgate worker --role prefill), with --decode-workers instead of --workers' },
      decodeWorkers: { kind: 'int', default: 0, min: 0, max: 256, help: 'disaggregated serving: decode worker agents to spawn (kvgate worker --role decode)' },
      pdPrefillTimeout: { kind: 'float', default: 300, min: 0, help: 'disaggregated requests: seconds from sending both legs to the prefill leg\'s answer (queueing, bootstrap, prefill, KV transfer); after it the room times out and both legs are aborted (0: no limit)' },
      pdTransferTimeout: { kind: 'float', default: 60, min: 0, help: 'disaggregated requests: seconds from the prefill leg\'s answer to the decode leg\'s first token (the KV handoff); after it both legs are aborted (0: no limit)' },
      pdDecodeTimeout: { kind: 'float', default: 0, min: 0, help: 'disaggregated requests: seconds from the first decode token to the end; after it the request is aborted (0: no limit)' },
      pdLocalPrefillTokens: { kind: 'int', default: 0, min: 0, help: 'conditional disaggregation: a request whose prompt leaves at most this many tokens uncached on the chosen prefill worker goes to the decode worker alone, which prefills it (0: never; the decode engine must accept requests without a bootstrap room: README, "Disaggregated serving")' },
      pdLocalPrefillQueue: { kind: 'float', default: 0, min: 0, help: 'conditional disaggregation: while the prefill engines report at least this many queued requests per worker, requests go to the decode worker alone (0: never)' },
      pdSlowPairFactor: { kind: 'float', default: 3, min: 0, help: 'disaggregated requests: a prefill/decode pair whose handoff gap EWMA is at least this many times the median of the prefill worker\'s other pairs is slow; its decode worker counts that ratio as extra active requests, so a decode worker of near-equal load on a faster link is chosen instead (0: off)' },
      engine: { kind: 'string', default: 'mocker', choices: ['mocker', 'sglang'], help: 'engine of the spawned workers; the mocker gets --model-path Qwen/Qwen3-0.6B --page-size 16 --speedup-ratio 10 unless given after --; sglang needs --model-path after -- and gets CUDA_VISIBLE_DEVICES=<worker index> unless set' },
      engineProtocol: { kind: 'string', default: 'http', choices: ['http', 'grpc'], help: 'how spawned workers talk to their engines: SGLang\'s HTTP API, or its gRPC API (--grpc-mode); see kvgate worker --engine-protocol' },
      workerUrls: { kind: 'list', help: 'request-plane URLs of worker agents started elsewhere (comma-separated ws://host:port)' },
      discovery: { kind: 'string', help: 'find worker agents in etcd (etcd://host:port[,host:port]) instead of spawning them: they register with kvgate worker --discovery; key layout in the README' },
      eventPlane: { kind: 'string', help: 'receive the workers\' KV events and load over NATS (nats://host:port[,host:port]), as every frontend replica does, instead of over each worker connection; the workers need the same --event-plane (with --worker-urls or --discovery)' },
      eventPlaneStaleAfter: { kind: 'float', default: 10, min: 0, help: 'with --event-plane: seconds without any frame (KV events, load reports) from a worker after which it is routed approximately until its frames come again (its own link to NATS is down; 0: never)' },
      engineUrls: { kind: 'list', help: 'plain SGLang servers to route to without agents (comma-separated http://host:port, or grpc://host:port for --grpc-mode servers)' },
      routerMode: { kind: 'string', default: 'kv', choices: ['kv', 'round-robin', 'random', 'power-of-two', 'least-loaded'], help: 'how a worker is picked: kv = least prefill+decode cost given cached prefixes; the others by the router\'s own count of active blocks' },
      kvOverlapScoreWeight: { kind: 'float', default: ROUTING_DEFAULTS.overlapWeight, min: 0, help: 'weight of prefill blocks (uncached prompt) against decode blocks in the kv cost (Dynamo\'s default is 1; this one comes from the fleet simulator\'s sweep)' },
      routerTemperature: { kind: 'float', default: ROUTING_DEFAULTS.temperature, min: 0, help: 'softmax temperature of the kv choice (0: always the lowest cost)' },
      routerPendingWeight: { kind: 'float', default: ROUTING_DEFAULTS.pendingWeight, min: 0, help: 'pending prefixes: a prompt routed to a worker counts there until its KV events store it; each such block beyond the cached ones takes this much off the kv cost, so a burst sharing a new prefix stays on one worker (0: off)' },
      routerOwnWeight: { kind: 'float', default: ROUTING_DEFAULTS.ownWeight, min: 0, help: 'weight of the prompt\'s own uncached blocks, counted in the kv cost again beside the queue they wait behind (the prefill the request takes from the fleet), so a prompt stays with its cached prefix behind a short queue rather than recompute it on an idle worker (0: Dynamo\'s cost)' },
      routerOwnQueueWeight: { kind: 'float', default: ROUTING_DEFAULTS.ownQueueWeight, min: 0, help: 'the own weight grows by this share per prompt the fleet has queued or in prefill per worker (the prompts a recompute delays), so a saturated fleet keeps prompts with their cached prefixes (0: a fixed own weight)' },
      routerPendingTimeout: { kind: 'float', default: ROUTING_DEFAULTS.pendingTimeoutMs / 1000, min: 0.001, help: 'seconds a routed prompt stays pending at most when its worker\'s KV events do not store it' },
      routerPrefillWaitShare: { kind: 'float', default: ROUTING_DEFAULTS.prefillWaitShare, min: 0, max: 1, help: 'kv mode (aggregated and prefill pools): a prompt whose chosen worker is still prefilling, queued behind other requests, a prompt sharing more than this share of it beyond what the worker caches waits (up to --router-pending-timeout) until the worker\'s KV events store that prefix, then is routed again, so the engine does not compute the prefix twice in one batch (1: never waits)' },
      kvEvents: { kind: 'bool', default: true, help: 'route on the engines\' KV events; --no-kv-events: approximate mode, the router predicts caches from its own decisions' },
      routerTtlSecs: { kind: 'float', default: 120, min: 0.001, help: 'approximate mode: seconds a routed prompt counts as cached on its worker' },
      workerStartupTimeout: { kind: 'float', default: 600, min: 0.1, help: 'seconds spawned workers may take to start their engines (model loading)' },
      modelPath: { kind: 'string', help: 'model directory with tokenizer.json and tokenizer_config.json (default: the engine\'s tokenizer_path if local, else the packaged Qwen3 tokenizer)' },
      tokenizerPath: { kind: 'string', help: 'tokenizer directory or tokenizer.json, when not in --model-path' },
      chatTemplate: { kind: 'string', help: 'Jinja file that replaces the model\'s chat template' },
      servedModelName: { kind: 'string', help: 'model name clients ask for (default: what the workers report)' },
      contextLength: { kind: 'int', min: 1, help: 'context length in tokens (default: the engines\', else the tokenizer config\'s)' },
      apiKey: { kind: 'list', help: 'API keys clients must send as Authorization: Bearer <key> (comma-separated; none: open)' },
      maxBodyBytes: { kind: 'int', min: 1, help: 'largest request body accepted (413 above); default: what the context can hold, context length x the most bytes one token stands for + 1 MiB of JSON, at most 32 MiB' },
      segmentCacheBytes: { kind: 'int', default: DEFAULT_SEGMENT_CACHE_BYTES, min: 0, help: 'memory for the token ids of chat prompt segments seen before (a repeated system prompt is not tokenized again; 0: off)' },
      // uWS closes a connection whose body stalls after 8-12 s (its fixed 10 s, counted in
      // 4 s ticks) without a response; a deadline under 8 s is always answered first.
      bodyTimeout: { kind: 'float', default: 5, min: 0.001, max: 7.5, help: 'seconds a request body may take after the headers, renewed each time another 160 KB arrived (408 after; at most 7.5, under the HTTP server\'s own silent cut-off at 8-12 s)' },
      shutdownTimeout: { kind: 'float', default: 30, min: 0, help: 'seconds a shutdown lets in-flight streams finish before cutting them' },
      clientStallTimeout: { kind: 'float', default: 30, min: 0.001, help: 'seconds a streaming client may stop reading before it is disconnected and its engine request aborted' },
      clientMaxBufferedBytes: { kind: 'int', default: 1048576, min: 1, help: 'response bytes held for a slow streaming client before it is disconnected' },
      healthCheckInterval: { kind: 'float', default: 5, min: 0, help: 'seconds between health probes: of --engine-urls servers every time, of idle workers per --idle-health-check (0: never)' },
      idleHealthCheck: { kind: 'float', default: 10, min: 0, help: 'seconds without requests after which a worker\'s engine gets a one-token generation check (/health_generate or gRPC HealthCheck) at the next probe; a failure sets the worker aside (0: never)' },
      streamIdleTimeout: { kind: 'float', default: 0, min: 0, help: 'seconds a worker may go silent mid-stream (the gateway waiting on it, not on the client); after it the worker is set aside and the request migrates if it has migrations left, else ends with an error (0: no limit)' },
      maxConcurrentRequests: { kind: 'int', default: 0, min: 0, help: 'generation requests served at once; more wait in a FIFO queue (0: no limit)' },
      queueSize: { kind: 'int', default: 100, min: 0, help: 'requests that may wait for a slot under --max-concurrent-requests; more are refused with 429 and Retry-After' },
      queueTimeoutSecs: { kind: 'float', default: 60, min: 0.001, help: 'seconds a request may wait in the queue before it is refused with 503 and Retry-After' },
      workerCooldown: { kind: 'float', default: 5, min: 0, help: 'seconds a worker that could not be reached, broke a stream or timed out stays out of routing before it is tried again (once its engine passes a generation health check)' },
      cbFailureThreshold: { kind: 'int', default: 10, min: 0, help: 'circuit breaker: failures in a row (5xx, unreachable, timeouts) within --cb-window-duration-secs that take a worker out (0: no breaker)' },
      cbSuccessThreshold: { kind: 'int', default: 3, min: 1, help: 'circuit breaker: successes that end a worker\'s probation after its open period (one failure on probation opens it again)' },
      cbTimeoutDurationSecs: { kind: 'float', default: 60, min: 0, help: 'circuit breaker: seconds an opened worker takes no requests' },
      cbWindowDurationSecs: { kind: 'float', default: 120, min: 0, help: 'circuit breaker: seconds within which the failures in a row must fall (0: no window)' },
      firstTokenTimeout: { kind: 'float', default: 0, min: 0, help: 'seconds a worker may take to send a request\'s first token (per worker it is sent to); after it the worker is set aside and the request moves on (0: no limit)' },
      activeDecodeBlocksThreshold: { kind: 'float', default: 1, min: 0, max: 1, help: 'a worker is busy when its engine reports more KV blocks in use than this fraction of its capacity (every dp rank): new requests go to the others while one is free; while all are, requests get 503 workers_busy with Retry-After (1: never)' },
      workerWaitTimeout: { kind: 'float', default: 30, min: 0, help: 'seconds a request waits for a worker when none can take it (all being restarted or set aside), before 503 no_workers (0: fail at once)' },
      retryMaxRetries: { kind: 'int', default: 5, min: 0, max: 1000, help: 'times a request that failed before its first token (worker unreachable, 503 busy, draining) or found no worker is tried again, on another worker when one is up (0: never)' },
      retryInitialBackoffMs: { kind: 'float', default: 50, min: 0, help: 'milliseconds before the first retry; each next one waits 1.5x longer, +-20 % jitter' },
      retryMaxBackoffMs: { kind: 'float', default: 30000, min: 0, help: 'longest wait between two retries, in milliseconds' },
      migrationLimit: { kind: 'int', min: 0, max: 4294967295, help: 'times a request whose stream breaks mid-generation may move to another worker (default: what each worker registered with kvgate worker --migration-limit; 0: never)' },
      httpServer: { kind: 'string', default: 'node', choices: ['node', 'uws'], help: 'HTTP server for the API: node (node:http), or uws (uWebSockets.js: no HTTP/1.0, so behind nginx set proxy_http_version 1.1, and no pipelined POSTs; README, "Node versions and the HTTP server")' },
      engineWait: { kind: 'float', default: 60, min: 0, help: 'seconds to wait at start-up for the first --worker-urls/--engine-urls worker to answer' },
      tlsCaFile: { kind: 'string', help: 'CA certificate (PEM) that signed the workers\' request-plane certificates (wss:// workers, kvgate worker --tls-cert-file); default: the system\'s CAs' },
      ...cluster,
    },
  },
  // ---- mocker (simulated SGLang engine; issue 3) ----
  mocker: {
    summary: 'a simulated SGLang engine: its HTTP API, KV events and bootstrap server, no GPU',
    usage: 'kvgate mocker [options]   (accepts the common sglang.launch_server flags)',
    options: {
      ...common,
      // SGLang spells levels the Python way; accept both spellings.
      logLevel: { kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'warning', 'error', 'critical'], help: 'log verbosity' },
      host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on' },
      port: { kind: 'int', default: 30000, min: 0, max: 65535, help: 'HTTP port (0 = ephemeral; the ready line shows the real one)' },
      modelPath: { kind: 'string', default: 'Qwen/Qwen3-0.6B', help: 'model name reported by /model_info (the mocker emits Qwen3 token ids)' },
      servedModelName: { kind: 'string', help: 'served model name (default: --model-path)' },
      tokenizerPath: { kind: 'string', help: 'tokenizer path reported by /model_info (default: --model-path)' },
      pageSize: { kind: 'int', default: 1, min: 1, max: 4096, help: 'tokens per KV page (= KV-event block size). 1 as in SGLang, so a mocker given an SGLang command line behaves like that engine; kvgate serve gives the workers it spawns 16 (the common GPU setting) unless set after --' },
      maxTotalTokens: { kind: 'int', default: 262144, min: 1, help: 'KV cache capacity in tokens, per DP rank' },
      maxRunningRequests: { kind: 'int', default: 1024, min: 1, help: 'most requests decoding at once, per DP rank' },
      chunkedPrefillSize: { kind: 'int', default: 8192, min: -1, help: 'prefill tokens per step before a prompt is chunked (-1 = no chunking)' },
      maxPrefillTokens: { kind: 'int', default: 16384, min: 1, help: 'prefill token budget of one step' },
      contextLength: { kind: 'int', default: 40960, min: 2, help: 'model context length' },
      vocabSize: { kind: 'int', default: 151936, min: 2, help: 'vocabulary size (input ids must be below it)' },
      eosTokenId: { kind: 'int', default: 151645, min: 0, help: 'EOS token id (Qwen3 <|im_end|>)' },
      speedupRatio: { kind: 'float', default: 1, min: 0.000001, help: 'run the timing model this many times faster than real time' },
      decodeSpeedupRatio: { kind: 'float', default: 1, min: 0.000001, help: 'extra speedup of decode steps only' },
      seed: { kind: 'int', default: 0, help: 'seed of the deterministic output tokens' },
      naturalOutputLen: { kind: 'int', default: 512, min: 1, help: 'typical answer length: without ignore_eos a request ends with EOS after 0.5-1.25x min(this, max_new_tokens) tokens' },
      randomSeed: { kind: 'int', help: 'SGLang spelling of --seed' },
      dpSize: { kind: 'int', default: 1, min: 1, max: 256, help: 'data-parallel ranks: independent caches/schedulers/event ports' },
      dp: { kind: 'int', min: 1, max: 256, help: 'alias of --dp-size' },
      loadBalanceMethod: { kind: 'string', choices: ['round_robin', 'total_requests', 'total_tokens', 'follow_bootstrap_room'], help: 'how a request without a DP rank picks one (default: total_requests; follow_bootstrap_room in PD mode)' },
      kvEventsConfig: { kind: 'json', help: 'SGLang KV-event publisher config, e.g. {"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558","topic":"kv"}' },
      kvEventsWire: { kind: 'string', default: 'array', choices: ['array', 'map'], help: 'event encoding: array (SGLang <= 0.5.19) or map (tagged maps and topic-framed replay, SGLang >= 0.5.22)' },
      disableRadixCache: { kind: 'bool', default: false, help: 'no prefix cache: cached_tokens is 0 and no KV events are stored' },
      disaggregationMode: { kind: 'string', default: 'null', choices: ['null', 'prefill', 'decode'], help: 'PD disaggregation role' },
      disaggregationBootstrapPort: { kind: 'int', default: 8998, min: 0, max: 65535, help: 'bootstrap server port of a prefill engine (0 = ephemeral)' },
      disaggregationTransferBackend: { kind: 'string', default: 'mooncake', choices: ['mooncake', 'nixl', 'ascend', 'mori', 'fake'], help: 'fake: PD engines run alone (no partner, no room needed); others: the simulated transfer' },
      disaggregationBootstrapTimeout: { kind: 'float', default: 300, min: 0.001, help: 'seconds a prefill waits for its decode side (SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT)' },
      disaggregationWaitingTimeout: { kind: 'float', default: 300, min: 0.001, help: 'seconds a decode waits for its prefill (SGLANG_DISAGGREGATION_WAITING_TIMEOUT)' },
      disaggregationDecodeLocalPrefill: { kind: 'bool', default: false, help: 'kvgate only, not an SGLang flag: a decode engine prefills a request that comes without a bootstrap room itself (what kvgate serve --pd-local-prefill-* sends), instead of refusing it as SGLang does' },
      kvTransferBandwidth: { kind: 'float', default: 64, min: 0, help: 'simulated prefill-to-decode bandwidth in GB/s (0 = instant)' },
      kvBytesPerToken: { kind: 'int', default: 114688, min: 0, help: 'KV bytes per token (Qwen3-0.6B bf16: 28 layers * 2 * 8 heads * 128 * 2)' },
      enableMetrics: { kind: 'bool', default: false, help: 'serve Prometheus /metrics with SGLang metric names' },
      skipTokenizerInit: { kind: 'bool', default: false, help: 'no tokenizer: reject text prompts, return only output_ids' },
      incrementalStreamingOutput: { kind: 'bool', default: false, help: 'stream disjoint text/output_ids instead of cumulative' },
      streamOutput: { kind: 'bool', help: 'older SGLang spelling of --incremental-streaming-output' },
      streamInterval: { kind: 'int', default: 1, min: 1, help: 'tokens per streamed chunk' },
      allowAutoTruncate: { kind: 'bool', default: false, help: 'truncate over-long prompts instead of rejecting them' },
      startupDelay: { kind: 'float', default: 0, min: 0, help: 'seconds /health answers 503 before the engine is ready' },
      expertDistributionRecorderMode: { kind: 'string', choices: ['stat', 'stat_approx'], help: 'record which experts each token goes to (/start_expert_distribution_record, /stop_..., /dump_...); the mocker routes tokens through a simulated MoE shape and dumps JSON to $SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR (default /tmp); unset: those routes answer 400, as SGLang fails them' },
      expertDistributionRecorderBufferSize: { kind: 'int', default: 1000, min: -1, help: 'forward passes a dump holds at most (the most recent; -1: all)' },
      grpcMode: { kind: 'bool', default: false, help: 'serve SGLang\'s gRPC API (service SglangScheduler, token ids in and out) on --port instead of HTTP, as sglang.launch_server --grpc-mode does' },
      apiKey: { kind: 'string', help: 'as SGLang: every HTTP request except OPTIONS, /health* and /metrics* must send Authorization: Bearer <key> (401 {"error":"Unauthorized"} otherwise)' },
      // Accepted so the mocker can stand in for `python3 -m sglang.launch_server`; no effect.
      tpSize: { kind: 'int', help: 'ignored (sglang compatibility)' },
      tp: { kind: 'int', help: 'ignored (sglang compatibility)' },
      ppSize: { kind: 'int', help: 'ignored (sglang compatibility)' },
      pp: { kind: 'int', help: 'ignored (sglang compatibility)' },
      epSize: { kind: 'int', help: 'ignored (sglang compatibility)' },
      ep: { kind: 'int', help: 'ignored (sglang compatibility)' },
      nnodes: { kind: 'int', help: 'ignored (sglang compatibility)' },
      nodeRank: { kind: 'int', help: 'ignored (sglang compatibility)' },
      distInitAddr: { kind: 'string', help: 'ignored (sglang compatibility)' },
      trustRemoteCode: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      memFractionStatic: { kind: 'float', help: 'ignored (sglang compatibility)' },
      dtype: { kind: 'string', help: 'ignored (sglang compatibility)' },
      kvCacheDtype: { kind: 'string', help: 'ignored (sglang compatibility)' },
      quantization: { kind: 'string', help: 'ignored (sglang compatibility)' },
      loadFormat: { kind: 'string', help: 'ignored (sglang compatibility)' },
      revision: { kind: 'string', help: 'ignored (sglang compatibility)' },
      tokenizerMode: { kind: 'string', help: 'ignored (sglang compatibility)' },
      chatTemplate: { kind: 'string', help: 'ignored (sglang compatibility)' },
      reasoningParser: { kind: 'string', help: 'ignored (sglang compatibility)' },
      toolCallParser: { kind: 'string', help: 'ignored (sglang compatibility)' },
      attentionBackend: { kind: 'string', help: 'ignored (sglang compatibility)' },
      samplingBackend: { kind: 'string', help: 'ignored (sglang compatibility)' },
      schedulePolicy: { kind: 'string', help: 'ignored (sglang compatibility)' },
      scheduleConservativeness: { kind: 'float', help: 'ignored (sglang compatibility)' },
      cudaGraphMaxBs: { kind: 'int', help: 'ignored (sglang compatibility)' },
      disableCudaGraph: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      disableOverlapSchedule: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      enableMixedChunk: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      enableTorchCompile: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      enableDpAttention: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      enableCacheReport: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      enableP2pCheck: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      disaggregationIbDevice: { kind: 'string', help: 'ignored (sglang compatibility)' },
      watchdogTimeout: { kind: 'float', help: 'ignored (sglang compatibility)' },
      decodeLogInterval: { kind: 'int', help: 'ignored (sglang compatibility)' },
      logLevelHttp: { kind: 'string', help: 'ignored (sglang compatibility)' },
      logRequests: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      showTimeCost: { kind: 'bool', help: 'ignored (sglang compatibility)' },
      baseGpuId: { kind: 'int', help: 'ignored (sglang compatibility)' },
    },
  },
  // ---- router (drop-in for SGLang's router: sglang_router.launch_router / smg launch; issue 13) ----
  // Defaults are sglang-router 0.3.2's (`--help`), except --host (kvgate binds loopback unless told).
  router: {
    summary: 'a drop-in for SGLang\'s router (sglang_router.launch_router, smg launch): plain SGLang servers by URL',
    usage:
      'kvgate router --worker-urls URL [URL...] [options]\n' +
      '       kvgate router --pd-disaggregation --prefill URL [BOOTSTRAP_PORT|none] ... --decode URL ... [options]\n' +
      'Flags that are accepted but have no effect are listed in the README (kvgate router).',
    options: {
      logLevel: { kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'warning', 'error'], help: 'log verbosity' },
      logFormat: common.logFormat,
      host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on (SGLang\'s router defaults to 0.0.0.0; kvgate to loopback)' },
      port: { kind: 'int', default: 30000, min: 0, max: 65535, help: 'HTTP port (0: any free port, printed when ready)' },
      workerUrls: { kind: 'args', help: 'SGLang servers (http://host:port), space- or comma-separated' },
      policy: { kind: 'string', default: 'cache_aware', choices: ['random', 'round_robin', 'power_of_two', 'cache_aware', 'kv'], help: 'how a worker is picked; kv: exact prefix routing on the engines\' KV events (cache_aware for workers without events; in PD mode the prefill leg, decode by power_of_two)' },
      prefillPolicy: { kind: 'string', choices: ['random', 'round_robin', 'power_of_two', 'cache_aware'], help: 'PD: policy of the prefill leg (default: --policy)' },
      decodePolicy: { kind: 'string', choices: ['random', 'round_robin', 'power_of_two', 'cache_aware'], help: 'PD: policy of the decode leg (default: --policy)' },
      cacheThreshold: { kind: 'float', default: 0.3, min: 0, max: 1, help: 'cache_aware: share of the request text a worker\'s tree must match to get it' },
      balanceAbsThreshold: { kind: 'int', default: 64, min: 0, help: 'cache_aware: balance by load when max-min in-flight requests exceeds this...' },
      balanceRelThreshold: { kind: 'float', default: 1.5, min: 0, help: '...and max exceeds min times this' },
      evictionIntervalSecs: { kind: 'float', default: 60, min: 0.001, help: 'cache_aware: seconds between evictions of the trees' },
      maxTreeSize: { kind: 'int', default: 67108864, min: 1, help: 'cache_aware: bytes of text each worker\'s tree keeps (least recently used evicted first)' },
      dpAware: { kind: 'bool', default: false, help: 'one routing target per data-parallel rank (from /server_info dp_size); sends data_parallel_rank' },
      pdDisaggregation: { kind: 'bool', default: false, help: 'prefill/decode disaggregation: --prefill and --decode workers' },
      prefill: { kind: 'args', help: 'PD: a prefill server and its bootstrap port (omitted or none: the engine\'s default); repeatable' },
      decode: { kind: 'args', help: 'PD: a decode server; repeatable' },
      maxConcurrentRequests: { kind: 'int', default: -1, min: -1, help: 'requests served at once (-1: no limit); more wait in a FIFO queue' },
      queueSize: { kind: 'int', default: 100, min: 0, help: 'requests that may wait for a slot (429 when full)' },
      queueTimeoutSecs: { kind: 'float', default: 60, min: 0, help: 'seconds a request may wait for a slot (408 after)' },
      requestTimeoutSecs: { kind: 'float', default: 1800, min: 0.001, help: 'seconds a worker may take to answer a request (504 after)' },
      retryMaxRetries: { kind: 'int', default: 5, min: 0, help: 'attempts of a request on status 408/429/500/502/503/504 or a failed connection, each on a newly picked worker' },
      retryInitialBackoffMs: { kind: 'int', default: 50, min: 0, help: 'delay before the first retry' },
      retryMaxBackoffMs: { kind: 'int', default: 30000, min: 0, help: 'longest delay between retries' },
      retryBackoffMultiplier: { kind: 'float', default: 1.5, min: 1, help: 'delay growth per retry' },
      retryJitterFactor: { kind: 'float', default: 0.2, min: 0, max: 1, help: 'random share added to or taken from each delay' },
      disableRetries: { kind: 'bool', default: false, help: 'one attempt per request' },
      cbFailureThreshold: { kind: 'int', default: 10, min: 1, help: 'consecutive failures that open a worker\'s circuit (no requests)' },
      cbSuccessThreshold: { kind: 'int', default: 3, min: 1, help: 'successes in half-open state that close it again' },
      cbTimeoutDurationSecs: { kind: 'float', default: 60, min: 0, help: 'seconds an open circuit waits before half-open' },
      cbWindowDurationSecs: { kind: 'float', default: 120, min: 0, help: 'accepted, no effect: kvgate counts consecutive failures (README)' },
      disableCircuitBreaker: { kind: 'bool', default: false, help: 'never open a circuit' },
      healthFailureThreshold: { kind: 'int', default: 3, min: 1, help: 'failed health checks in a row that mark a worker unhealthy' },
      healthSuccessThreshold: { kind: 'int', default: 2, min: 1, help: 'passed health checks in a row that mark it healthy again' },
      healthCheckTimeoutSecs: { kind: 'float', default: 5, min: 0.001, help: 'seconds a health check may take' },
      healthCheckIntervalSecs: { kind: 'float', default: 60, min: 0.001, help: 'seconds between health checks of each worker' },
      healthCheckEndpoint: { kind: 'string', default: '/health', help: 'path of the health check' },
      disableHealthCheck: { kind: 'bool', default: false, help: 'no health checks: every worker counts as healthy' },
      workerStartupTimeoutSecs: { kind: 'float', default: 1800, min: 0, help: 'seconds to wait at start-up (and on add_worker) for a worker to pass its health check' },
      workerStartupCheckInterval: { kind: 'float', default: 30, min: 0.001, help: 'accepted; kvgate polls a starting worker every 0.5 s at most, sooner when this is smaller' },
      requestIdHeaders: { kind: 'args', help: 'headers a request id is read from (default: x-request-id x-correlation-id x-trace-id request-id); echoed as x-request-id' },
      prometheusHost: { kind: 'string', default: '127.0.0.1', help: 'address of the Prometheus /metrics listener (SGLang\'s default: 0.0.0.0)' },
      prometheusPort: { kind: 'int', default: 29000, min: 0, max: 65535, help: 'port of the Prometheus /metrics listener (also served on --port)' },
      apiKey: { kind: 'string', help: 'API key sent to the workers as Authorization: Bearer (as SGLang\'s router does); clients are not checked' },
      maxPayloadSize: { kind: 'int', default: 536870912, min: 1, help: 'largest request body (413 above)' },
      httpServer: { kind: 'string', default: 'node', choices: ['node', 'uws'], help: 'kvgate only: HTTP server for clients: node (node:http), or uws (uWebSockets.js; its limits: README, "Node versions and the HTTP server")' },
      shutdownGracePeriodSecs: { kind: 'float', default: 180, min: 0, help: 'seconds in-flight requests may take to finish on SIGTERM' },
      modelPath: { kind: 'string', help: 'kv policy: tokenizer folder for text prompts (default: the workers\' tokenizer_path when local, else the packaged Qwen3 tokenizer)' },
      tokenizerPath: { kind: 'string', help: 'kv policy: tokenizer folder or tokenizer.json (overrides --model-path)' },
      // Accepted so SGLang's command lines run unchanged; no effect (README lists why).
      rateLimitTokensPerSecond: { kind: 'float', help: 'accepted, no effect: the limit is on concurrency, not a refill rate (README)' },
      prometheusDurationBuckets: { kind: 'args', help: 'accepted, no effect (README)' },
      logDir: { kind: 'string', help: 'accepted, no effect: logs go to stderr (README)' },
      corsAllowedOrigins: { kind: 'args', help: 'accepted, no effect (README)' },
      bucketAdjustIntervalSecs: { kind: 'float', help: 'accepted, no effect: no bucket policy (README)' },
      chatTemplate: { kind: 'string', help: 'accepted, no effect: workers render their own chat templates over HTTP (README)' },
    },
  },
  // ---- worker (agent beside one engine; issue 5) ----
  worker: {
    summary: 'start and supervise one engine process and serve it to frontends',
    usage: 'kvgate worker --engine sglang|mocker [options] -- <sglang.launch_server args>',
    options: {
      ...common,
      engine: { kind: 'string', default: 'sglang', choices: ['sglang', 'mocker'], help: 'engine to start: python3 -m sglang.launch_server, or kvgate mocker' },
      engineProtocol: { kind: 'string', default: 'http', choices: ['http', 'grpc'], help: 'how the worker talks to its engine: SGLang\'s HTTP API, or its gRPC API (the engine gets --grpc-mode; token ids in and out, no JSON)' },
      role: { kind: 'string', default: 'agg', choices: ['agg', 'prefill', 'decode'], help: 'aggregated, or one side of prefill/decode disaggregation (sets --disaggregation-mode)' },
      migrationLimit: { kind: 'int', default: 0, min: 0, max: 4294967295, help: 'times a frontend may move a request that fails on this worker to another (in the model card)' },
      host: { kind: 'string', default: '127.0.0.1', help: 'address the request plane and the engine listen on (frontends stream from the engine directly); beyond loopback without a cluster token and an engine API key, a warning is logged' },
      port: { kind: 'int', default: 0, min: 0, max: 65535, help: 'request-plane (WebSocket) port; 0 = any free port (printed when ready)' },
      discovery: { kind: 'string', help: 'register in etcd (etcd://host:port[,host:port]) under a 10 s lease, kept alive, so frontends started with the same --discovery find this worker' },
      eventPlane: { kind: 'string', help: 'publish KV events and load reports on NATS (nats://host:port[,host:port]) once, for every frontend, instead of over each frontend connection; frontends need the same --event-plane' },
      advertiseHost: { kind: 'string', help: 'host frontends and decode engines use to reach this worker and its engine (default: --host)' },
      python: { kind: 'string', default: 'python3', help: 'Python interpreter with SGLang installed (--engine sglang)' },
      startupTimeout: { kind: 'float', default: 600, min: 0.1, help: 'seconds to wait for the engine to answer GET /health with 200' },
      maxRestarts: { kind: 'int', default: 5, min: 0, help: 'restarts in a row of a crashed engine before the worker gives up' },
      restartBackoff: { kind: 'float', default: 1, min: 0, help: 'seconds before the first restart; doubles per attempt (at most 30 s), resets after 60 s of uptime' },
      drainTimeout: { kind: 'float', default: 30, min: 0, help: 'seconds in-flight requests may take to finish after SIGTERM' },
      stopGrace: { kind: 'float', default: 10, min: 0, help: 'seconds between SIGTERM and SIGKILL when stopping the engine' },
      loadInterval: { kind: 'float', default: 0.5, min: 0.01, help: 'seconds between reads of the engine load (/v1/loads, /get_load or /metrics)' },
      tlsCertFile: { kind: 'string', help: 'certificate (PEM) of the request plane: serve it over TLS (wss://; frontends check it with --tls-ca-file). The engine API stays HTTP' },
      tlsKeyFile: { kind: 'string', help: 'key (PEM) of --tls-cert-file' },
      ...cluster,
    },
  },
  // ---- bench (load generator; issue 14) ----
  bench: {
    summary: 'load generator: streams a workload at an OpenAI-compatible endpoint or SGLang /generate, writes JSON and markdown results',
    usage:
      'kvgate bench --url URL --workload shared-prefix|multi-turn|trace [--concurrency N | --rate R] [--requests N] --output DIR\n\n' +
      'Load: --concurrency N keeps N requests in flight; --rate R sends Poisson arrivals at R/s; a trace\n' +
      'without either is replayed at its timestamps (divided by --trace-speedup).\n' +
      'Examples:\n' +
      '  kvgate bench --url http://127.0.0.1:8000 --workload shared-prefix --concurrency 32 --output out/\n' +
      '  kvgate bench --url http://127.0.0.1:30000 --api sglang-generate --workload trace --trace-speedup 4 --requests 500 --output out/',
    options: {
      url: { kind: 'string', help: 'base URL of the target (http://host:port); required' },
      api: { kind: 'string', default: 'openai-completions', choices: ['openai-completions', 'openai-chat', 'sglang-generate'], help: 'request format: POST /v1/completions, /v1/chat/completions (streaming, usage in the last chunk), or SGLang\'s POST /generate' },
      model: { kind: 'string', help: 'model field of OpenAI requests (default: the first of GET /v1/models)' },
      apiKey: { kind: 'string', help: 'sent as Authorization: Bearer <key>' },
      workload: { kind: 'string', choices: ['shared-prefix', 'multi-turn', 'trace'], help: 'what to send; required' },
      promptFormat: { kind: 'string', default: 'auto', choices: ['auto', 'tokens', 'text'], help: 'prompts as token ids (completions prompt array, /generate input_ids) or as text of one word per token; auto: text for openai-chat, tokens otherwise' },
      concurrency: { kind: 'int', min: 1, max: 100000, help: 'requests kept in flight (closed loop; not with --rate)' },
      rate: { kind: 'float', min: 0.000001, help: 'requests per second, Poisson arrivals (open loop; not with --concurrency)' },
      requests: { kind: 'int', min: 1, help: 'measured requests (default: the whole workload; a trace: all its lines)' },
      duration: { kind: 'float', min: 0.001, help: 'seconds to keep sending (in-flight requests then finish); with --requests, whichever ends first' },
      warmup: { kind: 'int', default: 0, min: 0, help: 'requests sent and awaited before measuring (taken from the workload, not counted)' },
      seed: { kind: 'int', default: 1, help: 'seed of prompts, order and arrival gaps (the same seed sends the same workload)' },
      output: { kind: 'string', help: 'directory for results.json and results.md; required' },
      maxConnections: { kind: 'int', min: 1, max: 100000, help: 'HTTP connection pool size (default: --concurrency, or 256 with --rate or a trace)' },
      requestTimeout: { kind: 'float', default: 600, min: 0.001, help: 'seconds a request may take before it counts as a timeout error' },
      checkOutputLength: { kind: 'bool', default: true, help: 'send ignore_eos and count a response whose output length differs from the requested one as an error (output_length)' },
      progress: { kind: 'string', default: 'auto', choices: ['auto', 'bar', 'lines', 'none'], help: 'progress on stderr: a bar on a terminal, else a line every 10%' },
      // shared-prefix: SGLang bench_serving --dataset-name generated-shared-prefix
      gspNumGroups: { kind: 'int', default: 64, min: 1, help: 'shared-prefix: groups (one system prompt each)' },
      gspPromptsPerGroup: { kind: 'int', default: 16, min: 1, help: 'shared-prefix: prompts per group' },
      gspSystemPromptLen: { kind: 'int', default: 2048, min: 0, help: 'shared-prefix: system prompt tokens' },
      gspQuestionLen: { kind: 'int', default: 128, min: 1, help: 'shared-prefix: question tokens' },
      gspOutputLen: { kind: 'int', default: 256, min: 1, help: 'shared-prefix: output tokens per request' },
      // multi-turn
      mtSessions: { kind: 'int', default: 64, min: 1, help: 'multi-turn: conversations' },
      mtTurns: { kind: 'int', default: 6, min: 1, help: 'multi-turn: turns per conversation' },
      mtSystemPromptLen: { kind: 'int', default: 1000, min: 0, help: 'multi-turn: system prompt tokens shared by all conversations' },
      mtHistoryLen: { kind: 'int', default: 2000, min: 0, help: 'multi-turn: each conversation\'s own context tokens before its first question' },
      mtQuestionLen: { kind: 'int', default: 64, min: 1, help: 'multi-turn: tokens of each new question' },
      mtOutputLen: { kind: 'int', default: 100, min: 1, help: 'multi-turn: output tokens per turn' },
      mtThinkTime: { kind: 'float', default: 0, min: 0, help: 'multi-turn: mean seconds between an answer and the next question (exponential; 0: at once)' },
      // trace: Mooncake FAST'25 format
      traceFile: { kind: 'string', help: 'trace: Mooncake JSONL (timestamp ms, input_length, output_length, hash_ids of 512-token blocks); default: the shared conversation_trace.jsonl' },
      traceSpeedup: { kind: 'float', default: 1, min: 0.000001, help: 'trace: timestamps are divided by this (2: twice as fast)' },
      traceMaxInput: { kind: 'int', min: 1, help: 'trace: skip requests with a longer input (fit a small context)' },
      traceMaxOutput: { kind: 'int', min: 1, help: 'trace: cap output lengths at this' },
    },
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

// serve's --max-body-bytes default: a prompt of more than contextLength x maxBytesPerToken
// bytes cannot fit (preprocess/token_bound.ts), and the request's JSON adds little. At most
// 32 MiB (reached at ~85K tokens of context for Qwen3), also when the tokenizer bounds
// nothing (maxBytesPerToken null).
export function defaultMaxBodyBytes(contextLength: number, maxBytesPerToken: number | null): number {
  const most = 32 * 1024 * 1024;
  return maxBytesPerToken === null ? most : Math.min(most, contextLength * maxBytesPerToken + 1024 * 1024);
}

type ValueOf<S extends OptionSpec> = S['kind'] extends 'int' | 'float'
  ? number
  : S['kind'] extends 'bool'
    ? boolean
    : S['kind'] extends 'list'
      ? string[]
      : S['kind'] extends 'args'
        ? string[][]
      : S['kind'] extends 'json'
        ? unknown
        : string;

type Opts<O extends Record<string, OptionSpec>> = {
  readonly [K in keyof O]: O[K] extends { default: unknown } ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

export type OptionsOf<C extends CommandName> = Opts<(typeof COMMANDS)[C]['options']>;

export interface ParsedCommandLine<C extends CommandName> {
  options: OptionsOf<C>;
  // Everything after `--`, untouched (engine arguments).
  passthrough: string[];
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function bad(message: string): never {
  throw new KvgateError('invalid_config', message);
}

function convert(flag: string, spec: OptionSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'int':
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) bad(`--${flag} expects a number, got '${raw}'`);
      if (spec.kind === 'int' && !Number.isInteger(n)) bad(`--${flag} expects an integer, got '${raw}'`);
      if (spec.min !== undefined && n < spec.min) bad(`--${flag} must be >= ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) bad(`--${flag} must be <= ${spec.max}, got ${n}`);
      return n;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad(`--${flag} expects true or false, got '${raw}'`);
    case 'json':
      try {
        return JSON.parse(raw);
      } catch {
        return bad(`--${flag} expects JSON, got '${raw}'`);
      }
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'args':
      return [raw];
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) bad(`--${flag} must be one of ${spec.choices.join(', ')}, got '${raw}'`);
      return raw;
  }
}

// The closest known flag, for the unknown-flag error: "did you mean --x?".
function nearest(flag: string, known: string[]): string {
  const distance = (a: string, b: string): number => {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const row = [i];
      for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row;
    }
    return prev[b.length]!;
  };
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(flag, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, flag.length / 4) ? `; did you mean --${best}?` : '';
}

// Own keys only: `--constructor` or `--to-string` must not find Object.prototype's members.
const optionSpec = (specs: Record<string, OptionSpec>, key: string): OptionSpec | undefined => (Object.hasOwn(specs, key) ? specs[key] : undefined);

export function parseCommandLine<C extends CommandName>(command: C, argv: readonly string[]): ParsedCommandLine<C> {
  const specs: Record<string, OptionSpec> = COMMANDS[command].options;
  const values: Record<string, unknown> = {};
  let passthrough: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      passthrough = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--')) bad(`unexpected argument '${arg}' (engine arguments go after --)`);
    const eq = arg.indexOf('=');
    let flag = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let key = camel(flag);
    let spec = optionSpec(specs, key);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (!spec && flag.startsWith('no-') && optionSpec(specs, camel(flag.slice(3)))?.kind === 'bool' && raw === undefined) {
      flag = flag.slice(3);
      key = camel(flag);
      spec = optionSpec(specs, key);
      raw = 'false';
    }
    if (!spec) bad(`unknown option --${flag} for 'kvgate ${command}'${nearest(flag, Object.keys(specs).map(kebab))} (see kvgate ${command} --help)`);
    if (spec.kind === 'args') {
      const group = raw === undefined ? [] : [raw];
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) group.push(argv[++i]!);
      values[key] = [...((values[key] as string[][] | undefined) ?? []), group];
      continue;
    }
    if (raw === undefined) {
      if (spec.kind === 'bool') raw = 'true';
      else if (i + 1 < argv.length && argv[i + 1] !== '--') raw = argv[++i]!;
      else bad(`--${flag} needs a value`);
    }
    values[key] = convert(flag, spec, raw);
  }
  for (const [key, spec] of Object.entries(specs)) {
    if (!Object.hasOwn(values, key) && spec.default !== undefined) values[key] = spec.default;
  }
  return { options: Object.freeze(values) as OptionsOf<C>, passthrough };
}

export function helpText(command: CommandName): string {
  const cmd: CommandSpec = COMMANDS[command];
  const lines = [`${cmd.summary}`, '', `usage: ${cmd.usage}`, '', 'options:'];
  for (const [key, spec] of Object.entries(cmd.options)) {
    const def = spec.default === undefined ? '' : ` (default: ${JSON.stringify(spec.default)})`;
    const choices = spec.choices ? ` [${spec.choices.join('|')}]` : '';
    const value = spec.kind === 'bool' ? '' : ` <${spec.kind}>`;
    lines.push(`  --${kebab(key)}${value}`.padEnd(34) + ` ${spec.help}${choices}${def}`);
  }
  return lines.join('\n');
}
