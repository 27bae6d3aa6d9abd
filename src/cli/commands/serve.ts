// `kvgate serve`: the OpenAI-compatible frontend and its router over a set of workers:
// spawned worker agents (default: two mockers), agents started elsewhere (--worker-urls), or
// plain SGLang servers (--engine-urls), or agents registered in etcd (--discovery). Waits for the workers, loads the tokenizer and chat
// template once, prints where it serves, and on SIGINT/SIGTERM drains in-flight streams,
// then stops the workers it spawned and exits 0.

import type { HttpServerKind } from '../../http/wire.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterWorkerSet } from '../../cluster/cluster_workers.js';
import { discoveredWorkerSet } from '../../discovery/discovered_workers.js';
import { EtcdDiscovery, etcdEndpoints } from '../../discovery/etcd.js';
import { NatsEventSubscriber, natsServers } from '../../transport/nats_event_plane.js';
import { EVENT_HEARTBEAT_MS } from '../../transport/event_heartbeat.js';
import { clusterEngineArgs, LocalCluster } from '../../cluster/local_cluster.js';
import { ENGINE_URL } from '../../engine/direct_engine.js';
import { KvgateError } from '../../errors.js';
import { loadServedModel, startFrontend, type FrontendHandle } from '../../frontend/frontend.js';
import { withRemote, type WorkerSet } from '../../router/worker_set.js';
import type { RouterPolicy } from '../../native/addon.js';
import { createLogger, type LogFormat, type LogLevel, type Logger } from '../../observability/log.js';
import { KvWorkerSet } from '../../router/kv_worker_set.js';
import type { EngineKind, WorkerRole } from '../../engine/model_card.js';
import { defaultMaxBodyBytes, parseCommandLine, type OptionsOf } from '../../config.js';
import { clusterSecrets, tlsFiles } from '../../security/secrets.js';
import { selfCommand } from '../self.js';
import { stopOnSignals } from '../stop.js';

type ServeOptions = OptionsOf<'serve'>;

function checkUrls(flag: string, urls: readonly string[], scheme: RegExp, what: string): void {
  for (const u of urls) if (!scheme.test(u)) throw new KvgateError('invalid_config', `${flag}: '${u}' is not ${what}`);
}

function banner(url: string, model: string, what: string, apiKeys: readonly string[]): string {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 32 });
  const auth = apiKeys.length > 0 ? ` -H 'authorization: Bearer ${apiKeys[0]}'` : '';
  return [
    `kvgate serve: listening on ${url}`,
    `  model:   ${model}`,
    `  workers: ${what}`,
    `  try:     curl ${url}/v1/chat/completions -H 'content-type: application/json'${auth} -d '${body}'`,
    '',
  ].join('\n');
}

