// The HTTP server over either backend (wire.ts): routing, API keys, body limits, request ids, and a graceful shutdown that
// stops accepting, lets in-flight responses finish, and cuts what is left at a deadline.

import { randomUUID, timingSafeEqual } from 'node:crypto';
import { KvgateError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import { SSE_DONE } from '../openai/responses.js';
import { asKvgateError } from './errors.js';
import { Exchange, type SlowClientPolicy } from './exchange.js';
import { NodeBackend } from './node_backend.js';
import { UwsBackend } from './uws_backend.js';
import type { HttpBackend, HttpServerKind, Wire } from './wire.js';

export type Handler = (ex: Exchange, body: Buffer) => void | Promise<void>;

export interface RouteOptions {
  // Requires `Authorization: Bearer <key>` when the server has API keys.
  auth?: boolean;
}

export interface HttpServerOptions {
  maxBodyBytes: number;
  // Longest wait for a request body after its headers, renewed each time another
  // BODY_PROGRESS_BYTES arrived (408 after).
  bodyTimeoutMs: number;
  apiKeys: readonly string[];
  logger: Logger;
  onError?: (err: KvgateError) => void;
  // Headers a request id is read from (default: x-request-id).
  requestIdHeaders?: readonly string[];
  // Limits and counters for clients that stop reading their stream.
  slowClients: Omit<SlowClientPolicy, 'closed'> & { closed?: SlowClientPolicy['closed'] };
  // The HTTP/1.1 server underneath (default node).
  backend?: HttpServerKind;
}

function keyMatches(given: string, keys: readonly Buffer[]): boolean {
  const g = Buffer.from(given);
  let ok = false;
  for (const k of keys) if (k.length === g.length && timingSafeEqual(k, g)) ok = true;
  return ok;
}

export class HttpServer {
  private readonly app: HttpBackend;
  private readonly keys: Buffer[];
  private readonly inflight = new Set<Exchange>();
  private readonly idle: (() => void)[] = [];
  private draining = false;
  private readonly methodsByPath = new Map<string, Set<string>>();
  private readonly slowClients: SlowClientPolicy;
  // Exchanges reading their body, with the time it must be in by, oldest first. One sweep
  // timer per server expires them, rather than a timer per request (bench:front-door: a
  // map set + delete costs about half of a timer's set + clear).
  private readonly bodyDeadlines = new Map<Exchange, number>();
  private sweeper: NodeJS.Timeout | null = null;
  port = 0;

  constructor(private readonly options: HttpServerOptions) {
    this.app = options.backend === 'uws' ? new UwsBackend() : new NodeBackend();
    this.keys = options.apiKeys.map((k) => Buffer.from(k));
    const slow = options.slowClients;
    this.slowClients = {
      ...slow,
      closed: (reason, requestId) => {
        options.logger.warn('closed a client that stopped reading its stream', { requestId, reason });
        slow.closed?.(reason, requestId);
      },
    };
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  // A GET route answers HEAD too (same status and headers, no body).
  // DELETE carries no body here (the handler gets an empty one).
  route(method: 'get' | 'post' | 'delete', pattern: string, handler: Handler, opts: RouteOptions = {}): this {
    let methods = this.methodsByPath.get(pattern);
    if (!methods) this.methodsByPath.set(pattern, (methods = new Set()));
    methods.add(method.toUpperCase());
    const onRequest = (wire: Wire): void => {
      // Two Content-Length headers: which one frames the body is ambiguous (request
      // smuggling through a proxy that picks the other); uWS reads the first.
      const duplicateLength = method === 'post' && wire.repeatedContentLength();
      const ex = this.begin(wire);
      if (this.draining) return ex.error(new KvgateError('shutting_down', 'the server is shutting down'), { close: true });
      if (duplicateLength) return ex.error(new KvgateError('invalid_request', 'the request has more than one Content-Length header'), { close: true });
      // Errors sent before a POST body is read close the connection (the body is not read).
      const close = method === 'post';
      if (opts.auth && this.keys.length > 0 && !this.authorized(ex)) {
        return ex.error(new KvgateError('invalid_api_key', 'missing or invalid API key: send Authorization: Bearer <key>'), { close });
      }
      if (method !== 'post') return void this.run(ex, handler, Buffer.alloc(0));
      const ct = ex.headers.contentType.toLowerCase();
      if (ct !== '' && !ct.includes('json')) {
        return ex.error(new KvgateError('unsupported_media_type', `Content-Type must be application/json, got '${ex.headers.contentType}'`), { close: true });
      }
      const renew = (): void => {
        // Delete first: the map stays in deadline order.
        this.bodyDeadlines.delete(ex);
        this.bodyDeadlines.set(ex, performance.now() + this.options.bodyTimeoutMs);
      };
      this.bodyDeadlines.set(ex, performance.now() + this.options.bodyTimeoutMs);
      void ex.readBody(this.options.maxBodyBytes, renew).then((body) => {
        this.bodyDeadlines.delete(ex);
        if (body !== null) return this.run(ex, handler, body);
      });
    };
    this.app.route(method, pattern, onRequest);
    if (method === 'get') {
      methods.add('HEAD');
      this.app.route('head', pattern, onRequest);
    }
    return this;
  }

  private begin(wire: Wire): Exchange {
    const ex = new Exchange(wire, () => randomUUID(), {
      done: () => {
        this.inflight.delete(ex);
        if (this.inflight.size === 0) for (const f of this.idle.splice(0)) f();
      },
      error: (err) => this.options.onError?.(err),
    }, this.slowClients, this.options.requestIdHeaders);
    this.inflight.add(ex);
    return ex;
  }

  private authorized(ex: Exchange): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(ex.headers.authorization.trim());
    return m !== null && keyMatches(m[1]!, this.keys);
  }

  private async run(ex: Exchange, handler: Handler, body: Buffer): Promise<void> {
    try {
      await handler(ex, body);
    } catch (err) {
      const e = asKvgateError(err);
      if (e.code === 'internal_error') this.options.logger.error('request failed', { requestId: ex.requestId, url: ex.url, error: String((err as Error)?.stack ?? err) });
      if (ex.isStreaming) ex.streamError(e, SSE_DONE);
      else ex.error(e);
    }
  }

  // Unknown paths get 404, known paths with another method 405; call after route().
  private fallbacks(): void {
    for (const [pattern, methods] of this.methodsByPath) {
      this.app.any(pattern, (wire) => {
        const ex = this.begin(wire);
        ex.error(new KvgateError('method_not_allowed', `${ex.method.toUpperCase()} is not allowed on ${ex.url}; use ${[...methods].join(', ')}`), { close: true });
      });
    }
    this.app.any('/*', (wire) => {
      const ex = this.begin(wire);
      ex.error(new KvgateError('not_found', `no route for ${ex.method.toUpperCase()} ${ex.url}`), { close: true });
    });
  }

  private expireBodies(): void {
    const now = performance.now();
    for (const [ex, deadline] of this.bodyDeadlines) {
      if (deadline > now) break; // one timeout for all: later entries expire later
      this.bodyDeadlines.delete(ex);
      ex.expireBody(this.options.bodyTimeoutMs);
    }
  }

  listen(host: string, port: number): Promise<number> {
    this.fallbacks();
    // Checks four times per timeout (at most every 250 ms): a late body gets its 408 within
    // a quarter of the timeout after the deadline.
    this.sweeper = setInterval(() => this.expireBodies(), Math.min(250, Math.max(5, this.options.bodyTimeoutMs / 4)));
    this.sweeper.unref();
    return this.app.listen(host, port).then((p) => (this.port = p));
  }

  // Stops accepting connections, waits for in-flight responses up to `deadlineMs`, then
  // aborts the rest (their engine requests are aborted too).
  async close(deadlineMs: number): Promise<void> {
    this.draining = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.app.stopListening();
    if (this.inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs))),
      ]);
      clearTimeout(timer);
    }
    for (const ex of [...this.inflight]) ex.forceClose();
  }
}
