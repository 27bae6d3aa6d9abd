// One request's routing decision, as the serving core sees it (a Dispatch): the engine it
// streams from is the chosen worker's client with the chosen dp rank set. When that stream
// fails in a way that says the worker cannot finish it (unreachable, connection lost,
// engine gone, or an engine abort that is not the request's fault), the request moves:
// - before any token (a retry): routed again among the other workers after a backoff
//   (exponential with jitter), while the retry budget lasts;
// - after tokens went out (a migration, reference/dynamo.md §1.12), while it has
//   migrations left: routed KV-aware again with the prompt plus the tokens generated so
//   far, max_new_tokens reduced by those. The caller's iterator just continues, so its
//   detokenizer and stop matcher never notice; the final usage counts the request once
//   (the original prompt, every generated token, the first leg's cached tokens).
// When no worker can take it at that moment (at dispatch too), the request waits for one, up
// to the port's workerWaitMs, polling with backoff and holding nothing meanwhile. Each leg's router bookkeeping is freed as soon as the leg ends.
// A first leg whose chosen worker is still prefilling (queued behind other requests) a prompt
// sharing a long prefix with this one is not sent: its route is released, and it is routed
// again once that prefill's blocks are stored, that request ends, the client leaves or the
// port's prefill wait runs out (inflight_prefills.ts); the engine then finds the prefix cached
// instead of computing it a second time in the same batch.

import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineClient, GenerateChunk, GenerateRequest } from '../engine/client.js';
import { KvgateError } from '../errors.js';
import type { Prefill } from './inflight_prefills.js';
import type { Dispatch, DispatchOutcome } from './worker_set.js';

// The chosen worker rank of one routing decision (rid: the router's request id).
export interface Route<M> {
  member: M;
  name: string;
  rank: number;
  rid: number;
  client: EngineClient;
  // Prompt tokens the chosen worker holds in its cache, as the router sees it.
  cachedTokens: number;
}

// A request's prompt as the wait for a shared prefill sees it (the port fills it in).
export interface PromptHold {
  readonly tokens: Uint32Array;
  // Its full blocks' local hashes, computed once when first needed.
  hashes: BigUint64Array | null;
  // performance.now() after which it no longer waits.
  readonly until: number;
  // Set by route() when it released the route to wait for this prefill.
  blocking: Prefill | null;
}

// Why a stream moved to another worker (a metric label).
export type MoveCause = 'unreachable' | 'disconnected' | 'timeout' | 'engine_abort';

// Retries of requests that never started (SGLang's gateway's defaults, reference/sglang.md §4.7).
export interface RetryPolicy {
  maxRetries: number; // 5
  initialBackoffMs: number; // 50
  maxBackoffMs: number; // 30000
}
export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 5, initialBackoffMs: 50, maxBackoffMs: 30_000 };
const BACKOFF_MULTIPLIER = 1.5;
const JITTER = 0.2; // the delay is scaled by a random factor in [1 - JITTER, 1 + JITTER]

// The wait before retry number `retry` (0-based): exponential, capped, with jitter.
export function retryDelayMs(p: RetryPolicy, retry: number): number {
  const base = Math.min(p.maxBackoffMs, p.initialBackoffMs * BACKOFF_MULTIPLIER ** retry);
  return base * (1 - JITTER + 2 * JITTER * Math.random());
}
// Waiting for a worker polls at least this often.
const MAX_POLL_MS = 1000;

// What a RoutedRequest needs from the worker set.
export interface RoutingPort<M> {
  // Routes the prompt; null when no worker can take it. With `hold` (a first leg): also null,
  // with hold.blocking set, when the chosen worker is prefilling a prompt it should wait for.
  route(tokens: Uint32Array, hold?: PromptHold): Route<M> | null;
  // Resolves when `p` settles, `untilMs` passes or the signal aborts.
  waitPrefill(p: Prefill, untilMs: number, signal?: AbortSignal): Promise<void>;
  // A leg goes to `route`'s engine (`hold`: the first leg's prompt, recorded as prefilling
  // there until the worker's events store it); call the returned function when it ends.
  sending(route: Route<M>, hold: PromptHold | null): () => void;
  markPrefillDone(rid: number): void;
  free(rid: number): void;
  // The stream on `member` failed: takes the worker out if the failure says it cannot
  // serve (true: another worker may succeed).
  failed(member: M, err: unknown): boolean;
  // The stream on `member` finished (its circuit breaker counts it).
  succeeded(member: M): void;
  // A worker that sends no first token within this, or nothing for streamIdleTimeoutMs
  // mid-stream, is failed with engine_timeout (0: off).
  readonly firstTokenTimeoutMs: number;
  readonly streamIdleTimeoutMs: number;
  // How many times a request first routed to `member` may migrate.
  migrationLimit(member: M): number;
  readonly retry: RetryPolicy;
  // How long a request may wait for a worker when none can take it.
  readonly workerWaitMs: number;
  retried(from: Route<M>, to: Route<M>, err: unknown): void;
  // `recomputed`: the tokens the new worker prefills that it did not hold in its cache
  // (prompt plus generated tokens, less its cached prefix): the price of the migration.
  migrated(from: Route<M>, to: Route<M>, cause: MoveCause, generated: number, recomputed: number, err: unknown): void;
}

