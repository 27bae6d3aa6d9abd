// One HTTP request/response, made safe to use across awaits, over either HTTP server
// (wire.ts: uWS or node:http). The request head is read up front (uWS's request object is
// only valid inside the handler); nothing is written after the client went away.
// Slow clients: both servers buffer whatever the socket does not take, so a stream that
// keeps writing to a client that stopped reading grows without bound. write() reports
// that and the streaming loop awaits writable() before pulling the next event.

import { STATUS_CODES } from 'node:http';
import { KvgateError } from '../errors.js';
import { errorJson } from './errors.js';
import type { Wire } from './wire.js';

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const DEFAULT_ID_HEADERS = ['x-request-id'];

// uWS gives a request body 10 s, renewed each time 160 KB more arrived (16 KB/s), and then
// closes the connection without a word; a body deadline renewed at the same pace and
// shorter than uWS's is always answered (408) first, and lets large bodies on slow links in.
export const BODY_PROGRESS_BYTES = 160 * 1024;

export function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // malformed %-escapes: match on the raw text
  }
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

// Limits on a client that stops reading a stream, and what the server counts about it.
export interface SlowClientPolicy {
  // Longest wait for the socket to take data again before the response is closed.
  stallTimeoutMs: number;
  // Most bytes uWS may hold for one response before it is closed.
  maxBufferedBytes: number;
  // Deltas of the bytes held for slow clients and of the streams waiting on one.
  buffered(deltaBytes: number): void;
  waiting(delta: number): void;
  closed(reason: 'stall_timeout' | 'buffer_limit', requestId: string): void;
}

export class Exchange {
  readonly method: string;
  readonly url: string;
  // The query string without '?' ('' when none).
  readonly query: string;
  readonly requestId: string;
  readonly headers: { authorization: string; contentType: string; contentLength: string };
  // Aborted when the client disconnects, or when a shutdown gives up on the request.
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private closed = false; // client gone, or the response ended
  private streaming = false;
  // Set while readBody() waits for the body.
  private bodyPending: ((body: Buffer | null) => void) | null = null;
  readonly params: string[] = [];
  // Bytes handed to the server since a write last left its buffer empty: an upper bound
  // on what it holds for this client (uWS's own getWriteOffset does not count chunked writes).
  private buffered = 0;

