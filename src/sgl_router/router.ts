// `kvgate router`: SGLang's router over plain SGLang servers by URL (reference/sglang.md §4).
// Inference requests are forwarded as the client sent them to a worker the policy picks,
// with retries on another worker and per-worker circuit breakers; PD mode adds the bootstrap
// triple and sends both legs. Control routes: health, model info, workers (the legacy
// add/remove/list API and the /workers API), flush_cache fan-out, Prometheus /metrics.

import { KvgateError } from '../errors.js';
import { HttpServer } from '../http/server.js';
import type { HttpServerKind } from '../http/wire.js';
import type { Exchange } from '../http/exchange.js';
import { isJsonObject, type JsonObject } from '../json.js';
import type { Logger } from '../observability/log.js';
import { Admission } from './admission.js';
import { RouterMetrics } from './metrics.js';
import { readModelFiles } from '../preprocess/model_files.js';
import { Tokenizer } from '../preprocess/tokenizer.js';
import { KvPolicy } from './kv_policy.js';
import { contentType, Upstream, type UpstreamResponse } from './upstream.js';
import { CacheAwarePolicy, makePolicy, type Policy, type PolicyName } from './policies.js';
import { AttemptSignals } from './attempts.js';
import { mergeJson, prefillInputLogprobs, SseLogprobMerger, wantsLogprobs } from './pd_logprobs.js';
import { appendFields, batchSize, bootstrapFields, parseBody, routingText, type InferenceRoute } from './request_body.js';
import type { BreakerOptions } from '../router/circuit_breaker.js';
import { ROUTING_DEFAULTS } from '../router/routing_defaults.js';
import { probe, waitHealthy, Worker, WorkerPool, type HealthConfig, type WorkerType } from './workers.js';

export interface RouterConfig {
  host: string;
  port: number;
  workerUrls: string[];
  policy: PolicyName | 'kv';
  // kv policy: the tokenizer for text prompts (default: the packaged Qwen3 one).
  tokenizerPath?: string;
  prefillPolicy?: PolicyName;
  decodePolicy?: PolicyName;
  cacheThreshold: number;
  balanceAbsThreshold: number;
  balanceRelThreshold: number;
  evictionIntervalSecs: number;
  maxTreeSize: number;
  dpAware: boolean;
  pd: { prefill: { url: string; bootstrapPort: number | null }[]; decode: string[] } | null;
  maxConcurrentRequests: number;
  queueSize: number;
  queueTimeoutSecs: number;
  requestTimeoutSecs: number;
  retry: { maxRetries: number; initialBackoffMs: number; maxBackoffMs: number; multiplier: number; jitter: number };
  breaker: BreakerOptions;
  health: HealthConfig;
  workerStartupTimeoutSecs: number;
  workerStartupCheckInterval: number;
  requestIdHeaders: string[];
  apiKey?: string;
  maxPayloadSize: number;
  // The HTTP server clients talk to (default node).
  httpServer?: HttpServerKind;
}

export interface RouterHandle {
  readonly url: string;
  readonly port: number;
  readonly pool: WorkerPool;
  readonly metrics: RouterMetrics;
  close(graceMs: number): Promise<void>;
}

const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

export function normalizeUrl(url: string): string {
  const u = url.trim().replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(u)) throw new KvgateError('invalid_request', `worker URL must be http://host:port, got '${url}'`, 'url');
  return u;
}

async function drain(res: Response): Promise<void> {
  try {
    await res.arrayBuffer();
  } catch {
    /* the connection went away: nothing left to read */
  }
}