// An engine abort that is the engine's trouble, not the request's (no 4xx status): the
// request may finish elsewhere. The worker itself stays routable.
class EngineAbort extends KvgateError {}

function causeOf(err: unknown): MoveCause {
  if (err instanceof EngineAbort) return 'engine_abort';
  if (err instanceof KvgateError && err.code === 'engine_timeout') return 'timeout';
  return /unreachable/.test((err as Error).message) ? 'unreachable' : 'disconnected';
}

// Waits for the prefill `hold` is blocked by (and clears it); throws when the client left, or
// the request ended, meanwhile. The caller routes the prompt again after it.
export async function waitForBlocking<M>(port: RoutingPort<M>, hold: PromptHold, signal: AbortSignal | undefined, ended: () => boolean): Promise<void> {
  const p = hold.blocking!;
  hold.blocking = null;
  await port.waitPrefill(p, hold.until, signal);
  if (signal?.aborted || ended()) throw new KvgateError('client_closed_request', 'the client went away while its request waited for a shared prefill');
}

export class RoutedRequest<M> implements Dispatch {
  readonly engine: EngineClient;
  private current: Route<M> | null;
  private done = false;
  // Whether current.rid is still held in the router (finish() frees it).
  private held = true;
  private migrationsLeft: number;
  private retries = 0;
  migrations = 0;

  // `first` null: no worker could take it at dispatch (or `hold.blocking` says wait first);
  // generate() waits for one, or fails with `noWorker`. `hold`: the wait for a shared prefill.
  constructor(
    private readonly port: RoutingPort<M>,
    private readonly tokens: Uint32Array,
    first: Route<M> | null,
    private readonly noWorker: unknown,
    private readonly hold: PromptHold | null = null,
  ) {
    this.current = first;
    this.held = first !== null;
    this.migrationsLeft = first ? port.migrationLimit(first.member) : 0;
    this.engine = { generate: (req, signal) => this.generate(req, signal), close: async () => {} };
  }

  get worker(): string {
    return this.current?.name ?? 'none';
  }

  firstToken(): void {
    if (this.current) this.port.markPrefillDone(this.current.rid);
  }

  finish(_outcome: DispatchOutcome): void {
    if (this.done) return;
    this.done = true;
    if (this.held && this.current) this.port.free(this.current.rid);
  }

