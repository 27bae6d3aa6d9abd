// POSTs to workers over undici's request API on a keep-alive pool per worker origin: the router's
// CPU per request went down by about a quarter against the WHATWG fetch() it replaced
// (bench/README.md, kvgate router). Requests go to the origin's Pool directly: undici's top-level
// request() parses the URL and copies the options on every call (seen in a --cpu-prof of
// bench:sgl-router). The answer is read once: as text, drained, or chunk by chunk.

import { Pool } from 'undici';

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

export class Upstream {
  private readonly pools = new Map<string, Pool>();

  // `origin`: scheme, host and port (a worker's base URL); `path` with its query.
  async post(origin: string, path: string, body: string | Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamResponse> {
    let pool = this.pools.get(origin);
    if (!pool) this.pools.set(origin, (pool = new Pool(origin, { keepAliveTimeout: 30_000, connections: 1024, pipelining: 1 })));
    const res = await pool.request({ path, method: 'POST', body, headers, signal });
    const type = res.headers['content-type'];
    return {
      status: res.statusCode,
      ok: res.statusCode >= 200 && res.statusCode < 300,
      contentType: (Array.isArray(type) ? type[0] : type) ?? 'application/json',
      text: () => res.body.text(),
      drain: async () => {
        try {
          await res.body.dump();
        } catch {
          /* the connection went away: nothing left to read */
        }
      },
      chunks: () => res.body as AsyncIterable<Buffer>,
      cancel: () => res.body.destroy(),
    };
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
