// `kvgate router`: the drop-in for SGLang's router (`python -m sglang_router.launch_router`,
// `smg launch`) with the same flags. Prints one ready line on stdout; SIGTERM/SIGINT lets
// in-flight requests finish for --shutdown-grace-period-secs.

import { KvgateError } from '../../errors.js';
import { HttpServer } from '../../http/server.js';
import type { HttpServerKind } from '../../http/wire.js';
import { createLogger, type LogFormat, type LogLevel } from '../../observability/log.js';
import { startRouter, type RouterConfig } from '../../sgl_router/router.js';
import type { PolicyName } from '../../sgl_router/policies.js';
import { parseCommandLine, type OptionsOf } from '../../config.js';
import { stopOnSignals } from '../stop.js';

const DEFAULT_ID_HEADERS = ['x-request-id', 'x-correlation-id', 'x-trace-id', 'request-id'];

// `--worker-urls a b` and `--worker-urls a,b` both work.
const urls = (groups: string[][] | undefined): string[] => (groups ?? []).flat().flatMap((u) => u.split(',')).map((u) => u.trim()).filter(Boolean);

export function routerConfig(o: OptionsOf<'router'>): RouterConfig {
  let pd: RouterConfig['pd'] = null;
  if (o.pdDisaggregation) {
    const prefill = (o.prefill ?? []).map((g) => {
      if (g.length < 1 || g.length > 2) throw new KvgateError('invalid_config', `--prefill takes URL [BOOTSTRAP_PORT|none], got '${g.join(' ')}'`);
      const port = g[1];
      if (port === undefined || port.toLowerCase() === 'none') return { url: g[0]!, bootstrapPort: null };
      const n = Number(port);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new KvgateError('invalid_config', `--prefill ${g[0]}: bootstrap port must be 1-65535 or none, got '${port}'`);
      return { url: g[0]!, bootstrapPort: n };
    });
    pd = { prefill, decode: urls(o.decode) };
    if (urls(o.workerUrls).length > 0) throw new KvgateError('invalid_config', '--worker-urls does not go with --pd-disaggregation; use --prefill and --decode');
  } else if (o.prefill || o.decode) {
    throw new KvgateError('invalid_config', '--prefill/--decode need --pd-disaggregation');
  }
  const idHeaders = o.requestIdHeaders ? o.requestIdHeaders.flat().map((h) => h.toLowerCase()) : DEFAULT_ID_HEADERS;
  return {
    host: o.host,
    port: o.port,
    workerUrls: urls(o.workerUrls),
    policy: o.policy as PolicyName | 'kv',
    tokenizerPath: o.tokenizerPath ?? o.modelPath,
    prefillPolicy: o.prefillPolicy as PolicyName | undefined,
    decodePolicy: o.decodePolicy as PolicyName | undefined,
    cacheThreshold: o.cacheThreshold,
    balanceAbsThreshold: o.balanceAbsThreshold,
    balanceRelThreshold: o.balanceRelThreshold,
    evictionIntervalSecs: o.evictionIntervalSecs,
    maxTreeSize: o.maxTreeSize,
    dpAware: o.dpAware,
    pd,
    maxConcurrentRequests: o.maxConcurrentRequests,
    queueSize: o.queueSize,
    queueTimeoutSecs: o.queueTimeoutSecs,
    requestTimeoutSecs: o.requestTimeoutSecs,
    retry: {
      maxRetries: o.disableRetries ? 1 : o.retryMaxRetries,
      initialBackoffMs: o.retryInitialBackoffMs,
      maxBackoffMs: o.retryMaxBackoffMs,
      multiplier: o.retryBackoffMultiplier,
      jitter: o.retryJitterFactor,
    },
    // SGLang's gateway counts failures in a row however far apart (--cb-window-duration-secs is inert).
    breaker: { failureThreshold: o.disableCircuitBreaker ? 0 : o.cbFailureThreshold, successThreshold: o.cbSuccessThreshold, openMs: o.cbTimeoutDurationSecs * 1000, windowMs: 0 },
    health: {
      enabled: !o.disableHealthCheck,
      endpoint: o.healthCheckEndpoint,
      intervalMs: o.healthCheckIntervalSecs * 1000,
      timeoutMs: o.healthCheckTimeoutSecs * 1000,
      failureThreshold: o.healthFailureThreshold,
      successThreshold: o.healthSuccessThreshold,
    },
    workerStartupTimeoutSecs: o.workerStartupTimeoutSecs,
    workerStartupCheckInterval: o.workerStartupCheckInterval,
    requestIdHeaders: idHeaders,
    apiKey: o.apiKey,
    maxPayloadSize: o.maxPayloadSize,
    httpServer: o.httpServer as HttpServerKind,
  };
}

export async function run(argv: string[]): Promise<void> {
  const { options, passthrough } = parseCommandLine('router', argv);
  if (passthrough.length > 0) throw new KvgateError('invalid_config', `kvgate router takes no arguments after --, got '${passthrough.join(' ')}'`);
  const level = (options.logLevel === 'warning' ? 'warn' : options.logLevel) as LogLevel;
  const log = createLogger({ level, format: options.logFormat as LogFormat }, { role: 'router' });
  const config = routerConfig(options);
  const router = await startRouter(config, log);
  // The Prometheus listener SGLang's router has (the same metrics are on the router's port).
  const prom = new HttpServer({
    maxBodyBytes: 1024,
    bodyTimeoutMs: 5000,
    apiKeys: [],
    logger: log,
    slowClients: { stallTimeoutMs: 30_000, maxBufferedBytes: 1 << 20, buffered: () => undefined, waiting: () => undefined },
  });
  prom.route('get', '/metrics', async (ex) => ex.text(200, await router.metrics.registry.metrics(), router.metrics.registry.contentType));
  const promPort = await prom.listen(options.prometheusHost, options.prometheusPort);
  log.info('serving', { url: router.url, policy: config.policy, workers: router.pool.all().map((w) => w.id), metricsPort: promPort });
  process.stdout.write(`kvgate router: listening on ${router.url} metrics=${promPort}\n`);
  stopOnSignals(log, async (_reason, parentGone) => {
    await Promise.all([router.close(parentGone ? 0 : options.shutdownGracePeriodSecs * 1000), prom.close(0)]);
  });
}
