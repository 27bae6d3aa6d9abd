// An in-process EngineClient for request-plane tests: the transport is real (uWS server,
// ws client, flatbuffers frames); only the engine behind the worker is this small model.
// Output token i of a request is (first prompt token + i); `chunkTokens` tokens per chunk.

import { KvgateError, type ErrorCode } from '../../src/errors.js';
import type { EngineClient, GenerateChunk, GenerateRequest } from '../../src/engine/client.js';

export interface FakeEngineOptions {
  chunkTokens?: number;
  delayMs?: number;
  // Fail requests whose first prompt token is this, with this code.
  failOn?: { token: number; code: ErrorCode };
  // Requests whose first prompt token is this end without a finish reason.
  truncateOn?: number;
}

export class FakeEngine implements EngineClient {
  produced = 0; // chunks handed to the worker
  started = 0;
  aborted: string[] = [];
  finished: string[] = [];
  constructor(private readonly opts: FakeEngineOptions = {}) {}

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateChunk> {
    this.started++;
    const first = req.tokenIds[0]!;
    if (this.opts.failOn?.token === first) throw new KvgateError(this.opts.failOn.code, `refused prompt starting with ${first}`);
    const per = this.opts.chunkTokens ?? 1;
    const total = req.sampling.maxNewTokens;
    let sent = 0;
    try {
      while (sent < total) {
        if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
        else await new Promise((r) => setImmediate(r));
        if (signal?.aborted) {
          this.aborted.push(req.requestId);
          return;
        }
        const n = Math.min(per, total - sent);
        const tokenIds = Array.from({ length: n }, (_, i) => first + sent + i);
        sent += n;
        this.produced++;
        if (sent === total && this.opts.truncateOn !== first) {
          this.finished.push(req.requestId);
          yield {
            tokenIds,
            finishReason: { type: 'length', length: total },
            usage: { promptTokens: req.tokenIds.length, completionTokens: total, cachedTokens: 3 },
          };
          return;
        }
        // SGLang reports cached prompt tokens from its first frame on.
        yield sent === n ? { tokenIds, cachedTokens: 3 } : { tokenIds };
      }
    } finally {
      if (signal?.aborted && !this.aborted.includes(req.requestId)) this.aborted.push(req.requestId);
    }
  }

  async close(): Promise<void> {}
}
