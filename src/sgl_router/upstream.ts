// POSTs to workers over the lean HTTP/1.1 client (src/net/http1_client.ts), one keep-alive pool
// per worker origin. It replaced undici's Pool, whose stream layers were most of the router's
// own CPU per request (bench/README.md, "kvgate router CPU: profile and changes"). The answer
// is read once: as text(), drain()ed, or chunk by chunk (chunks()); cancel() drops it.

import { Http1Pool, type Http1Response } from '../net/http1_client.js';

export type UpstreamResponse = Http1Response;

// A worker's answer without a content type is taken as SGLang's JSON.
export const contentType = (res: UpstreamResponse): string => res.headers['content-type'] ?? 'application/json';

export class Upstream {
  private readonly pools = new Map<string, Http1Pool>();

  // `origin`: scheme, host and port (a worker's base URL); `path` with its query.
  async post(origin: string, path: string, body: string | Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamResponse> {
    let pool = this.pools.get(origin);
    if (!pool) this.pools.set(origin, (pool = new Http1Pool(origin)));
    return pool.request({ method: 'POST', path, body, headers, signal });
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
