// One request's routing decision, as the serving core sees it (a Dispatch): the engine it
// streams from is the chosen worker's client with the chosen dp rank set. If that worker
// fails before the request produced any token (it died, disconnected or is draining), the
// request is routed once more among the other workers and streams from there, so a dying
// worker costs a retry and no request. A failure after tokens were produced ends the
// request with the error (moving a request mid-stream is migration, a later step).

import type { EngineClient, GenerateChunk, GenerateRequest } from '../engine/client.js';
import type { Dispatch, DispatchOutcome } from './worker_set.js';

// The chosen worker rank of one routing decision (rid: the router's request id).
export interface Route<M> {
  member: M;
  name: string;
  rank: number;
  rid: number;
  client: EngineClient;
}

// What a RoutedRequest needs from the worker set.
export interface RoutingPort<M> {
  // Routes the prompt; null when no worker can take it.
  route(tokens: Uint32Array): Route<M> | null;
  markPrefillDone(rid: number): void;
  free(rid: number): void;
  // The stream on `member` failed: takes the worker out if the failure says it cannot
  // serve (true: another worker may succeed).
  failed(member: M, err: unknown): boolean;
  retried(from: Route<M>, to: Route<M>, err: unknown): void;
}

export class RoutedRequest<M> implements Dispatch {
  readonly engine: EngineClient;
  private current: Route<M>;
  private done = false;

  constructor(
    private readonly port: RoutingPort<M>,
    private readonly tokens: Uint32Array,
    first: Route<M>,
  ) {
    this.current = first;
    this.engine = { generate: (req, signal) => this.generate(req, signal), close: async () => {} };
  }

  get worker(): string {
    return this.current.name;
  }

  firstToken(): void {
    this.port.markPrefillDone(this.current.rid);
  }

  finish(_outcome: DispatchOutcome): void {
    if (this.done) return;
    this.done = true;
    this.port.free(this.current.rid);
  }

  private async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    for (let attempt = 0; ; attempt++) {
      const route = this.current;
      let produced = false;
      try {
        for await (const chunk of route.client.generate({ ...req, dpRank: route.rank }, signal)) {
          if (chunk.tokenIds.length > 0 || chunk.finishReason) produced = true;
          yield chunk;
        }
        return;
      } catch (err) {
        if (signal?.aborted) throw err;
        const retriable = this.port.failed(route.member, err);
        if (!retriable || produced || attempt > 0 || this.done) throw err;
        this.port.free(route.rid);
        const next = this.port.route(this.tokens);
        if (next === null) throw err;
        this.current = next;
        this.port.retried(route, next, err);
      }
    }
  }
}
