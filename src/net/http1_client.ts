// A lean keep-alive HTTP/1.1 client over net/tls sockets, for the hops to engines (the frontend's
// engine client, `kvgate router`'s upstream). undici's and node:http's clients were the largest
// share of those hops' CPU, mostly their stream and event layers (bench/README.md, "kvgate
// router CPU: a lean HTTP/1.1 client"); this client writes a request as one buffer, parses the
// response incrementally in place, and hands the body to the caller as buffers, with no Node
// streams in between.
//
// One pool per origin: at most `maxSockets` connections, idle ones reused last-in first-out (the
// warmest, least likely to have been closed by the server), no pipelining. A request written to a
// kept-alive connection the server closed meanwhile fails before any response byte; it was never
// answered, so it goes again on another connection (what node:http's docs advise callers to do),
// until it fails on a fresh one. Aborting a request's signal destroys its connection; that signal
// is also how callers bound a request's time (AbortSignal.timeout), beside the connect timeout.

import net from 'node:net';
import tls from 'node:tls';

export interface Http1PoolOptions {
  maxSockets?: number;
  // A connection idle this long is closed (and one found older when taken is not used).
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  // Unread body bytes above which the connection stops reading (the server's writes back up).
  highWaterBytes?: number;
  // Extra TLS options for https origins (a private CA in tests).
  tls?: tls.ConnectionOptions;
}

export interface Http1Request {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
}

// A failure of the exchange itself (Node-style `code`): the connection failed or closed
// (ECONNRESET, ECONNREFUSED, ...), timed out connecting (ETIMEDOUT), or the server's bytes are
// not HTTP/1.1 (ERR_HTTP1_MALFORMED).
export class Http1Error extends Error {
  constructor(
    message: string,
    readonly code: string,
    // Nothing of a response had arrived: the server never answered this request.
    readonly beforeResponse = false,
  ) {
    super(message);
    this.name = 'Http1Error';
  }
}

const malformed = (what: string) => new Http1Error(`malformed HTTP response: ${what}`, 'ERR_HTTP1_MALFORMED');
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 4096;
const CRLFCRLF = Buffer.from('\r\n\r\n');
// Characters that would end a header line early (request smuggling through a forwarded value).
const BAD_HEADER_VALUE = /[\r\n\0]/;

type BodyMode = 'length' | 'chunked' | 'close' | 'none';
// Chunked body states: reading a size line, chunk data, the CRLF after the data, trailer lines.
type ChunkState = 'size' | 'data' | 'data-end' | 'trailer';

// A response: status and headers once the head arrived, then the body as it comes. The body is
// read with read() (everything that arrived since the last call, as one buffer), text(), or
// dropped with drain(); cancel() closes the connection.
export class Http1Response {
  status = 0;
  // Lower-case names; repeated headers joined with ', '.
  readonly headers: Record<string, string> = {};
  private parts: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private discard = false;
  private paused = false;

  constructor(private readonly conn: Connection) {}