export async function run(argv: string[]): Promise<void> {
  const { options: o, passthrough } = parseCommandLine('serve', argv);
  const logger = createLogger({ level: o.logLevel as LogLevel, format: o.logFormat as LogFormat }, { role: 'frontend' });
  const workerUrls = o.workerUrls ?? [];
  const engineUrls = o.engineUrls ?? [];
  checkUrls('--worker-urls', workerUrls, /^wss?:\/\/[^/]+/, 'a ws://host:port URL');
  checkUrls('--engine-urls', engineUrls, ENGINE_URL, 'an http(s):// or grpc:// URL');
  const discoveryUrl = o.discovery;
  if (discoveryUrl !== undefined) {
    etcdEndpoints(discoveryUrl);
    if (workerUrls.length > 0 || engineUrls.length > 0) throw new KvgateError('invalid_config', '--discovery finds the workers: give it without --worker-urls/--engine-urls');
  }
  const spawnWorkers = workerUrls.length === 0 && engineUrls.length === 0 && discoveryUrl === undefined;
  if (o.eventPlane !== undefined) {
    natsServers(o.eventPlane);
    if (spawnWorkers || engineUrls.length > 0) throw new KvgateError('invalid_config', '--event-plane takes the events of workers started with the same --event-plane: give it with --worker-urls or --discovery');
  }
  // A disaggregated fleet replaces the aggregated one.
  const pd = o.prefillWorkers > 0 || o.decodeWorkers > 0;
  if (pd && (o.prefillWorkers === 0 || o.decodeWorkers === 0)) {
    throw new KvgateError('invalid_config', 'disaggregated serving needs both: --prefill-workers N --decode-workers M');
  }
  if (pd && !spawnWorkers) throw new KvgateError('invalid_config', '--prefill-workers/--decode-workers spawn the fleet: give them without --worker-urls/--engine-urls/--discovery (those take workers of any role)');
  const roles: WorkerRole[] = pd ? [...Array<WorkerRole>(o.prefillWorkers).fill('prefill'), ...Array<WorkerRole>(o.decodeWorkers).fill('decode')] : Array<WorkerRole>(o.workers).fill('agg');
  // Workers re-send their load every EVENT_HEARTBEAT_MS: a shorter limit would flap.
  if (o.eventPlaneStaleAfter > 0 && o.eventPlaneStaleAfter * 1000 < 2 * EVENT_HEARTBEAT_MS) {
    throw new KvgateError('invalid_config', `--event-plane-stale-after must be 0 (never) or at least ${(2 * EVENT_HEARTBEAT_MS) / 1000} s: idle workers send a frame every ${EVENT_HEARTBEAT_MS / 1000} s`);
  }
  if (spawnWorkers && roles.length === 0) {
    throw new KvgateError('invalid_config', 'no workers: --workers 0 needs --worker-urls ws://host:port[,...] (kvgate worker) or --engine-urls http://host:port[,...] / grpc://host:port[,...] (SGLang servers)');
  }
  if (!spawnWorkers && passthrough.length > 0) {
    throw new KvgateError('invalid_config', 'engine arguments after -- are for the workers serve spawns; with --worker-urls/--engine-urls/--discovery pass them to those workers instead');
  }
  const engineArgs = spawnWorkers ? clusterEngineArgs(o.engine as EngineKind, passthrough) : [];
  // Conditional disaggregation sends requests to decode engines without a room: spawned
  // decode mockers take them (SGLang's refuse them; README, "Disaggregated serving").
  if (pd && o.engine === 'mocker' && (o.pdLocalPrefillTokens > 0 || o.pdLocalPrefillQueue > 0) && !engineArgs.includes('--disaggregation-decode-local-prefill')) {
    engineArgs.push('--disaggregation-decode-local-prefill');
  }
  const secrets = clusterSecrets(o);
  const workerCa = tlsFiles('tls', o.tlsCaFile)?.ca;

  const workers = new KvWorkerSet({
    mode: o.routerMode as RouterPolicy,
    overlapWeight: o.kvOverlapScoreWeight,
    temperature: o.routerTemperature,
    pendingWeight: o.routerPendingWeight,
    pendingTimeoutMs: o.routerPendingTimeout * 1000,
    ownWeight: o.routerOwnWeight,
    ownQueueWeight: o.routerOwnQueueWeight,
    prefillWaitShare: o.routerPrefillWaitShare,
    kvEvents: o.kvEvents,
    approxTtlMs: o.routerTtlSecs * 1000,
    servedModelName: o.servedModelName,
    healthIntervalMs: o.healthCheckInterval * 1000,
    idleHealthCheckMs: o.idleHealthCheck * 1000,
    migrationLimit: o.migrationLimit,
    penaltyMs: o.workerCooldown * 1000,
    workerWaitMs: o.workerWaitTimeout * 1000,
    busyThreshold: o.activeDecodeBlocksThreshold,
    breaker: { failureThreshold: o.cbFailureThreshold, successThreshold: o.cbSuccessThreshold, openMs: o.cbTimeoutDurationSecs * 1000, windowMs: o.cbWindowDurationSecs * 1000 },
    firstTokenTimeoutMs: o.firstTokenTimeout * 1000,
    streamIdleTimeoutMs: o.streamIdleTimeout * 1000,
    retry: { maxRetries: o.retryMaxRetries, initialBackoffMs: o.retryInitialBackoffMs, maxBackoffMs: o.retryMaxBackoffMs },
    pd: {
      prefillMs: o.pdPrefillTimeout * 1000,
      transferMs: o.pdTransferTimeout * 1000,
      decodeMs: o.pdDecodeTimeout * 1000,
      localPrefillTokens: o.pdLocalPrefillTokens,
      localPrefillQueue: o.pdLocalPrefillQueue,
      slowPairFactor: o.pdSlowPairFactor,
    },
    ...(secrets.engineApiKey !== undefined ? { engineApiKey: secrets.engineApiKey } : {}),
    eventStaleMs: o.eventPlane !== undefined ? o.eventPlaneStaleAfter * 1000 : 0,
    client: {
      ...(secrets.clusterToken !== undefined ? { token: secrets.clusterToken } : {}),
      ...(workerCa !== undefined ? { ca: readFileSync(workerCa) } : {}),
    },
    log: logger,
  });
  let cluster: LocalCluster | null = null;
  // What the frontend routes over: the worker set, with the cluster's respawns when it has one.
  let routed: WorkerSet = workers;
  let frontend: FrontendHandle | null = null;
  let events: NatsEventSubscriber | null = null;

  const stop = stopOnSignals(logger, async () => {
    logger.info('shutting down: draining in-flight requests', { inflight: frontend?.inflight() ?? 0, deadlineSeconds: o.shutdownTimeout });
    await frontend?.close();
    await routed.close();
    await cluster?.stop();
  });

  try {
    if (o.eventPlane !== undefined) {
      events = await NatsEventSubscriber.connect(o.eventPlane, (id, bytes) => workers.eventFrame(id, bytes), (ev) => workers.applyRouting(ev), {
        log: logger,
        access: secrets.nats,
        ...(secrets.clusterToken !== undefined ? { clusterToken: secrets.clusterToken } : {}),
        onState: (connected) => workers.eventPlaneDown(!connected),
      });
      const sink = events;
      workers.syncWith({ publish: (ev) => sink.publishRouting(ev) });
    }
    if (spawnWorkers) {
      logger.info(pd ? `starting ${o.prefillWorkers} prefill and ${o.decodeWorkers} decode ${o.engine} worker(s)` : `starting ${o.workers} ${o.engine} worker(s)`, { engineArgs });
      cluster = new LocalCluster({
        workers: roles.length,
        roles,
        engine: o.engine as EngineKind,
        engineArgs,
        // The spawned workers inherit the environment (KVGATE_* secrets); secret files are passed on.
        workerArgs: [
          ...['--log-level', o.logLevel, '--startup-timeout', String(o.workerStartupTimeout), '--engine-protocol', o.engineProtocol],
          ...(o.clusterTokenFile !== undefined ? ['--cluster-token-file', o.clusterTokenFile] : []),
          ...(o.engineApiKeyFile !== undefined ? ['--engine-api-key-file', o.engineApiKeyFile] : []),
        ],
        kvgate: selfCommand(),
        startupTimeoutMs: o.workerStartupTimeout * 1000 + 10_000,
        log: logger,
      });
      routed = clusterWorkerSet(workers, cluster);
      for (const w of await cluster.ready()) workers.addAgent(w.url);
      await workers.waitForWorkers(roles.length, 30_000);
    } else if (discoveryUrl !== undefined) {
      const discovery = new EtcdDiscovery({ url: discoveryUrl, log: logger, access: secrets.etcd });
      routed = discoveredWorkerSet(workers, discovery);
      await waitForFirst(workers, o, logger);
    } else {
      for (const u of workerUrls) workers.addAgent(u);
      for (const u of engineUrls) workers.addEngine(u);
      await waitForFirst(workers, o, logger);
    }
    if (events) routed = withRemote(routed, 'eventPlane', events);
    if (stop.stopping) return;
    frontend = await serveModel(o, workers, routed, logger);
  } catch (err) {
    if (stop.stopping) return;
    await routed.close();
    await events?.close();
    await cluster?.stop(10_000);
    throw err;
  }
  if (stop.stopping) {
    await frontend.close();
    return;
  }
  const what = spawnWorkers
    ? `${pd ? `${o.prefillWorkers} prefill + ${o.decodeWorkers} decode` : o.workers} x ${o.engine} (pids ${cluster!.workers.map((w) => w.pid).join(', ')}), router ${o.routerMode}${o.kvEvents ? '' : ' (approximate)'}`
    : discoveryUrl !== undefined
      ? `found in ${discoveryUrl} (${workers.workers().length} now), router ${o.routerMode}${o.kvEvents ? '' : ' (approximate)'}`
      : `${[...workerUrls, ...engineUrls].join(', ')}, router ${o.routerMode}${o.kvEvents && engineUrls.length === 0 ? '' : ' (approximate)'}`;
  // Stdout is for this banner only: scripts and tests wait for its first line.
  process.stdout.write(banner(frontend.url, o.servedModelName ?? workers.cards()[0]?.servedModelName ?? '', what, o.apiKey ?? []));
}