export async function startRouter(config: RouterConfig, log: Logger): Promise<RouterHandle> {
  const workerHeaders: Record<string, string> = config.apiKey ? { authorization: `Bearer ${config.apiKey}` } : {};
  const policies: Policy[] = [];
  let kvPolicy: KvPolicy | null = null;
  const pool: WorkerPool = new WorkerPool(config.health, workerHeaders, log, (w) => {
    for (const p of policies) p.removed(w);
    kvPolicy?.removed(w);
  });
  const cacheConfig = {
    cacheThreshold: config.cacheThreshold,
    balanceAbsThreshold: config.balanceAbsThreshold,
    balanceRelThreshold: config.balanceRelThreshold,
    evictionIntervalMs: config.evictionIntervalSecs * 1000,
    maxTreeSize: config.maxTreeSize,
  };
  const treeSize = (): number => {
    let n = 0;
    for (const p of policies) if (p instanceof CacheAwarePolicy) for (const w of pool.all()) n += p.tree.tenantSize(w.id);
    return n;
  };
  const metrics = new RouterMetrics(pool, treeSize, () => kvPolicy?.prefills ?? null);
  const newPolicy = (name: PolicyName): Policy => {
    const p = makePolicy(name, cacheConfig, metrics.policyEvents);
    policies.push(p);
    return p;
  };
  const regularPolicy = newPolicy(config.policy === 'kv' ? 'cache_aware' : config.policy);
  // PD with --policy kv: the prefill leg by kv (it is where the prompt's cache lives), the decode
  // leg by load (power_of_two), unless --prefill-policy / --decode-policy say otherwise.
  const kvLeg = config.policy === 'kv' && !(config.pd && config.prefillPolicy);
  const pdDefault: PolicyName = config.policy === 'kv' ? 'cache_aware' : config.policy;
  const prefillPolicy = config.pd ? newPolicy(config.prefillPolicy ?? pdDefault) : regularPolicy;
  const decodePolicy = config.pd ? newPolicy(config.decodePolicy ?? (config.policy === 'kv' ? 'power_of_two' : pdDefault)) : regularPolicy;
  if (kvLeg) {
    let tokenizer: Tokenizer | null = null;
    const loadTokenizer = (): Tokenizer => (tokenizer ??= new Tokenizer(readModelFiles(config.tokenizerPath)));
    kvPolicy = new KvPolicy((config.pd ? prefillPolicy : regularPolicy) as CacheAwarePolicy, loadTokenizer, log);
  }
  const admission = new Admission(config.maxConcurrentRequests, config.queueSize, config.queueTimeoutSecs * 1000);
  const onBreaker = (w: Worker, from: string, to: string): void => {
    metrics.cbTransitions.inc({ worker: w.id, from_state: from, to_state: to });
    log.warn('circuit breaker', { worker: w.id, from, to });
  };

  // Registers a server once it passes its health check: one target, or one per DP rank.
  const register = async (rawUrl: string, type: WorkerType, bootstrapPort: number | null): Promise<Worker[]> => {
    const url = normalizeUrl(rawUrl);
    if (pool.hasUrl(url)) return pool.all().filter((w) => w.baseUrl === url);
    const pollMs = Math.min(500, config.workerStartupCheckInterval * 1000);
    if (!(await waitHealthy(url, config.health, config.workerStartupTimeoutSecs * 1000, workerHeaders, pollMs))) {
      throw new KvgateError('engine_unavailable', `worker ${url} did not pass its health check (${config.health.endpoint}) within ${config.workerStartupTimeoutSecs} s`);
    }
    let ranks: (number | null)[] = [null];
    // The kv policy follows the engines that hold prompt caches: not PD's decode side.
    const kv = type === 'decode' ? null : kvPolicy;
    const info = config.dpAware || kv ? (await getJson(url, '/server_info')).body : null;
    if (config.dpAware) {
      const dp = isJsonObject(info) && typeof info['dp_size'] === 'number' ? info['dp_size'] : 1;
      ranks = Array.from({ length: dp }, (_, r) => r);
    }
    const added = ranks.map((r) => new Worker(r === null ? url : `${url}@${r}`, url, type, r, bootstrapPort, config.breaker, onBreaker));
    for (const w of added) {
      if (kv && !(await kv.attach(w, info))) log.info('kv policy: no KV events from this worker; routed by cache_aware', { worker: w.id });
      pool.add(w);
    }
    log.info('worker added', { url, type, ranks: ranks.length });
    return added;
  };

  const getJson = async (url: string, path: string): Promise<{ status: number; body: unknown; text: string; contentType: string }> => {
    const res = await fetch(url + path, { headers: workerHeaders, signal: AbortSignal.timeout(config.health.timeoutMs) });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: relayed as text */
    }
    return { status: res.status, body, text, contentType: res.headers.get('content-type') ?? 'application/json' };
  };

  // ---- inference ----

  const upstreamHeaders = (ex: Exchange): Record<string, string> => {
    const h: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': ex.requestId, ...workerHeaders };
    if (!config.apiKey && ex.headers.authorization) h['authorization'] = ex.headers.authorization;
    return h;
  };

  const upstream = new Upstream();
  const send = (w: Worker, path: string, body: string | Buffer, ex: Exchange, signal: AbortSignal): Promise<UpstreamResponse> => {
    metrics.sent(w.id);
    return upstream.post(w.baseUrl, path, body, upstreamHeaders(ex), signal);
  };

  // Relays an upstream answer to the client: SSE chunk by chunk (with backpressure), anything
  // else whole. `merger` rewrites the SSE events (PD logprobs).
  const relay = async (ex: Exchange, res: UpstreamResponse, merger: SseLogprobMerger | null = null): Promise<void> => {
    relayed.set(ex, res.status);
    const type = contentType(res);
    if (!(res.ok && type.includes('text/event-stream'))) {
      const text = await res.text();
      ex.text(res.status, text, type);
      return;
    }
    const decoder = new TextDecoder();
    let started = false;
    let complete = false;
    try {
      for await (const chunk of res.chunks()) {
        const decoded = decoder.decode(chunk, { stream: true });
        const text = merger ? merger.push(decoded) : decoded;
        if (text === '') continue;
        const ok = started ? ex.write(text) : ex.startStream(text);
        started = true;
        if (!ok && !(await ex.writable())) return;
      }
      complete = true;
      const rest = merger ? merger.push(decoder.decode()) + merger.end() : decoder.decode();
      if (started) ex.endStream(rest);
      else ex.text(res.status, rest, type);
    } finally {
      if (!complete) res.cancel();
    }
  };

  const backoff = (attempt: number): Promise<void> => {
    const r = config.retry;
    const base = Math.min(r.maxBackoffMs, r.initialBackoffMs * r.multiplier ** attempt);
    const ms = base * (1 + r.jitter * (2 * Math.random() - 1));
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  };

  // One signal per attempt (attempts.ts): the client's disconnect, or the request timeout.
  const attempts = new AttemptSignals(config.requestTimeoutSecs * 1000);

  const failure = (err: unknown, ex: Exchange): KvgateError => {
    if (ex.signal.aborted) return new KvgateError('client_closed_request', 'the client went away');
    if ((err as Error)?.name === 'TimeoutError') return new KvgateError('engine_timeout', `the worker did not answer within ${config.requestTimeoutSecs} s`);
    return new KvgateError('engine_error', `the worker could not be reached: ${(err as Error)?.message ?? String(err)}`);
  };

  const pickOrThrow = (policy: Policy, type: WorkerType, text: string): Worker => {
    const available = pool.available(type);
    if (available.length === 0) throw new KvgateError('no_workers', pool.all(type).length === 0 ? `no ${type === 'regular' ? '' : type + ' '}workers registered` : `no healthy ${type === 'regular' ? '' : type + ' '}workers`);
    return policy.select(available, text);
  };

  // Runs attempts until one is relayed; `attempt(last)` returns false when its answer was
  // retryable and it was not the last attempt (then nothing reached the client).
  const withRetries = async (attempt: (last: boolean) => Promise<boolean>): Promise<void> => {
    const attempts = Math.max(1, config.retry.maxRetries);
    for (let i = 0; ; i++) {
      const last = i + 1 >= attempts;
      if (await attempt(last)) return;
      metrics.retried();
      await backoff(i);
    }
  };

  // The kv policy's pick among the available workers of a type (regular, or PD's prefill). A
  // prompt sharing a long prefix with one the chosen worker is still prefilling waits for that
  // prefill to be stored, then is picked again (inflight_prefills.ts), for as long as a
  // routed prompt's blocks count as pending.
  const pickKv = async (kv: KvPolicy, type: WorkerType, text: string, tokens: Uint32Array | null, hashes: BigUint64Array | null, signal: AbortSignal): Promise<Worker> => {
    const deadline = performance.now() + ROUTING_DEFAULTS.pendingTimeoutMs;
    for (;;) {
      const available = pool.available(type);
      if (available.length === 0) pickOrThrow(kv.fallback, type, text); // throws no_workers
      const picked = kv.pick(available, text, tokens);
      const blocking = hashes === null || performance.now() >= deadline ? null : kv.blockingPrefill(picked.worker, hashes, tokens!.length);
      if (blocking === null) {
        metrics.kvDecision(picked.overlapBlocks);
        return picked.worker;
      }
      await kv.prefills.wait(blocking, deadline, signal);
      if (signal.aborted) throw new KvgateError('client_closed_request', 'the client went away');
    }
  };

  const regular = async (ex: Exchange, route: InferenceRoute, raw: Buffer, body: JsonObject): Promise<void> => {
    const text = routingText(route, body);
    const tokens = kvPolicy ? await kvPolicy.tokens(route, body, text, pool.available('regular')) : null;
    const hashes = kvPolicy?.blocks(tokens) ?? null;
    await withRetries(async (last) => {
      const w = kvPolicy ? await pickKv(kvPolicy, 'regular', text, tokens, hashes, ex.signal) : pickOrThrow(regularPolicy, 'regular', text);
      // The client's bytes as they came, unless a field is added.
      const payload = w.dpRank === null ? raw : appendFields(raw.toString('utf8'), [['data_parallel_rank', String(w.dpRank)]]);
      const attempt = attempts.open(ex.signal);
      const prefilled = kvPolicy?.sent(w, hashes);
      w.load++;
      try {
        let res: UpstreamResponse;
        try {
          res = await send(w, route, payload, ex, attempt.signal);
        } catch (err) {
          const e = failure(err, ex);
          if (e.code !== 'client_closed_request') w.outcome(false);
          if (e.code === 'client_closed_request' || last) {
            if (last) metrics.exhausted();
            throw e;
          }
          return false;
        }
        w.outcome(res.status < 500);
        if (RETRYABLE.has(res.status) && !last) {
          await res.drain();
          return false;
        }
        if (RETRYABLE.has(res.status)) metrics.exhausted();
        await relay(ex, res);
        return true;
      } finally {
        attempt.done();
        w.load--;
        prefilled?.();
      }
    });
  };

  // PD: the same body, with one bootstrap triple and room(s), to a prefill and a decode
  // worker at once; the client gets decode's answer. A prefill that fails first ends the
  // request with prefill's error (decode would only wait out its bootstrap timeout).
  const disaggregated = async (ex: Exchange, route: InferenceRoute, raw: Buffer, body: JsonObject): Promise<void> => {
    const text = routingText(route, body);
    const rawText = raw.toString('utf8');
    const mergeLogprobs = wantsLogprobs(body['return_logprob']);
    const tokens = kvPolicy ? await kvPolicy.tokens(route, body, text, pool.available('prefill')) : null;
    const hashes = kvPolicy?.blocks(tokens) ?? null;
    await withRetries(async (last) => {
      const p = kvPolicy ? await pickKv(kvPolicy, 'prefill', text, tokens, hashes, ex.signal) : pickOrThrow(prefillPolicy, 'prefill', text);
      const d = pickOrThrow(decodePolicy, 'decode', text);
      // One bootstrap triple (one room) for both legs; DP-aware legs name their ranks, and the
      // decode leg the prefill rank it reads the KV from (SGLang's PD router fields).
      const bootstrap = bootstrapFields(new URL(p.baseUrl).hostname, p.bootstrapPort, batchSize(route, body));
      const rank = (k: string, r: number | null): [string, string][] => (r === null ? [] : [[k, String(r)]]);
      const prefillPayload = appendFields(rawText, [...bootstrap, ...rank('routed_dp_rank', p.dpRank)]);
      const decodePayload = appendFields(rawText, [...bootstrap, ...rank('routed_dp_rank', d.dpRank), ...rank('disagg_prefill_dp_rank', p.dpRank)]);
      const attempt = attempts.open(ex.signal);
      const signal = attempt.signal;
      const decodeAbort = new AbortController();
      const prefilled = kvPolicy?.sent(p, hashes);
      p.load++;
      d.load++;
      metrics.pd('prefill');
      metrics.pd('decode');
      const prefillDone = send(p, route, prefillPayload, ex, signal).then(
        async (res) => {
          p.outcome(res.status < 500);
          if (res.ok && !mergeLogprobs) {
            await res.drain();
            return { res, text: '' };
          }
          const text = await res.text().catch(() => '');
          if (!res.ok) decodeAbort.abort();
          return { res, text };
        },
        (err: unknown) => {
          p.outcome(false);
          decodeAbort.abort();
          return { res: null, text: '', err };
        },
      );
      try {
        let res: UpstreamResponse;
        try {
          res = await send(d, route, decodePayload, ex, AbortSignal.any([signal, decodeAbort.signal]));
        } catch (err) {
          const pre = await prefillDone;
          if (decodeAbort.signal.aborted && !ex.signal.aborted) {
            metrics.pdFailed();
            if (pre.res) {
              if (RETRYABLE.has(pre.res.status) && !last) return false;
              relayed.set(ex, pre.res.status);
              ex.text(pre.res.status, pre.text, contentType(pre.res));
              return true;
            }
            if (!last) return false;
            throw failure('err' in pre ? pre.err : err, ex);
          }
          d.outcome(false);
          metrics.pdFailed();
          const e = failure(err, ex);
          if (e.code === 'client_closed_request' || last) throw e;
          return false;
        }
        d.outcome(res.status < 500);
        if (!res.ok) metrics.pdFailed();
        if (RETRYABLE.has(res.status) && !last) {
          await res.drain();
          return false;
        }
        if (mergeLogprobs && res.ok) {
          // SGLang's router waits for the whole prefill answer before relaying decode's.
          const pre = prefillInputLogprobs((await prefillDone).text);
          if (contentType(res).includes('text/event-stream')) {
            await relay(ex, res, new SseLogprobMerger(pre));
            return true;
          }
          const decoded = await res.text();
          relayed.set(ex, res.status);
          ex.text(res.status, mergeJson(decoded, pre), 'application/json');
          return true;
        }
        await relay(ex, res);
        return true;
      } finally {
        await prefillDone;
        attempt.done();
        p.load--;
        d.load--;
        prefilled?.();
      }
    });
  };

  // ---- HTTP ----

  const server = new HttpServer({
    maxBodyBytes: config.maxPayloadSize,
    bodyTimeoutMs: 5000,
    apiKeys: [],
    logger: log,
    requestIdHeaders: config.requestIdHeaders,
    backend: config.httpServer,
    slowClients: { stallTimeoutMs: 30_000, maxBufferedBytes: 1 << 20, buffered: () => undefined, waiting: () => undefined },
  });

  // The status of each upstream answer relayed to a client, for the metrics.
  const relayed = new WeakMap<Exchange, number>();
  // Every route is counted under its path, and timed to the end of its answer.
  const counted = (path: string, handler: (ex: Exchange, body: Buffer) => Promise<void> | void) => async (ex: Exchange, body: Buffer) => {
    const t0 = performance.now();
    metrics.received(ex.method, path);
    let status = 200;
    try {
      await handler(ex, body);
    } catch (err) {
      status = err instanceof KvgateError ? err.status : 500;
      throw err;
    } finally {
      metrics.answered(path, relayed.get(ex) ?? status, (performance.now() - t0) / 1000);
    }
  };

  for (const route of ['/generate', '/v1/chat/completions', '/v1/completions'] as const) {
    server.route(
      'post',
      route,
      counted(route, async (ex, raw) => {
        const body = parseBody(raw);
        const release = await admission.acquire(ex.signal);
        try {
          await (config.pd ? disaggregated : regular)(ex, route, raw, body);
        } finally {
          release();
        }
      }),
    );
  }

  const firstWorkerUrl = (): string => {
    const w = pool.all().find((x) => x.healthy && x.type !== 'prefill') ?? pool.all()[0];
    if (!w) throw new KvgateError('no_workers', 'no workers registered');
    return w.baseUrl;
  };
  // Info routes answer with the first worker's answer (SGLang's routers do the same).
  const fromFirstWorker = (path: string, upstream: string) =>
    server.route(
      'get',
      path,
      counted(path, async (ex) => {
        let r;
        try {
          r = await getJson(firstWorkerUrl(), upstream);
        } catch (err) {
          throw err instanceof KvgateError ? err : failure(err, ex);
        }
        ex.text(r.status, r.text, r.contentType);
      }),
    );
  fromFirstWorker('/v1/models', '/v1/models');
  fromFirstWorker('/get_model_info', '/get_model_info');
  fromFirstWorker('/get_server_info', '/get_server_info');
  fromFirstWorker('/server_info', '/server_info');
  fromFirstWorker('/model_info', '/model_info');

  server.route('get', '/health', counted('/health', (ex) => ex.text(200, 'OK', 'text/plain; charset=utf-8')));
  server.route('get', '/liveness', counted('/liveness', (ex) => ex.text(200, 'OK', 'text/plain; charset=utf-8')));
  server.route(
    'get',
    '/readiness',
    counted('/readiness', (ex) => {
      const healthy = pool.all().filter((w) => w.healthy).length;
      const ready = config.pd ? pool.available('prefill').length > 0 && pool.available('decode').length > 0 : healthy > 0;
      ex.json(ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', healthy_workers: healthy, total_workers: pool.all().length });
    }),
  );
  // /health_generate: each server's own /health_generate; 200 when one answers 200.
  server.route(
    'get',
    '/health_generate',
    counted('/health_generate', async (ex) => {
      const urls = pool.urls();
      const results = await Promise.all(urls.map((u) => probe(u, '/health_generate', config.requestTimeoutSecs * 1000, workerHeaders)));
      const ok = results.filter(Boolean).length;
      if (ok > 0) ex.text(200, `${ok} of ${urls.length} workers healthy`, 'text/plain; charset=utf-8');
      else throw new KvgateError('no_workers', urls.length === 0 ? 'no workers registered' : 'no worker passed /health_generate');
    }),
  );

  const flush = counted('/flush_cache', async (ex) => {
    const urls = pool.urls();
    const results = await Promise.all(
      urls.map(async (u) => {
        try {
          const res = await fetch(`${u}/flush_cache`, { method: 'POST', headers: workerHeaders, signal: AbortSignal.timeout(config.health.timeoutMs) });
          await drain(res);
          return res.ok;
        } catch {
          return false;
        }
      }),
    );
    const failed = urls.filter((_, i) => !results[i]);
    const flushed = urls.length - failed.length;
    ex.json(failed.length === 0 ? 200 : 500, {
      status: failed.length === 0 ? 'success' : 'partial_success',
      message: failed.length === 0 ? `Successfully flushed cache on all ${urls.length} HTTP workers` : `Flushed cache on ${flushed} of ${urls.length} HTTP workers`,
      workers_flushed: flushed,
      total_http_workers: urls.length,
      total_workers: urls.length,
      failed_workers: failed,
    });
  });
  server.route('post', '/flush_cache', flush);

  // The legacy worker API (sgl-router): ?url= in the query.
  const queryUrl = (ex: Exchange): string => {
    const url = new URLSearchParams(ex.query).get('url');
    if (!url) throw new KvgateError('missing_field', 'the url query parameter is required, e.g. /add_worker?url=http://host:port', 'url');
    return normalizeUrl(url);
  };
  server.route(
    'post',
    '/add_worker',
    counted('/add_worker', async (ex) => {
      const url = queryUrl(ex);
      if (config.pd) throw new KvgateError('invalid_request', 'PD mode: add workers with POST /workers {"url":..,"worker_type":"prefill"|"decode"}');
      await register(url, 'regular', null);
      ex.text(200, `Successfully added worker: ${url}`, 'text/plain; charset=utf-8');
    }),
  );
  server.route(
    'post',
    '/remove_worker',
    counted('/remove_worker', (ex) => {
      const url = queryUrl(ex);
      if (pool.removeUrl(url) === 0) throw new KvgateError('not_found', `no worker ${url}`, 'url');
      ex.text(200, `Successfully removed worker: ${url}`, 'text/plain; charset=utf-8');
    }),
  );
  server.route('get', '/list_workers', counted('/list_workers', (ex) => ex.json(200, { urls: pool.urls() })));

  // The /workers API (sgl-model-gateway, SMG).
  const workerJson = (w: Worker) => ({
    id: w.id,
    url: w.baseUrl,
    worker_type: w.type,
    is_healthy: w.healthy,
    load: w.load,
    connection_mode: 'HTTP',
    ...(w.dpRank !== null ? { dp_rank: w.dpRank } : {}),
    ...(w.bootstrapPort !== null ? { bootstrap_port: w.bootstrapPort } : {}),
    circuit_breaker: w.breaker.state,
  });
  server.route(
    'get',
    '/workers',
    counted('/workers', (ex) => {
      const all = pool.all();
      ex.json(200, {
        workers: all.map(workerJson),
        total: all.length,
        stats: {
          prefill_count: all.filter((w) => w.type === 'prefill').length,
          decode_count: all.filter((w) => w.type === 'decode').length,
          regular_count: all.filter((w) => w.type === 'regular').length,
        },
      });
    }),
  );
  // Added in the background, as SGLang's router does: 202 at once, the worker routes once healthy.
  server.route(
    'post',
    '/workers',
    counted('/workers', (ex, raw) => {
      const body = parseBody(raw);
      if (typeof body['url'] !== 'string') throw new KvgateError('missing_field', 'url is required', 'url');
      const url = normalizeUrl(body['url']);
      const type = body['worker_type'] ?? (config.pd ? undefined : 'regular');
      if (type !== 'regular' && type !== 'prefill' && type !== 'decode') throw new KvgateError('invalid_request', 'worker_type must be regular, prefill or decode', 'worker_type');
      if (config.pd ? type === 'regular' : type !== 'regular') throw new KvgateError('invalid_request', `worker_type ${type} does not fit a router ${config.pd ? 'in' : 'not in'} PD mode`, 'worker_type');
      const port = body['bootstrap_port'];
      const bootstrapPort = typeof port === 'number' && Number.isInteger(port) ? port : null;
      register(url, type, bootstrapPort).catch((err: unknown) => log.warn('worker not added', { url, error: (err as Error).message }));
      ex.json(202, { status: 'accepted', worker_id: url, url, location: `/workers/${encodeURIComponent(url)}`, message: 'Worker addition queued for background processing' }, { headers: { location: `/workers/${encodeURIComponent(url)}` } });
    }),
  );
  const byIdParam = (ex: Exchange): Worker[] => {
    const id = ex.params[0]!;
    const found = pool.all().filter((w) => w.id === id || w.baseUrl === id);
    if (found.length === 0) throw new KvgateError('not_found', `no worker ${id}`);
    return found;
  };
  server.route('get', '/workers/:id', counted('/workers/:id', (ex) => ex.json(200, workerJson(byIdParam(ex)[0]!))));
  server.route(
    'delete',
    '/workers/:id',
    counted('/workers/:id', (ex) => {
      const url = byIdParam(ex)[0]!.baseUrl;
      pool.removeUrl(url);
      ex.json(200, { status: 'success', url, message: `Worker ${url} removed` });
    }),
  );

  const metricsRoute = async (ex: Exchange): Promise<void> => ex.text(200, await metrics.registry.metrics(), metrics.registry.contentType);
  server.route('get', '/metrics', counted('/metrics', metricsRoute));

  // Start-up: every configured server must pass its health check (as SGLang's router waits).
  const startups: Promise<unknown>[] = config.workerUrls.map((u) => register(u, 'regular', null));
  if (config.pd) {
    for (const p of config.pd.prefill) startups.push(register(p.url, 'prefill', p.bootstrapPort));
    for (const d of config.pd.decode) startups.push(register(d, 'decode', null));
  }
  try {
    await Promise.all(startups);
  } catch (err) {
    for (const p of policies) p.close();
    kvPolicy?.close();
    throw err;
  }
  pool.startHealthChecks();
  const port = await server.listen(config.host, config.port);
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return {
    url: `http://${host}:${port}`,
    port,
    pool,
    metrics,
    close: async (graceMs: number) => {
      pool.stop();
      for (const p of policies) p.close();
      kvPolicy?.close();
      await upstream.close().catch(() => undefined);
      await server.close(graceMs);
    },
  };
}
