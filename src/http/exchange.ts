// One HTTP request/response on uWS, made safe to use across awaits. uWS rules
// (reference/deps.md §3): the request object is only valid inside the handler, so
// everything needed from it is read up front; onAborted is attached before anything
// async; onData buffers are copied (uWS neuters them after the callback); every write
// after the handler returned is corked; nothing is written after the client went away.

import { STATUS_CODES } from 'node:http';
import { KvgateError } from '../errors.js';
import { errorJson } from './errors.js';
import type { HttpRequest, HttpResponse } from './uws.js';

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // malformed %-escapes: match on the raw text
  }
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

export class Exchange {
  readonly method: string;
  readonly url: string;
  readonly requestId: string;
  readonly headers: { authorization: string; contentType: string; contentLength: string };
  // Aborted when the client disconnects, or when a shutdown gives up on the request.
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private closed = false; // client gone, or the response ended
  private streaming = false;
  readonly params: string[] = [];

  // `hooks.done` runs once, when the response ended or the client went away;
  // `hooks.error` for every error response sent.
  constructor(
    private readonly res: HttpResponse,
    req: HttpRequest,
    paramCount: number,
    newRequestId: () => string,
    private readonly hooks: { done(): void; error(err: KvgateError): void },
  ) {
    this.signal = this.controller.signal;
    this.method = req.getMethod();
    this.url = req.getUrl();
    for (let i = 0; i < paramCount; i++) this.params.push(decodeParam(req.getParameter(i)));
    this.headers = {
      authorization: req.getHeader('authorization'),
      contentType: req.getHeader('content-type'),
      contentLength: req.getHeader('content-length'),
    };
    const given = req.getHeader('x-request-id');
    this.requestId = REQUEST_ID.test(given) ? given : newRequestId();
    res.onAborted(() => {
      const wasOpen = !this.closed;
      this.closed = true;
      this.controller.abort();
      if (wasOpen) this.hooks.done();
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get isStreaming(): boolean {
    return this.streaming;
  }

  // Reads the whole body, at most `limit` bytes. Must be called inside the handler.
  // Resolves null when the client went away; a body over the limit is answered 413 here.
  readBody(limit: number): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const declared = Number(this.headers.contentLength);
      if (this.headers.contentLength !== '' && Number.isFinite(declared) && declared > limit) {
        this.tooLarge(limit);
        resolve(null);
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      let over = false;
      this.signal.addEventListener('abort', () => resolve(null), { once: true });
      this.res.onData((chunk, isLast) => {
        if (over || this.closed) return;
        size += chunk.byteLength;
        if (size > limit) {
          over = true;
          this.tooLarge(limit);
          resolve(null);
          return;
        }
        parts.push(Buffer.from(chunk.slice(0)));
        if (isLast) resolve(Buffer.concat(parts, size));
      });
    });
  }

  private tooLarge(limit: number): void {
    // The rest of the body is not read: close the connection after the answer.
    this.error(new KvgateError('payload_too_large', `the request body exceeds the limit of ${limit} bytes`), { close: true });
  }

  json(status: number, body: unknown, opts: { close?: boolean; headers?: Record<string, string> } = {}): void {
    this.end(status, JSON.stringify(body), 'application/json', opts);
  }

  text(status: number, body: string, contentType: string): void {
    this.end(status, body, contentType, {});
  }

  error(err: KvgateError, opts: { close?: boolean } = {}): void {
    if (this.closed) return;
    this.hooks.error(err);
    this.json(err.status, errorJson(err), opts);
  }

  private end(status: number, body: string, contentType: string, opts: { close?: boolean; headers?: Record<string, string> }): void {
    if (this.closed) return;
    this.closed = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).writeHeader('x-request-id', this.requestId);
      for (const [k, v] of Object.entries(opts.headers ?? {})) this.res.writeHeader(k, v);
      this.res.end(body, opts.close ?? false);
    });
    this.hooks.done();
  }

  // Starts a text/event-stream response with its first events.
  startStream(first: string): void {
    if (this.closed) return;
    this.streaming = true;
    this.res.cork(() => {
      this.res
        .writeStatus('200 OK')
        .writeHeader('content-type', 'text/event-stream')
        .writeHeader('cache-control', 'no-cache')
        .writeHeader('x-request-id', this.requestId);
      this.res.write(first);
    });
  }

  write(data: string): void {
    if (this.closed) return;
    this.res.cork(() => {
      this.res.write(data);
    });
  }

  endStream(last: string): void {
    if (this.closed) return;
    this.closed = true;
    this.res.cork(() => {
      this.res.end(last);
    });
    this.hooks.done();
  }

  // An error after the stream started: an error event (OpenAI clients raise it), then the end.
  streamError(err: KvgateError, done: string): void {
    if (this.closed) return;
    this.hooks.error(err);
    this.endStream(`data: ${JSON.stringify(errorJson(err))}\n\n${done}`);
  }

  // Shutdown deadline passed: stop the upstream request and drop the connection.
  forceClose(): void {
    this.controller.abort(new KvgateError('shutting_down', 'the server is shutting down'));
    if (this.closed) return;
    this.res.close(); // runs onAborted, which marks this closed and calls hooks.done
  }
}
