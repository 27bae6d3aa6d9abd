// The mocker's two HTTP servers (the engine API and the bootstrap server) on node:http, through
// the project's Wire seam: read a body, answer once, and never touch a response after the client
// went away. node:http, not uWS: uWS holds a connection that opens with an HTTP/2 preface open
// without a word, and SGLang's routers probe each worker that way (gRPC first) and then wait out
// two 5 s timeouts; SGLang's own server (uvicorn) closes it at once, and so does node's parser.

import { NodeBackend } from '../http/node_backend.js';
import { bearerMatches } from '../security/secrets.js';
import type { Wire } from '../http/wire.js';
import type { EngineRequest } from './request.js';

export const MAX_BODY_BYTES = 64 * 1024 * 1024;

// State shared by a handler and its async continuation.
export interface Exchange {
  wire: Wire;
  aborted: boolean;
  done: boolean;
  onAbort: (() => void) | null;
}

export function exchange(wire: Wire): Exchange {
  const ex: Exchange = { wire, aborted: false, done: false, onAbort: null };
  wire.onAborted(() => {
    ex.aborted = true;
    ex.onAbort?.();
  });
  return ex;
}

// Collect the request body; resolves null (after answering 413) when it is too large.
export function readBody(ex: Exchange): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    ex.wire.onData((chunk, isLast) => {
      if (size < 0) return;
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        size = -1;
        sendJson(ex, 413, { detail: `Request body larger than ${MAX_BODY_BYTES} bytes` });
        resolve(null);
        return;
      }
      if (chunk.byteLength > 0) chunks.push(chunk);
      if (isLast) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

export function send(ex: Exchange, status: number, body: string, contentType: string, close = false): void {
  if (ex.aborted || ex.done) return;
  ex.done = true;
  ex.wire.send(status, contentType, '', undefined, body, false, close);
}

export function sendJson(ex: Exchange, status: number, value: unknown, close = false): void {
  send(ex, status, JSON.stringify(value), 'application/json', close);
}

export function sendText(ex: Exchange, status: number, text: string, close = false): void {
  send(ex, status, text, 'text/plain; charset=utf-8', close);
}

// An SSE response written as it comes: the first call sends the headers.
export class SseWriter {
  private started = false;
  constructor(private readonly ex: Exchange) {}

  write(data: string, last: boolean): void {
    const ex = this.ex;
    if (ex.aborted || ex.done) return;
    if (last) ex.done = true;
    if (!this.started) {
      this.started = true;
      if (last) return void ex.wire.send(200, 'text/event-stream; charset=utf-8', '', undefined, data, false, false);
      ex.wire.startStream('', data);
    } else if (last) ex.wire.endStream(data);
    else ex.wire.write(data);
  }
}

// FastAPI's ErrorResponse, used for request-validation failures and HTTPExceptions.
export function errorResponse(message: string, status: number, type: string): Record<string, unknown> {
  return { object: 'error', message, type, param: null, code: status };
}

// SGLang turns an abort carrying an HTTP status into an error response when not streaming.
export function abortError(req: EngineRequest): { status: number; body: unknown } | null {
  const fr = req.finishReason;
  if (fr?.type !== 'abort' || fr.status_code === null || fr.status_code < 400 || fr.status_code >= 600) return null;
  if (fr.status_code === 400) return { status: 400, body: { error: { message: fr.message } } };
  return { status: fr.status_code, body: errorResponse(fr.message, fr.status_code, String(fr.status_code)) };
}

function unauthorized(wire: Wire): void {
  sendJson(exchange(wire), 401, { error: 'Unauthorized' });
}

export type Handler = (ex: Exchange) => void;
type Method = 'get' | 'post' | 'put' | 'delete';

// Routes by method and path; a known path with another method gets `wrongMethod`, any other
// path `notFound`. With an API key (SGLang's --api-key), every request but OPTIONS, /health*
// and /metrics* must carry `Authorization: Bearer <key>`, checked before routing (401).
export class MockerApp {
  private readonly backend = new NodeBackend();
  private readonly byPath = new Map<string, Map<string, Handler>>();

  on(method: Method, path: string, handler: Handler): this {
    let m = this.byPath.get(path);
    if (!m) {
      this.byPath.set(path, (m = new Map()));
      this.backend.any(path, (wire) => {
        if (!this.allowed(wire)) return unauthorized(wire);
        const h = m!.get(wire.method) ?? this.wrongMethod;
        h(exchange(wire));
      });
    }
    m.set(method, handler);
    return this;
  }
  get(path: string, h: Handler): this {
    return this.on('get', path, h);
  }
  post(path: string, h: Handler): this {
    return this.on('post', path, h);
  }
  put(path: string, h: Handler): this {
    return this.on('put', path, h);
  }

  constructor(
    private readonly wrongMethod: Handler,
    private readonly notFound: Handler,
    private readonly apiKey: string | null = null,
  ) {}

  private allowed(wire: Wire): boolean {
    if (this.apiKey === null || wire.method === 'options' || wire.url.startsWith('/health') || wire.url.startsWith('/metrics')) return true;
    return bearerMatches(wire.header('authorization'), this.apiKey);
  }

  // The catch-all goes last: routes match in the order they were added.
  listen(host: string, port: number): Promise<number> {
    this.backend.any('/*', (wire) => (this.allowed(wire) ? this.notFound(exchange(wire)) : unauthorized(wire)));
    return this.backend.listen(host, port);
  }

  // Stops accepting; open connections stay until closeConnections().
  close(): void {
    this.backend.stopListening();
  }

  closeConnections(): void {
    this.backend.closeConnections();
  }
}