// External workers: the first one that answers gives the model card; the others join as
// they come. Without any, only a --served-model-name lets the frontend start.
async function waitForFirst(workers: KvWorkerSet, o: ServeOptions, logger: Logger): Promise<void> {
  try {
    await workers.waitForWorkers(1, o.engineWait * 1000);
  } catch (err) {
    if (o.servedModelName === undefined) {
      throw new KvgateError('invalid_config', `no worker answered within ${o.engineWait} s and no --served-model-name was given (${(err as Error).message})`);
    }
    logger.warn('no worker answered yet; serving and waiting for them', { error: (err as Error).message });
  }
}

async function serveModel(o: ServeOptions, workers: KvWorkerSet, routed: WorkerSet, logger: Logger): Promise<FrontendHandle> {
  const cards = workers.cards();
  const name = o.servedModelName ?? cards[0]!.servedModelName;
  const others = [...new Set(cards.map((c) => c.servedModelName))].filter((n) => n !== name);
  if (o.servedModelName === undefined && others.length > 0) {
    logger.warn(`workers serve other models too (${others.join(', ')}); this frontend serves ${name} only`);
  }
  const mine = cards.filter((c) => o.servedModelName !== undefined || c.servedModelName === name);
  const lengths = mine.map((c) => c.contextLength).filter((n) => n > 0);
  // An engine's own tokenizer directory, when it is on this machine.
  const engineTokenizer = mine.map((c) => c.tokenizerPath).find((p) => existsSync(join(p, 'tokenizer.json')));
  const model = loadServedModel(
    { name, tokenizerPath: o.tokenizerPath ?? o.modelPath ?? engineTokenizer, chatTemplatePath: o.chatTemplate, contextLength: o.contextLength, segmentCacheBytes: o.segmentCacheBytes },
    lengths.length > 0 ? Math.min(...lengths) : 0,
  );
  const frontend = await startFrontend(
    {
      host: o.host,
      port: o.port,
      models: [model],
      apiKeys: o.apiKey ?? [],
      maxBodyBytes: o.maxBodyBytes ?? defaultMaxBodyBytes(model.contextLength, model.preprocessor.tokenizer.maxBytesPerToken),
      bodyTimeoutMs: o.bodyTimeout * 1000,
      shutdownTimeoutMs: o.shutdownTimeout * 1000,
      clientStallTimeoutMs: o.clientStallTimeout * 1000,
      clientMaxBufferedBytes: o.clientMaxBufferedBytes,
      admission: { maxConcurrent: o.maxConcurrentRequests, queueSize: o.queueSize, queueTimeoutMs: o.queueTimeoutSecs * 1000 },
      httpServer: o.httpServer as HttpServerKind,
      logger,
    },
    routed,
  );
  logger.info('serving', { url: frontend.url, model: name, contextLength: model.contextLength, tokenizer: model.preprocessor.modelDir, router: o.routerMode });
  return frontend;
}
