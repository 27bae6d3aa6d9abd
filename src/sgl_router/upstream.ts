// POSTs to workers over undici's request API on one keep-alive pool per router: the router's
// CPU per request went down by about a quarter against the WHATWG fetch() it replaced
// (bench/README.md, kvgate router). The answer is read once: as text, drained, or chunk by chunk.

import { Agent, request } from 'undici';

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
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 1024, pipelining: 1 });

  async post(url: string, body: string | Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamResponse> {
    const res = await request(url, { method: 'POST', body, headers, signal, dispatcher: this.agent });
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

  close(): Promise<void> {
    return this.agent.close();
  }
}
