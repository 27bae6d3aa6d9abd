// What the Exchange needs from an HTTP server for one request, implemented over uWS
// (uws_backend.ts) and node:http (node_backend.ts), and what HttpServer needs to route.

export interface Wire {
  // Lower-case method, and the path without the query string (raw, not %-decoded).
  readonly method: string;
  readonly url: string;
  // The query string without '?' ('' when none).
  readonly query: string;
  // Raw values of the route's ':name' segments, in order.
  readonly params: readonly string[];
  // A request header ('' if absent); only valid inside the route handler.
  header(name: string): string;
  // More than one Content-Length header (request smuggling); only inside the handler.
  repeatedContentLength(): boolean;
  // Runs once if the client goes away (or close() is called) before the response ended.
  onAborted(cb: () => void): void;
  // Body chunks, each one owned by the caller; the last call has isLast.
  onData(cb: (chunk: Buffer, isLast: boolean) => void): void;
  // A whole response. `headOnly`: the headers with the body's Content-Length, no body.
  // `close`: the connection is closed after it.
  send(status: number, contentType: string, requestId: string, headers: Record<string, string> | undefined, body: string, headOnly: boolean, close: boolean): void;
  // A text/event-stream response with its first bytes; false as for write().
  startStream(requestId: string, first: string): boolean;
  // False when the socket did not take it all (the server holds the rest).
  write(data: string): boolean;
  endStream(last: string): void;
  // Once, the next time the socket takes data again after write() returned false.
  onWritable(cb: () => void): void;
  // Drops the connection; runs the onAborted callback before returning.
  close(): void;
}

export type WireHandler = (wire: Wire) => void;

export interface HttpBackend {
  route(method: 'get' | 'post' | 'head' | 'delete', pattern: string, handler: WireHandler): void;
  // Any method on a pattern ('/*' for every path); matched after route()'s.
  any(pattern: string, handler: WireHandler): void;
  listen(host: string, port: number): Promise<number>;
  // Stops accepting connections; open ones stay.
  stopListening(): void;
}

export const HTTP_SERVERS = ['uws', 'node'] as const;
export type HttpServerKind = (typeof HTTP_SERVERS)[number];
