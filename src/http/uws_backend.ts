// The Wire and HttpBackend over uWebSockets.js. uWS rules (reference/deps.md §3): the
// request object is only valid inside the handler; onAborted is attached before anything
// async; onData buffers are copied (uWS neuters them after the callback); every write
// after the handler returned is corked.

import { KvgateError } from '../errors.js';
import { statusLine } from './exchange.js';
import { uws, type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from './uws.js';
import type { HttpBackend, Wire, WireHandler } from './wire.js';

class UwsWire implements Wire {
  readonly method: string;
  readonly url: string;
  readonly query: string;
  readonly params: string[] = [];
  // The corked write's argument and result live in fields so that the cork callback is
  // one function per exchange, not a closure per write.
  private pending = '';
  private wrote = true;
  private readonly corkedWrite = (): void => {
    this.wrote = this.res.write(this.pending);
  };

  constructor(
    private readonly res: HttpResponse,
    private readonly req: HttpRequest,
    paramCount: number,
  ) {
    this.method = req.getMethod();
    this.url = req.getUrl();
    this.query = req.getQuery() ?? '';
    for (let i = 0; i < paramCount; i++) this.params.push(req.getParameter(i));
  }

  header(name: string): string {
    return this.req.getHeader(name);
  }

  repeatedContentLength(): boolean {
    let n = 0;
    this.req.forEach((key) => {
      if (key === 'content-length') n++;
    });
    return n > 1;
  }

  onAborted(cb: () => void): void {
    this.res.onAborted(cb);
  }

  onData(cb: (chunk: Buffer, isLast: boolean) => void): void {
    this.res.onData((chunk, isLast) => cb(Buffer.from(chunk.slice(0)), isLast));
  }

  send(status: number, contentType: string, requestId: string, headers: Record<string, string> | undefined, body: string, headOnly: boolean, close: boolean): void {
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).writeHeader('x-request-id', requestId);
      for (const [k, v] of Object.entries(headers ?? {})) this.res.writeHeader(k, v);
      // Only the argument-less endWithoutBody() ends a response in this uWS (with a length
      // or a close flag it waits for body bytes), so the length is a plain header and the
      // connection stays open.
      if (headOnly) this.res.writeHeader('content-length', String(Buffer.byteLength(body))).endWithoutBody();
      else this.res.end(body, close);
    });
  }

  startStream(requestId: string, first: string): boolean {
    this.res.cork(() => {
      this.res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream').writeHeader('cache-control', 'no-cache').writeHeader('x-request-id', requestId);
      this.wrote = this.res.write(first);
    });
    return this.wrote;
  }

  write(data: string): boolean {
    this.pending = data;
    this.res.cork(this.corkedWrite);
    this.pending = '';
    return this.wrote;
  }

  endStream(last: string): void {
    this.res.cork(() => {
      this.res.end(last);
    });
  }

  // uWS does not drain its buffer by itself while an onWritable handler is set: the next
  // write (or the end) flushes it.
  onWritable(cb: () => void): void {
    this.res.onWritable(() => {
      cb();
      return true;
    });
  }

  close(): void {
    this.res.close(); // runs onAborted synchronously
  }
}

export class UwsBackend implements HttpBackend {
  private readonly app: TemplatedApp = uws.App();
  private listenSocket: us_listen_socket | null = null;

  route(method: 'get' | 'post' | 'head' | 'delete', pattern: string, handler: WireHandler): void {
    const params = (pattern.match(/\/:/g) ?? []).length;
    this.app[method === 'delete' ? 'del' : method](pattern, (res, req) => handler(new UwsWire(res, req, params)));
  }

  any(pattern: string, handler: WireHandler): void {
    this.app.any(pattern, (res, req) => handler(new UwsWire(res, req, 0)));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (!socket) return reject(new KvgateError('invalid_config', `cannot listen on ${host}:${port}`));
        this.listenSocket = socket;
        resolve(uws.us_socket_local_port(socket as never));
      });
    });
  }

  stopListening(): void {
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }
}
