// Small uWebSockets.js helpers for the mocker's two servers: read a body, answer once, and never
// touch a response after the client went away.

import { statusLine } from '../http/exchange.js';
import { uws, type HttpResponse, type TemplatedApp, type us_listen_socket } from '../http/uws.js';

export const MAX_BODY_BYTES = 64 * 1024 * 1024;

// State shared by a handler and its async continuation.
export interface Exchange {
  res: HttpResponse;
  aborted: boolean;
  done: boolean;
  onAbort: (() => void) | null;
}

export function exchange(res: HttpResponse): Exchange {
  const ex: Exchange = { res, aborted: false, done: false, onAbort: null };
  res.onAborted(() => {
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
    ex.res.onData((chunk, isLast) => {
      if (size < 0) return;
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        size = -1;
        sendJson(ex, 413, { detail: `Request body larger than ${MAX_BODY_BYTES} bytes` });
        resolve(null);
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

export function send(ex: Exchange, status: number, body: string, contentType: string, close = false): void {
  if (ex.aborted || ex.done) return;
  ex.done = true;
  ex.res.cork(() => {
    ex.res.writeStatus(statusLine(status));
    if (contentType) ex.res.writeHeader('content-type', contentType);
    ex.res.end(body, close);
  });
}

export function sendJson(ex: Exchange, status: number, value: unknown, close = false): void {
  send(ex, status, JSON.stringify(value), 'application/json', close);
}

export function sendText(ex: Exchange, status: number, text: string, close = false): void {
  send(ex, status, text, 'text/plain; charset=utf-8', close);
}

export function listen(app: TemplatedApp, host: string, port: number): Promise<{ socket: us_listen_socket; port: number }> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) reject(new Error(`cannot listen on ${host}:${port}`));
      else resolve({ socket, port: uws.us_socket_local_port(socket as unknown as Parameters<typeof uws.us_socket_local_port>[0]) });
    });
  });
}

export function closeListen(socket: us_listen_socket): void {
  uws.us_listen_socket_close(socket);
}