  get complete(): boolean {
    return this.ended;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  // The body bytes that arrived since the last read, or null at its end.
  async read(): Promise<Buffer | null> {
    while (this.parts.length === 0) {
      if (this.error) throw this.error;
      if (this.ended) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.buffered);
    this.parts = [];
    this.buffered = 0;
    if (this.paused) {
      this.paused = false;
      this.conn.socket.resume();
    }
    return out;
  }

  // The body as what successive read()s return.
  async *chunks(): AsyncGenerator<Buffer> {
    for (let b = await this.read(); b !== null; b = await this.read()) yield b;
  }

  async text(): Promise<string> {
    const parts: Buffer[] = [];
    for await (const b of this.chunks()) parts.push(b);
    return Buffer.concat(parts).toString('utf8');
  }

  // Reads the rest of the body and drops it, so the connection can be reused; resolves at its
  // end, or when the connection failed (nothing left to read either way).
  drain(): Promise<void> {
    this.discard = true;
    this.parts = [];
    this.buffered = 0;
    if (this.paused) {
      this.paused = false;
      this.conn.socket.resume();
    }
    if (this.ended || this.error) return Promise.resolve();
    return new Promise((resolve) => (this.wake = resolve));
  }

  // Drops the connection and the rest of the body.
  cancel(): void {
    if (!this.ended) this.conn.destroy();
  }

  // ---- the connection's side ----

  push(chunk: Buffer): void {
    if (this.discard) return;
    this.parts.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered > this.conn.pool.highWaterBytes && !this.paused) {
      this.paused = true;
      this.conn.socket.pause();
    }
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  fail(err: Error): void {
    if (this.ended || this.error) return;
    this.error = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

// One socket and the parser of the response on it.
class Connection {
  readonly socket: net.Socket;
  // Has served a request before: a failure before any byte may be the keep-alive race.
  reused = false;
  idleSince = 0;
  closed = false;
  // The request in flight: resolve on the head, fail before it; `res` once the head is in.
  private pending: { resolve: (r: Http1Response) => void; reject: (e: Error) => void; signal?: AbortSignal; onAbort: () => void } | null = null;
  private res: Http1Response | null = null;
  // The caller's signal while it reads the body (aborting it closes the connection).
  private bodySignal: { signal: AbortSignal; onAbort: () => void } | null = null;
  private gotBytes = false;
  private head: Buffer | null = null;
  private mode: BodyMode = 'none';
  private remaining = 0;
  private chunk: ChunkState = 'size';
  private line = '';
  private keepAlive = true;
  private headRequest = false;

  constructor(readonly pool: Http1Pool) {
    const { host, port, secure } = pool.target;
    this.socket = secure ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], ...pool.tlsOptions }) : net.connect({ host, port });
    this.socket.setNoDelay(true);
    const connecting = setTimeout(() => this.destroy(new Http1Error(`connect to ${pool.origin} timed out`, 'ETIMEDOUT', true)), pool.connectTimeoutMs);
    this.socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connecting));
    this.socket.on('data', (b: Buffer) => this.onData(b));
    this.socket.on('error', (err) => this.destroy(err));
    this.socket.on('close', () => {
      clearTimeout(connecting);
      this.onClose(null);
    });
  }

  // Writes `req` (throws a TypeError for an invalid header, before anything is sent).
  send(req: Http1Request, resolve: (r: Http1Response) => void, reject: (e: Error) => void): void {
    const bytes = encodeRequest(req, this.pool.hostHeader);
    // Closed while it waited to be handed over: nothing was sent on it.
    if (this.closed) return reject(new Http1Error('the connection closed before the request was sent', 'ECONNRESET', true));
    const { signal } = req;
    const onAbort = () => this.destroy(signal!.reason as Error);
    this.pending = { resolve, reject, signal, onAbort };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.gotBytes = false;
    this.head = null;
    this.headRequest = req.method === 'HEAD';
    this.res = null;
    this.socket.write(bytes);
  }

  destroy(err: Error | null = null): void {
    if (this.closed) return;
    this.onClose(err);
    this.socket.destroy();
  }

  private onClose(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    const res = this.res;
    if (res && this.mode === 'close' && err === null) {
      this.res = null;
      res.end();
    }
    const e = err ?? new Http1Error(this.gotBytes ? 'the server closed the connection mid-response' : 'the server closed the connection before answering', 'ECONNRESET', !this.gotBytes);
    if (err && !this.gotBytes && !(err instanceof Http1Error) && typeof (err as NodeJS.ErrnoException).code === 'string') {
      // A socket error (ECONNRESET, EPIPE, ECONNREFUSED) before any byte of the answer.
      Object.assign(err, { beforeResponse: true });
    }
    this.finish(e);
    this.pool.removed(this);
  }

  // The connection is gone: the request in flight, or its body, fails with `err`.
  private finish(err: Error): void {
    const p = this.pending;
    const res = this.res;
    this.pending = null;
    this.res = null;
    if (p) {
      p.signal?.removeEventListener('abort', p.onAbort);
      p.reject(err);
    }
    res?.fail(err);
  }

  private onData(b: Buffer): void {
    if (!this.pending && !this.res) return this.destroy(); // bytes on an idle connection: not HTTP we can follow
    this.gotBytes = true;
    try {
      this.parse(b);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  private parse(b: Buffer): void {
    let off = 0;
    if (!this.res) {
      off = this.parseHead(b);
      if (off < 0) return;
    }
    const res = this.res!;
    while (off < b.length || this.mode === 'none') {
      switch (this.mode) {
        case 'none':
          return this.bodyDone(off < b.length);
        case 'close':
          res.push(off === 0 ? b : b.subarray(off));
          return;
        case 'length': {
          const n = Math.min(this.remaining, b.length - off);
          res.push(off === 0 && n === b.length ? b : b.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) return this.bodyDone(off < b.length);
          break;
        }
        case 'chunked':
          off = this.parseChunked(b, off, res);
          if (off < 0) return this.bodyDone(off < -1);
          break;
      }
    }
  }

  // Consumes the head from `b` (accumulating across reads); returns the offset of the body in
  // `b`, or -1 when the head is not complete yet.
  private parseHead(b: Buffer): number {
    const prev = this.head?.length ?? 0;
    const buf = this.head ? Buffer.concat([this.head, b]) : b;
    const end = buf.indexOf(CRLFCRLF, Math.max(0, prev - 3));
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw malformed('head larger than 64 KiB');
      this.head = buf === b ? Buffer.from(b) : buf;
      return -1;
    }
    this.head = null;
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
    if (!m) throw malformed(`status line ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[2]);
    const res = new Http1Response(this);
    res.status = status;
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const colon = l.indexOf(':');
      if (colon <= 0) throw malformed(`header line ${JSON.stringify(l.slice(0, 80))}`);
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      const had = res.headers[name];
      res.headers[name] = had === undefined ? value : `${had}, ${value}`;
    }
    const bodyAt = end - prev + 4;
    // 1xx: an interim answer (100 Continue); the real head follows.
    if (status < 200) {
      const next = bodyAt < b.length ? this.parseHead(b.subarray(bodyAt)) : -1;
      return next < 0 ? -1 : bodyAt + next;
    }
    const h = res.headers;
    this.keepAlive = m[1] === '1' ? !/\bclose\b/i.test(h['connection'] ?? '') : /\bkeep-alive\b/i.test(h['connection'] ?? '');
    const te = h['transfer-encoding'];
    const cl = h['content-length'];
    if (this.headRequest || status === 204 || status === 304) this.mode = 'none';
    else if (te !== undefined) {
      if (/(^|,)\s*chunked\s*$/i.test(te)) {
        this.mode = 'chunked';
        this.chunk = 'size';
        this.line = '';
      } else this.mode = 'close';
    } else if (cl !== undefined) {
      // Repeated equal values are allowed (RFC 9110 §8.6); anything else is ambiguous.
      const values = cl.split(',').map((v) => v.trim());
      if (!/^\d{1,15}$/.test(values[0]!) || values.some((v) => v !== values[0])) throw malformed(`content-length ${JSON.stringify(cl.slice(0, 40))}`);
      this.remaining = Number(values[0]);
      this.mode = this.remaining === 0 ? 'none' : 'length';
    } else this.mode = 'close';
    if (this.mode === 'close') this.keepAlive = false;
    this.res = res;
    const p = this.pending!;
    this.pending = null;
    p.signal?.removeEventListener('abort', p.onAbort);
    // The abort signal now cancels the body: the caller holds the response.
    if (p.signal && !p.signal.aborted) {
      const sig = p.signal;
      const onAbort = () => this.destroy(sig.reason as Error);
      sig.addEventListener('abort', onAbort, { once: true });
      this.bodySignal = { signal: sig, onAbort };
    }
    p.resolve(res);
    return bodyAt;
  }

  // Parses chunked framing from `b` at `off`, pushing data to `res`. Returns the next offset,
  // or at the end of the body -1 (nothing after it) or -2 (bytes after it).
  private parseChunked(b: Buffer, off: number, res: Http1Response): number {
    while (off < b.length) {
      if (this.chunk === 'data') {
        const n = Math.min(this.remaining, b.length - off);
        res.push(b.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          this.chunk = 'data-end';
          this.line = '';
        }
        continue;
      }
      // The common lines read in place, without making strings (an SSE stream is a chunk per
      // event): the CRLF after chunk data, and a bare hex size ending in CRLF.
      if (this.line === '' && this.chunk === 'data-end' && b[off] === 13 && b[off + 1] === 10) {
        off += 2;
        this.chunk = 'size';
        continue;
      }
      if (this.line === '' && this.chunk === 'size') {
        let size = 0;
        let i = off;
        for (let d = hexDigit(b[i]); d >= 0 && i - off < 12; d = hexDigit(b[++i])) size = size * 16 + d;
        if (i > off && b[i] === 13 && b[i + 1] === 10) {
          off = i + 2;
          this.remaining = size;
          this.chunk = size === 0 ? 'trailer' : 'data';
          continue;
        }
      }
      const nl = b.indexOf(10, off);
      const stop = nl < 0 ? b.length : nl + 1;
      this.line += b.toString('latin1', off, stop);
      off = stop;
      if (this.line.length > MAX_LINE_BYTES) throw malformed('chunk line longer than 4 KiB');
      if (nl < 0) break;
      const line = this.line.endsWith('\r\n') ? this.line.slice(0, -2) : this.line.slice(0, -1);
      this.line = '';
      if (this.chunk === 'data-end') {
        if (line !== '') throw malformed('chunk data longer than its size');
        this.chunk = 'size';
      } else if (this.chunk === 'size') {
        const hex = line.split(';', 1)[0]!.trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw malformed(`chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(hex, 16);
        this.chunk = this.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        return off < b.length ? -2 : -1; // the empty line after the trailers: the body is complete
      }
    }
    return off;
  }

  // The response's body is complete: the connection goes back to the pool, unless the server
  // asked to close it or sent bytes past the response (no pipelining here: it cannot be trusted).
  private bodyDone(extraBytes: boolean): void {
    const res = this.res!;
    this.res = null;
    if (this.bodySignal) {
      this.bodySignal.signal.removeEventListener('abort', this.bodySignal.onAbort);
      this.bodySignal = null;
    }
    res.end();
    if (!this.keepAlive || extraBytes) return this.destroy();
    this.reused = true;
    this.pool.released(this);
  }

  // Also called on close: detaches a body's abort listener.
  detach(): void {
    if (this.bodySignal) {
      this.bodySignal.signal.removeEventListener('abort', this.bodySignal.onAbort);
      this.bodySignal = null;
    }
  }
}

