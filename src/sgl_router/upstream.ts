// POSTs to workers over the lean HTTP/1.1 client (src/net/http1_client.ts), one keep-alive pool
// per worker origin. It replaced undici's Pool, whose stream layers were most of the router's
// own CPU per request (bench/README.md, "kvgate router CPU: profile and changes"). The answer
// is read once: as text, drained, or chunk by chunk.

import { Http1Pool, type Http1Response } from '../net/http1_client.js';

export interface UpstreamResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly contentType: string;
  text(): Promise<string>;
  // Reads and drops the rest of the body (a retried attempt, the prefill leg).
  drain(): Promise<void>;
  chunks(): AsyncIterable<Buffer>;
  // Drops the connection's remaining body (the client went away mid-stream).
  cancel(): void;
}

async function* chunksOf(res: Http1Response): AsyncGenerator<Buffer> {
  for (let b = await res.read(); b !== null; b = await res.read()) yield b;
}

export class Upstream {
  private readonly pools = new Map<string, Http1Pool>();

  // `origin`: scheme, host and port (a worker's base URL); `path` with its query.
  async post(origin: string, path: string, body: string | Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamResponse> {
    let pool = this.pools.get(origin);
    if (!pool) this.pools.set(origin, (pool = new Http1Pool(origin)));
    const res = await pool.request({ method: 'POST', path, body, headers, signal });
    return {
      status: res.status,
      ok: res.status >= 200 && res.status < 300,
      contentType: res.headers['content-type'] ?? 'application/json',
      text: () => res.text(),
      drain: () => res.drain(),
      chunks: () => chunksOf(res),
      cancel: () => res.cancel(),
    };
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