  private async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const generated: number[] = [];
    let cached: number | undefined;
    if (!this.current) {
      this.current = await this.reroute(this.tokens, this.noWorker, signal, this.hold);
      this.held = true;
      this.migrationsLeft = this.port.migrationLimit(this.current.member);
    }
    for (;;) {
      const route = this.current;
      const resumed = generated.length; // tokens generated before this leg
      const leg = resumed === 0 ? req : this.resume(req, generated);
      let legTokens = 0;
      // The engine's silences are timed: before the first token, and between chunks while
      // this request waits on the engine (not while the caller holds a chunk).
      const { firstTokenTimeoutMs: first, streamIdleTimeoutMs: idle } = this.port;
      const timeout = first > 0 || idle > 0 ? new AbortController() : null;
      let timer: NodeJS.Timeout | null = null;
      const arm = (ms: number) => {
        if (timeout && ms > 0) timer = setTimeout(() => timeout.abort(), ms);
      };
      const legSignal = timeout ? (signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal) : signal;
      const timedOut = () =>
        new KvgateError('engine_timeout', legTokens === 0 ? `worker ${route.name} sent no first token within ${first / 1000} s` : `worker ${route.name} sent nothing for ${idle / 1000} s mid-stream`);
      arm(first);
      const sent = this.port.sending(route, resumed === 0 ? this.hold : null);
      try {
        for await (const chunk of route.client.generate({ ...leg, dpRank: route.rank }, legSignal)) {
          if (timer) clearTimeout(timer);
          const n = chunk.tokenIds.length;
          // The serving core reports the first leg's first token; later legs' are ours.
          if (n > 0 && legTokens === 0 && resumed > 0) this.port.markPrefillDone(route.rid);
          legTokens += n;
          for (let i = 0; i < n; i++) generated.push(chunk.tokenIds[i]!);
          const reason = chunk.finishReason;
          if (reason?.type === 'abort' && !signal?.aborted && this.migrationsLeft > 0 && !((reason.statusCode ?? 0) >= 400 && (reason.statusCode ?? 0) < 500)) {
            if (n > 0) yield withLogprobs({ tokenIds: chunk.tokenIds }, chunk);
            throw new EngineAbort('engine_error', `the engine aborted the request${reason.message ? `: ${reason.message}` : ''}`);
          }
          let out = chunk;
          if (resumed === 0) {
            if (chunk.cachedTokens !== undefined) cached = chunk.cachedTokens;
          } else {
            // A resumed leg: its prompt holds the tokens generated before, and its cache
            // counts are not this request's.
            // Its logprobs are the new tokens' only (output only: the prompt's are never asked).
            out = withLogprobs({ tokenIds: chunk.tokenIds }, chunk);
            if (reason) {
              out.finishReason = reason;
              out.usage = { promptTokens: req.tokenIds.length, completionTokens: resumed + (chunk.usage?.completionTokens ?? legTokens), cachedTokens: cached ?? 0 };
            }
          }
          yield out;
          arm(legTokens === 0 ? first : idle);
        }
        if (timeout?.signal.aborted && !signal?.aborted) throw timedOut();
        this.port.succeeded(route.member);
        return;
      } catch (thrown) {
        // The failed leg ends here, before the backoff and the next route (which may count
        // this worker's legs in flight); finally's call is then a no-op.
        sent();
        const err = timeout?.signal.aborted && !signal?.aborted ? timedOut() : thrown;
        if (signal?.aborted || this.done) throw err;
        const gone = this.port.failed(route.member, err);
        if (!gone && !(err instanceof EngineAbort)) throw err;
        const migrating = generated.length > 0;
        if (migrating && this.migrationsLeft <= 0) throw err;
        if (req.sampling.maxNewTokens - generated.length <= 0) throw err;
        this.port.free(route.rid);
        this.held = false;
        if (timer) clearTimeout(timer);
        if (!migrating) await this.backoff(err, signal);
        const next = await this.reroute(migrating ? Uint32Array.from([...this.tokens, ...generated]) : this.tokens, err, signal);
        this.current = next;
        this.held = true;
        if (migrating) {
          this.migrationsLeft--;
          this.migrations++;
          this.port.migrated(route, next, causeOf(err), generated.length, this.tokens.length + generated.length - next.cachedTokens, err);
        } else {
          this.port.retried(route, next, err);
        }
      } finally {
        sent();
        if (timer) clearTimeout(timer);
      }
    }
  }

  // Spends one retry on a wait; throws `err` when the budget is spent or the client left.
  private async backoff(err: unknown, signal?: AbortSignal): Promise<void> {
    const p = this.port.retry;
    if (this.retries >= p.maxRetries) throw err;
    const delay = retryDelayMs(p, this.retries++);
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      throw err;
    }
    if (this.done) throw err;
  }

  // A worker for `tokens`, waiting up to workerWaitMs while none can take it (and, with
  // `hold`, for the prefills it shares); throws `err` after that, or when the client left.
  private async reroute(tokens: Uint32Array, err: unknown, signal?: AbortSignal, hold: PromptHold | null = null): Promise<Route<M>> {
    const deadline = performance.now() + this.port.workerWaitMs;
    for (let delay = Math.max(1, this.port.retry.initialBackoffMs); ; delay = Math.min(delay * BACKOFF_MULTIPLIER, MAX_POLL_MS)) {
      if (hold?.blocking) await waitForBlocking(this.port, hold, signal, () => this.done);
      const next = this.done ? null : this.port.route(tokens, hold ?? undefined);
      if (next !== null) return next;
      if (hold?.blocking) continue;
      const left = deadline - performance.now();
      if (left <= 0 || this.done) throw this.unplaced(err);
      try {
        await sleep(Math.min(left, delay * (1 - JITTER + 2 * JITTER * Math.random())), undefined, { signal });
      } catch {
        throw err;
      }
    }
  }

  // A request that failed on its worker and found no other: the error says both.
  private unplaced(err: unknown): unknown {
    if (err === this.noWorker || this.done || !(err instanceof KvgateError)) return err;
    const waited = this.port.workerWaitMs > 0 ? ` within ${this.port.workerWaitMs / 1000} s` : '';
    return new KvgateError(err.code, `${err.message}; no other worker could take the request${waited}`, err.param, err.retryAfter);
  }

  // The request that continues on another worker after `generated` tokens.
  private resume(req: GenerateRequest, generated: readonly number[]): GenerateRequest {
    const s = req.sampling;
    return {
      ...req,
      // The prompt's logprobs went out with the first leg: the resumed one asks for its new tokens'.
      ...(req.logprobs ? { logprobs: { ...req.logprobs, prompt: false } } : {}),
      tokenIds: [...req.tokenIds, ...generated],
      sampling: {
        ...s,
        maxNewTokens: s.maxNewTokens - generated.length,
        ...(s.minNewTokens !== undefined ? { minNewTokens: Math.max(0, s.minNewTokens - generated.length) } : {}),
      },
    };
  }
}

// `out` with the logprobs of `chunk`'s tokens, which the client already asked for.
function withLogprobs(out: GenerateChunk, chunk: GenerateChunk): GenerateChunk {
  if (chunk.logprobs) out.logprobs = chunk.logprobs;
  return out;
}