  // `hooks.done` runs once, when the response ended or the client went away;
  // `hooks.error` for every error response sent.
  constructor(
    private readonly res: Wire,
    newRequestId: () => string,
    private readonly hooks: { done(): void; error(err: KvgateError): void },
    private readonly slow: SlowClientPolicy,
    // Headers a client's request id is taken from, first present wins.
    idHeaders: readonly string[] = DEFAULT_ID_HEADERS,
  ) {
    this.signal = this.controller.signal;
    this.method = res.method;
    this.url = res.url;
    this.query = res.query;
    for (const p of res.params) this.params.push(decodeParam(p));
    this.headers = {
      authorization: res.header('authorization'),
      contentType: res.header('content-type'),
      contentLength: res.header('content-length'),
    };
    let given = '';
    for (const h of idHeaders) if ((given = res.header(h)) !== '') break;
    this.requestId = REQUEST_ID.test(given) ? given : newRequestId();
    res.onAborted(() => {
      const wasOpen = !this.closed;
      this.closed = true;
      this.controller.abort();
      if (wasOpen) this.finished();
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get isStreaming(): boolean {
    return this.streaming;
  }

  // Reads the whole body, at most `limit` bytes. Must be called inside the handler.
  // Resolves null when the client went away, when the body is over the limit (answered 413
  // here), or when expireBody() gave up on it. `progress` runs each time another
  // BODY_PROGRESS_BYTES have arrived.
  readBody(limit: number, progress?: () => void): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const declared = Number(this.headers.contentLength);
      if (this.headers.contentLength !== '' && Number.isFinite(declared) && declared > limit) {
        this.tooLarge(limit);
        resolve(null);
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      let sinceProgress = 0;
      let over = false;
      const settle = (body: Buffer | null): void => {
        over = true;
        this.bodyPending = null;
        resolve(body);
      };
      this.bodyPending = settle;
      this.signal.addEventListener('abort', () => settle(null), { once: true });
      this.res.onData((chunk, isLast) => {
        if (over || this.closed) return;
        size += chunk.byteLength;
        if (size > limit) {
          this.tooLarge(limit);
          settle(null);
          return;
        }
        parts.push(chunk);
        if (isLast) return settle(Buffer.concat(parts, size));
        sinceProgress += chunk.byteLength;
        if (sinceProgress >= BODY_PROGRESS_BYTES) {
          sinceProgress = 0;
          progress?.();
        }
      });
    });
  }

  // The body did not arrive within its deadline: 408, and the connection is closed after
  // it (the rest of the body is not read). No-op once the body is complete.
  expireBody(timeoutMs: number): void {
    const pending = this.bodyPending;
    if (!pending) return;
    this.error(new KvgateError('request_timeout', `the request body did not arrive within ${timeoutMs / 1000} s`), { close: true });
    pending(null);
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
    this.json(err.status, errorJson(err), err.retryAfter === null ? opts : { ...opts, headers: { 'retry-after': String(err.retryAfter) } });
  }

  private end(status: number, body: string, contentType: string, opts: { close?: boolean; headers?: Record<string, string> }): void {
    if (this.closed) return;
    this.closed = true;
    // HEAD: the headers GET would send, Content-Length included, and no body.
    this.res.send(status, contentType, this.requestId, opts.headers, body, this.method === 'head', opts.close ?? false);
    this.finished();
  }

  private finished(): void {
    if (this.buffered > 0) this.setBuffered(0);
    this.hooks.done();
  }

  private setBuffered(bytes: number): void {
    this.slow.buffered(bytes - this.buffered);
    this.buffered = bytes;
  }

  // Starts a text/event-stream response with its first events. Returns like write().
  startStream(first: string): boolean {
    if (this.closed) return false;
    this.streaming = true;
    return this.res.startStream(this.requestId, first) || this.heldBack(first);
  }

  // False when the data did not all reach the socket (the server buffered the rest: the client
  // reads slower than we write) or the response is closed: await writable() before
  // writing again.
  write(data: string): boolean {
    if (this.closed) return false;
    if (!this.res.write(data)) return this.heldBack(data);
    if (this.buffered > 0) this.setBuffered(0);
    return true;
  }

  private heldBack(data: string): false {
    this.setBuffered(this.buffered + Buffer.byteLength(data));
    return false;
  }

  // After write() returned false: resolves true when the server reports the socket writable
  // again, false when the response is closed. A client that stays stalled past the
  // deadline, or for which the server holds more than the cap, is disconnected here, which
  // aborts the upstream request through `signal`.
  //
  // A writable event does not mean uWS's buffer is empty, and uWS does not drain it by
  // itself while an onWritable handler is set: the next write (or the end) flushes it.
  // Until then the client still has the kernel's socket buffer to read.
  writable(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.buffered > this.slow.maxBufferedBytes) {
      this.disconnectSlow('buffer_limit');
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.signal.removeEventListener('abort', onAbort);
        this.slow.waiting(-1);
        resolve(ok);
      };
      const onAbort = (): void => settle(false);
      const timer = setTimeout(() => {
        settle(false);
        this.disconnectSlow('stall_timeout');
      }, this.slow.stallTimeoutMs);
      this.slow.waiting(1);
      this.signal.addEventListener('abort', onAbort, { once: true });
      this.res.onWritable(() => settle(true));
    });
  }

  private disconnectSlow(reason: 'stall_timeout' | 'buffer_limit'): void {
    if (this.closed) return;
    this.slow.closed(reason, this.requestId);
    this.res.close(); // runs onAborted: marks this closed, aborts `signal`, calls hooks.done
  }

  endStream(last: string): void {
    if (this.closed) return;
    this.closed = true;
    this.res.endStream(last);
    this.finished();
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