// The value of an ASCII hex digit, or -1 (also past the end of a buffer: undefined).
function hexDigit(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

function encodeRequest(req: Http1Request, host: string): Buffer | string {
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  if (req.headers) {
    for (const k in req.headers) {
      const v = req.headers[k]!;
      if (BAD_HEADER_VALUE.test(v) || BAD_HEADER_VALUE.test(k)) throw new TypeError(`invalid character in header ${JSON.stringify(k)}`);
      head += `${k}: ${v}\r\n`;
    }
  }
  const body = req.body;
  if (body === undefined) return `${head}\r\n`;
  // A string goes to the socket as it is (encoded once, by the write itself).
  if (typeof body === 'string') return `${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  head += `content-length: ${body.length}\r\n\r\n`;
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  return out;
}

// The connections to one origin (scheme, host, port).
export class Http1Pool {
  readonly origin: string;
  readonly target: { host: string; port: number; secure: boolean };
  readonly hostHeader: string;
  readonly highWaterBytes: number;
  readonly connectTimeoutMs: number;
  readonly tlsOptions: tls.ConnectionOptions;
  private readonly maxSockets: number;
  private readonly idleTimeoutMs: number;
  private readonly all = new Set<Connection>();
  // Idle connections, the most recently used last.
  private readonly idle: Connection[] = [];
  // Requests waiting for a connection (every one busy).
  private readonly waiting: { take: (c: Connection) => void; fail: (e: Error) => void }[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(origin: string, options: Http1PoolOptions = {}) {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`not an http(s) origin: ${origin}`);
    const secure = u.protocol === 'https:';
    this.origin = u.origin;
    this.target = { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port) || (secure ? 443 : 80), secure };
    this.hostHeader = u.host;
    this.maxSockets = options.maxSockets ?? 1024;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.highWaterBytes = options.highWaterBytes ?? 64 * 1024;
    this.tlsOptions = options.tls ?? {};
  }

  // Gauges: open connections, idle ones, requests waiting for one.
  get stats(): { sockets: number; idle: number; waiting: number } {
    return { sockets: this.all.size, idle: this.idle.length, waiting: this.waiting.length };
  }

  // Sends `req`; resolves when the response head arrived. Rejects with the signal's reason when
  // aborted, an Http1Error when the exchange failed, a TypeError for an invalid header. With an
  // idle connection at hand the request is written before this returns, so what the caller
  // does next overlaps the server's work (bench/README.md, "Added TTFT at concurrency 1").
  request(req: Http1Request): Promise<Http1Response> {
    const conn = this.closed || req.signal?.aborted ? undefined : this.takeIdle();
    if (!conn) return this.requestLater(req);
    return this.sendOn(conn, req).catch((err: unknown) => {
      this.throwUnlessResent(err, conn, req);
      return this.requestLater(req);
    });
  }

  private async requestLater(req: Http1Request): Promise<Http1Response> {
    for (;;) {
      req.signal?.throwIfAborted();
      const conn = await this.take(req.signal);
      if (req.signal?.aborted) {
        // Aborted while the connection was being handed over: it goes back unused.
        this.released(conn);
        throw req.signal.reason;
      }
      try {
        return await this.sendOn(conn, req);
      } catch (err) {
        this.throwUnlessResent(err, conn, req);
      }
    }
  }

  private sendOn(conn: Connection, req: Http1Request): Promise<Http1Response> {
    return new Promise<Http1Response>((resolve, reject) => {
      try {
        conn.send(req, resolve, reject);
      } catch (err) {
        this.released(conn);
        reject(err as Error);
      }
    });
  }

  // A request on a kept-alive connection that the server had closed fails before any byte of
  // an answer: it was never answered, so it may go again on another connection. Any other
  // failure is the caller's.
  private throwUnlessResent(err: unknown, conn: Connection, req: Http1Request): void {
    if (req.signal?.aborted) throw req.signal.reason;
    if (!((err as { beforeResponse?: boolean }).beforeResponse === true && conn.reused)) throw err;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const w of this.waiting.splice(0)) w.fail(new Http1Error('the connection pool closed', 'ECONNRESET'));
    for (const c of [...this.all]) c.destroy();
  }

  // The most recently used idle connection not yet past its idle time, if any.
  private takeIdle(): Connection | undefined {
    const now = performance.now();
    for (let c = this.idle.pop(); c; c = this.idle.pop()) {
      if (now - c.idleSince < this.idleTimeoutMs) return c;
      c.destroy();
    }
    return undefined;
  }

  private take(signal: AbortSignal | undefined): Promise<Connection> {
    if (this.closed) return Promise.reject(new Http1Error('the connection pool closed', 'ECONNRESET'));
    const idle = this.takeIdle();
    if (idle) return Promise.resolve(idle);
    if (this.all.size < this.maxSockets) return Promise.resolve(this.open());
    return new Promise((resolve, reject) => {
      const w = {
        take: (c: Connection) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(c);
        },
        fail: reject,
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(w), 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  private open(): Connection {
    const c = new Connection(this);
    this.all.add(c);
    return c;
  }

  // A connection finished its exchange and may serve another.
  released(c: Connection): void {
    if (c.closed) return;
    if (this.closed) return c.destroy();
    const w = this.waiting.shift();
    if (w) return w.take(c);
    c.idleSince = performance.now();
    this.idle.push(c);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(1000, this.idleTimeoutMs / 2)).unref();
  }

  // A connection closed: a request waiting for one gets a new one in its place.
  removed(c: Connection): void {
    c.detach();
    if (!this.all.delete(c)) return;
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    const w = !this.closed && this.waiting.shift();
    if (w) w.take(this.open());
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.idle.filter((c) => now - c.idleSince >= this.idleTimeoutMs)) c.destroy();
    if (this.all.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}
