// A request that found no worker of its model able to take it (all being restarted or set
// aside) waits for one, up to the wait allowed, holding nothing meanwhile, and is then
// dispatched as if it had just arrived. For models with prefill/decode pools, where the way
// a request is served (disaggregated, or by the aggregated workers) is only known once
// workers are back; RoutedRequest waits the same way within one pool.

import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineClient, GenerateChunk, GenerateRequest } from '../engine/client.js';
import type { Dispatch, DispatchOutcome } from './worker_set.js';

const MAX_POLL_MS = 1000;

export class DeferredDispatch implements Dispatch {
  readonly engine: EngineClient;
  private inner: Dispatch | null = null;
  private done = false;

  constructor(
    private readonly ready: () => boolean,
    private readonly dispatch: () => Dispatch,
    private readonly waitMs: number,
    // Thrown when the wait runs out.
    private readonly none: unknown,
  ) {
    this.engine = { generate: (req, signal) => this.generate(req, signal), close: async () => {} };
  }

  get worker(): string {
    return this.inner?.worker ?? 'none';
  }

  get migrations(): number | undefined {
    return this.inner?.migrations;
  }

  firstToken(): void {
    this.inner?.firstToken();
  }

  finish(outcome: DispatchOutcome, error?: unknown): void {
    this.done = true;
    this.inner?.finish(outcome, error);
  }

  private async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const deadline = performance.now() + this.waitMs;
    for (let delay = 10; !this.ready(); delay = Math.min(delay * 1.5, MAX_POLL_MS)) {
      const left = deadline - performance.now();
      if (left <= 0 || this.done) throw this.none;
      try {
        await sleep(Math.min(left, delay), undefined, { signal });
      } catch {
        return; // the client left
      }
    }
    this.inner = this.dispatch();
    yield* this.inner.engine.generate(req, signal);
  }
}
