// The Wire and HttpBackend over node:http. Unlike uWS (issue 9), node:http answers
// HTTP/1.0 (no chunking: a stream is delimited by the close), answers pipelined requests
// in order, and refuses what it cannot parse (431 for too many headers, unknown methods,
// conflicting lengths) with a response; clientError turns those into kvgate's error JSON.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { KvgateError } from '../errors.js';
import { errorJson } from './errors.js';
import { statusLine } from './exchange.js';
import type { HttpBackend, Wire, WireHandler } from './wire.js';

// Most request headers (431 above; node itself would drop the rest silently), and the
// longest wait for them. The body has its own deadline (HttpServer's 408).
const MAX_HEADERS = 100;
const MAX_HEADER_BYTES = 64 * 1024;
const HEADERS_TIMEOUT_MS = 10_000;
// How long an idle kept-alive connection stays open (nginx's default). Clients keep pooled
// connections idle longer than node's default of 5 s (aiohttp 15 s, aiperf 300 s), so a client
// could send its next request just as the server closed the connection, and get a write error:
// 3 of 1,000 aiperf requests at concurrency 256 on a loaded machine (bench:gateway). The longer
// the server waits, the rarer that race.
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

const EMPTY = Buffer.alloc(0);

class NodeWire implements Wire {
  readonly method: string;
  readonly url: string;
  readonly query: string;
  private aborted: (() => void) | null = null;
  private ended = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    readonly params: string[],
    path: string,
    query: string,
  ) {
    this.method = req.method!.toLowerCase();
    this.url = path;
    this.query = query;
    res.on('close', () => {
      if (!this.ended) this.abort();
    });
  }

  private abort(): void {
    const cb = this.aborted;
    this.aborted = null;
    this.ended = true;
    cb?.();
  }

  header(name: string): string {
    const v = this.req.headers[name];
    return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
  }

  repeatedContentLength(): boolean {
    return false; // node's parser answers 400 itself (clientError)
  }

  onAborted(cb: () => void): void {
    this.aborted = cb;
  }

  onData(cb: (chunk: Buffer, isLast: boolean) => void): void {
    this.req.on('data', (chunk: Buffer) => cb(chunk, false));
    this.req.on('end', () => cb(EMPTY, true));
  }

  send(status: number, contentType: string, requestId: string, headers: Record<string, string> | undefined, body: string, headOnly: boolean, close: boolean): void {
    this.ended = true;
    const res = this.res;
    res.statusCode = status;
    if (contentType) res.setHeader('content-type', contentType);
    if (requestId) res.setHeader('x-request-id', requestId);
    for (const [k, v] of Object.entries(headers ?? {})) res.setHeader(k, v);
    res.setHeader('content-length', Buffer.byteLength(body));
    // node closes the connection after a response that says so.
    if (close) res.setHeader('connection', 'close');
    if (headOnly) res.end();
    else res.end(body);
  }

  // X-Accel-Buffering: nginx buffers a proxied HTTP/1.0 (close-delimited) stream to the
  // end unless told not to.
  startStream(requestId: string, first: string): boolean {
    this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': requestId, 'x-accel-buffering': 'no' });
    return this.res.write(first);
  }

  write(data: string): boolean {
    return this.res.write(data);
  }

  endStream(last: string): void {
    this.ended = true;
    this.res.end(last);
  }

  onWritable(cb: () => void): void {
    this.res.once('drain', cb);
  }

  close(): void {
    this.abort();
    this.res.destroy();
  }
}

interface Route {
  method: string | null; // upper case; null: any
  match: (path: string) => string[] | null;
  handler: WireHandler;
}

// uWS's pattern syntax as used by the routes: literal segments, ':name' segments, and a
// trailing '*' for the rest of the path.
function compile(pattern: string): (path: string) => string[] | null {
  const re = new RegExp(
    '^' +
      pattern
        .split('/')
        .map((seg) => (seg === '*' ? '.*' : seg.startsWith(':') ? '([^/]*)' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/') +
      '$',
  );
  return (path) => {
    const m = re.exec(path);
    return m ? m.slice(1) : null;
  };
}

// What the parser refused, as kvgate's answer; null: close without one (an HTTP/2 client
// or garbage: no HTTP/1 response would be read).
function parseFailure(err: NodeJS.ErrnoException): KvgateError | null {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new KvgateError('header_fields_too_large', 'the request headers are too many or too large');
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return new KvgateError('invalid_request', 'the request has more than one Content-Length header, or Content-Length with Transfer-Encoding');
    case 'HPE_INVALID_METHOD':
      return new KvgateError('unknown_method', 'unknown HTTP method');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new KvgateError('request_timeout', 'the request headers did not arrive in time');
    case 'HPE_PAUSED_H2_UPGRADE':
      return null;
    default:
      return err.code?.startsWith('HPE_') ? new KvgateError('invalid_request', `malformed HTTP request (${err.code})`) : null;
  }
}

// An error response written straight to the socket, closing the connection.
function refusal(e: KvgateError): string {
  const body = JSON.stringify(errorJson(e));
  return `HTTP/1.1 ${statusLine(e.status)}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

export class NodeBackend implements HttpBackend {
  private readonly routes: Route[] = [];
  private readonly fallbacks: Route[] = [];
  private readonly server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => this.dispatch(req, res));

  constructor() {
    // One more than allowed, to tell "too many" from "exactly the limit".
    this.server.maxHeadersCount = MAX_HEADERS + 1;
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.server.requestTimeout = 0; // the body deadline is HttpServer's (408 with error JSON)
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const e = parseFailure(err);
      if (!e || !socket.writable) return socket.destroy();
      socket.end(refusal(e));
    });
  }

  route(method: 'get' | 'post' | 'head' | 'delete', pattern: string, handler: WireHandler): void {
    this.routes.push({ method: method.toUpperCase(), match: compile(pattern), handler });
  }

  any(pattern: string, handler: WireHandler): void {
    this.fallbacks.push({ method: null, match: compile(pattern), handler });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (req.rawHeaders.length / 2 > MAX_HEADERS) {
      const e = new KvgateError('header_fields_too_large', `more than ${MAX_HEADERS} request headers`);
      res.writeHead(e.status, { 'content-type': 'application/json', connection: 'close' });
      return void res.end(JSON.stringify(errorJson(e)));
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    for (const list of [this.routes, this.fallbacks]) {
      for (const r of list) {
        if (r.method !== null && r.method !== req.method) continue;
        const params = r.match(path);
        if (params) return r.handler(new NodeWire(req, res, params, path, query));
      }
    }
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new KvgateError('invalid_config', `cannot listen on ${host}:${port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  stopListening(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }

  // Drops every open connection, busy or idle (a keep-alive socket would otherwise keep
  // reaching this server after it stopped).
  closeConnections(): void {
    this.server.closeAllConnections();
  }
}
