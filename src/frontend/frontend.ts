// startFrontend(): the OpenAI-compatible frontend over a WorkerSet. Used by `kvgate serve`
// and by tests in-process. The caller owns the WorkerSet (and closes it after the
// frontend); the frontend owns the HTTP server and the metrics registry.

import { Admission, type AdmissionOptions } from './admission.js';
import { registerOpenAIRoutes } from './openai_routes.js';
import { registerEngineAdminRoutes } from './engine_admin.js';
import { HttpServer } from '../http/server.js';
import type { HttpServerKind } from '../http/wire.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { FrontendMetrics } from '../observability/metrics.js';
import { Preprocessor, type PreprocessorOptions } from '../preprocess/preprocessor.js';
import { ServingCore, type ServedModel } from './serving.js';
import type { WorkerSet } from '../router/worker_set.js';
import { urlHost } from '../net/url_host.js';

export interface FrontendOptions {
  host?: string; // default 127.0.0.1
  port?: number; // default 8000; 0 picks a free port
  models: readonly ServedModel[];
  apiKeys?: readonly string[];
  // serve's --max-body-bytes (src/config.ts has the default).
  maxBodyBytes: number;
  // A request body not received within this long after its headers (renewed per 160 KB
  // received) is answered 408.
  bodyTimeoutMs?: number;
  // How long close() lets in-flight responses finish before cutting them.
  shutdownTimeoutMs?: number;
  // A streaming client that stops reading is disconnected (and its engine request
  // aborted) after this long without taking data, or when this much is held for it.
  clientStallTimeoutMs?: number;
  clientMaxBufferedBytes?: number;
  // Concurrency limit with a bounded FIFO queue (unset: no limit).
  admission?: AdmissionOptions;
  // serve's --http-server (default node).
  httpServer?: HttpServerKind;
  logger?: Logger;
}

export interface FrontendHandle {
  url: string;
  port: number;
  metrics: FrontendMetrics;
  // Responses in progress (requests being read, prepared, or streamed).
  inflight(): number;
  // Stops accepting, drains in-flight responses (up to the deadline), then cuts them.
  close(deadlineMs?: number): Promise<void>;
}

export const DEFAULT_BODY_TIMEOUT_MS = 5_000;
export const DEFAULT_CLIENT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_CLIENT_MAX_BUFFERED_BYTES = 1024 * 1024;

export interface ModelSpec extends PreprocessorOptions {
  name: string;
  // Overrides what the engines and the tokenizer say.
  contextLength?: number;
}

// Loads the tokenizer and chat template (once) for a served model. `engineContextLength`
// is what the engines report (0 if unknown); the tokenizer's limit is the fallback.
export function loadServedModel(spec: ModelSpec, engineContextLength = 0): ServedModel {
  const preprocessor = new Preprocessor(spec);
  const contextLength = spec.contextLength ?? (engineContextLength > 0 ? engineContextLength : (preprocessor.maxModelLength ?? 32768));
  return { name: spec.name, contextLength, preprocessor, created: Math.floor(Date.now() / 1000) };
}

export async function startFrontend(options: FrontendOptions, workers: WorkerSet): Promise<FrontendHandle> {
  const logger = options.logger ?? silentLogger;
  const metrics = new FrontendMetrics();
  workers.registerMetrics?.(metrics.registry);
  const server = new HttpServer({
    maxBodyBytes: options.maxBodyBytes,
    bodyTimeoutMs: options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
    apiKeys: options.apiKeys ?? [],
    backend: options.httpServer,
    logger,
    onError: (err) => metrics.errors.inc({ code: err.code }),
    slowClients: {
      stallTimeoutMs: options.clientStallTimeoutMs ?? DEFAULT_CLIENT_STALL_TIMEOUT_MS,
      maxBufferedBytes: options.clientMaxBufferedBytes ?? DEFAULT_CLIENT_MAX_BUFFERED_BYTES,
      buffered: (delta) => metrics.clientBufferedBytes.inc(delta),
      waiting: (delta) => metrics.stalledStreams.inc(delta),
      closed: (reason) => metrics.slowClientsClosed.inc({ reason }),
    },
  });
  const core = new ServingCore(new Map(options.models.map((m) => [m.name, m])), workers, metrics);
  const admission = options.admission && options.admission.maxConcurrent > 0 ? new Admission(options.admission, (d) => metrics.queued.inc(d)) : null;
  registerOpenAIRoutes(server, { core, models: options.models, workers, metrics, admission, log: logger });
  registerEngineAdminRoutes(server, workers);
  const host = options.host ?? '127.0.0.1';
  const port = await server.listen(host, options.port ?? 8000);
  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    metrics,
    inflight: () => server.inflightCount,
    close: (deadlineMs = options.shutdownTimeoutMs ?? 30_000) => (closing ??= server.close(deadlineMs)),
  };
}
