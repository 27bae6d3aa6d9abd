// One DP rank's engine: a waiting queue, continuous batching with chunked prefill, a paged radix
// prefix cache, and a timer-driven step loop whose step durations come from the timing model.
//
// Like SGLang's scheduler, a step is either a prefill batch (new prompts, or the next chunk of a
// long one) or one decode step for every running request; prefill goes first when it can. All
// effects of a step (tokens, cache inserts, KV events) land when the step's time has passed.

import { PagedRadixCache, type KvEvent } from './radix_cache.js';
import { abortReason, type EngineRequest, type FinishReason } from './request.js';
import type { TimingModel } from './timing.js';
import type { DisaggregationMode } from './options.js';
import { realClock, type EngineClock } from './clock.js';
import type { ForwardPassRecorder } from './expert_distribution.js';

export interface SchedulerConfig {
  rank: number;
  pageSize: number;
  maxTotalTokens: number;
  maxRunningRequests: number;
  chunkedPrefillSize: number; // -1 = never chunk
  maxPrefillTokens: number;
  eosTokenId: number;
  withText: boolean;
  mode: DisaggregationMode;
  cacheEnabled: boolean;
  timing: TimingModel;
  clock?: EngineClock; // default: real time
}

// Per-request observations for metrics (called only for requests with logMetrics).
export interface RequestObserver {
  firstToken(req: EngineRequest, ttftSeconds: number): void;
  interToken(req: EngineRequest, seconds: number): void;
  finished(req: EngineRequest): void;
}

export interface SchedulerHooks {
  events(rank: number, events: KvEvent[]): void;
  // Every request ends here exactly once, whatever the reason.
  ended?(req: EngineRequest): void;
  // PD prefill: resolves once the decode side of the request's room has connected (SGLang's
  // bootstrap queue), rejects with the failure message.
  bootstrap?(req: EngineRequest): Promise<void>;
  // PD prefill: the prompt is computed and its first token drawn; resolves once the decode side
  // holds the KV (the simulated transfer included), rejects with the failure message.
  prefillDone?(req: EngineRequest): Promise<void>;
  // PD decode: the KV pages are reserved; resolves with what prefill computed.
  fetchKv?(req: EngineRequest): Promise<{ firstToken: number; cachedTokens: number }>;
  observer?: RequestObserver;
  // The expert-distribution recorder: sees every forward pass's tokens while it records.
  experts?: ForwardPassRecorder;
}

interface PrefillItem {
  req: EngineRequest;
  tokens: number;
}

// PD health probes and benchmarks use this host: no real KV transfer happens (SGLang's
// FAKE_BOOTSTRAP_HOST).
export const FAKE_BOOTSTRAP_HOST = '2.2.2.2';

export class RankScheduler {
  readonly cache: PagedRadixCache;
  private waiting: EngineRequest[] = [];
  private readonly bootstrapping = new Set<EngineRequest>();
  private prealloc: EngineRequest[] = [];
  private running: EngineRequest[] = [];
  private chunked: EngineRequest | null = null;
  private inflightPrefill: PrefillItem[] | null = null;
  private inflightDecode = 0;
  private timer: unknown = null;
  private readonly clock: EngineClock;
  private lastStepEnd = 0;
  private pendingEvents: KvEvent[] = [];
  private admitted = 0;
  private closed = false;
  // Inside onStepEnd: a request submitted by a hook it runs (a finished request's follow-up)
  // waits for the step it ends to be scheduled, rather than scheduling one of its own that
  // the end of onStepEnd would overwrite (losing that batch's requests).
  private stepping = false;
  // Load and metrics state.
  transferring = 0;
  lastCacheHitRate = 0;
  genThroughput = 0;
  private windowTokens = 0;
  private windowStart: number;
  readonly counters = { promptTokens: 0, generationTokens: 0, cachedTokens: 0, requests: 0, aborted: 0 };

  constructor(
    private readonly cfg: SchedulerConfig,
    private readonly hooks: SchedulerHooks,
  ) {
    this.clock = cfg.clock ?? realClock;
    this.windowStart = this.clock.now();
    const totalPages = Math.floor(cfg.maxTotalTokens / cfg.pageSize);
    this.cache = new PagedRadixCache(cfg.pageSize, totalPages, (e) => this.queueEvent(e), cfg.cacheEnabled);
  }

  // ---- load, as /get_load, /v1/loads and /metrics report it ----
  // Admitted requests (prefilling or decoding) that are not waiting on a KV transfer.
  get numRunning(): number {
    return this.admitted - this.transferring;
  }
  // Every request this rank holds, whatever its state.
  get numRequests(): number {
    return this.admitted + this.waiting.length + this.prealloc.length + this.bootstrapping.size;
  }
  get numWaiting(): number {
    return this.waiting.length + this.prealloc.length;
  }
  get numPrealloc(): number {
    return this.prealloc.length;
  }
  get numBootstrapping(): number {
    return this.bootstrapping.size;
  }
  // KV tokens held by requests; cached but evictable pages do not count (as in SGLang).
  get usedTokens(): number {
    return this.cache.activePages * this.cfg.pageSize;
  }
  get evictableTokens(): number {
    return this.cache.evictable * this.cfg.pageSize;
  }
  get waitingTokens(): number {
    let t = 0;
    for (const r of this.waiting) t += r.isl;
    for (const r of this.prealloc) t += r.isl;
    return t;
  }
  get decodeSumSeqLens(): number {
    let t = 0;
    for (const r of this.running) if (r.state === 'running') t += r.kvTokens;
    return t;
  }
  get idle(): boolean {
    return this.admitted === 0 && this.waiting.length === 0 && this.prealloc.length === 0 && this.bootstrapping.size === 0;
  }

  // ---- entry points ----
  submit(req: EngineRequest): void {
    if (this.closed) return this.finish(req, abortReason('The server is shutting down.', 503));
    req.rank = this.cfg.rank;
    if (this.hooks.observer && req.logMetrics) {
      this.counters.requests++;
      this.counters.promptTokens += req.isl;
    }
    // Decode requests wait for their KV from prefill; one without a room
    // (--disaggregation-decode-local-prefill) is prefilled here, as in aggregated mode.
    if (this.cfg.mode === 'decode' && req.bootstrap) {
      req.state = 'prealloc';
      this.prealloc.push(req);
    } else if (this.cfg.mode === 'prefill' && this.hooks.bootstrap && req.bootstrap && req.bootstrap.host !== FAKE_BOOTSTRAP_HOST) {
      req.state = 'bootstrap';
      this.bootstrapping.add(req);
      this.hooks.bootstrap(req).then(
        () => {
          if (req.state !== 'bootstrap') return;
          this.bootstrapping.delete(req);
          req.state = 'waiting';
          this.waiting.push(req);
          this.kick();
        },
        (err: Error) => {
          if (req.state !== 'bootstrap') return;
          this.finish(req, abortReason(err.message, 500));
          this.kick();
        },
      );
      return;
    } else {
      req.state = 'waiting';
      this.waiting.push(req);
    }
    this.kick();
  }

  abort(req: EngineRequest, reason: FinishReason = abortReason('Aborted')): void {
    if (req.state === 'done') return;
    if (this.hooks.observer && req.logMetrics) this.counters.aborted++;
    this.finish(req, reason);
    this.kick();
  }

  // Every request, for /abort_request's prefix match.
  *requests(): Iterable<EngineRequest> {
    yield* this.bootstrapping;
    yield* this.waiting;
    yield* this.prealloc;
    for (const r of this.running) if (r.state === 'running') yield r;
    if (this.chunked) yield this.chunked;
    if (this.inflightPrefill) for (const it of this.inflightPrefill) if (it.req.state === 'prefill' && it.req !== this.chunked) yield it.req;
    yield* this.parked;
  }
  // Requests outside the queues (PD transfers in flight).
  private readonly parked = new Set<EngineRequest>();

  flushCache(): boolean {
    if (!this.idle) return false;
    this.cache.clear();
    return true;
  }

  close(reason: FinishReason): void {
    this.closed = true;
    for (const req of [...this.requests()]) this.finish(req, reason);
    if (this.timer) {
      this.clock.clearTimer(this.timer);
      this.timer = null;
    }
    this.flushEvents();
  }

  // ---- the step loop ----
  private kick(): void {
    if (!this.timer && !this.closed && !this.stepping) this.scheduleStep();
  }

  private scheduleStep(): void {
    if (this.cfg.mode === 'decode') this.admitPrealloc();
    const batch = this.formPrefillBatch();
    let ms: number;
    if (batch) {
      let newTokens = 0;
      for (const it of batch) newTokens += it.tokens;
      ms = this.cfg.timing.prefillMs(newTokens);
      this.inflightPrefill = batch;
    } else if (this.running.length > 0) {
      let active = 0;
      for (const r of this.running) active += r.kvTokens;
      ms = this.cfg.timing.decodeMs(active, this.cfg.maxTotalTokens);
      this.inflightDecode = this.running.length;
    } else {
      this.flushEvents();
      return;
    }
    this.flushEvents();
    // Steps follow each other back to back in model time; a late timer does not push the
    // next step later.
    const now = this.clock.now();
    const end = Math.max(now, this.lastStepEnd) + ms;
    this.lastStepEnd = end;
    this.timer = this.clock.setTimer(end - now, this.onStepEnd);
  }

  private readonly onStepEnd = (): void => {
    this.timer = null;
    if (this.closed) return;
    if (this.hooks.experts?.recording) this.hooks.experts.record(this.cfg.rank, this.passTokens());
    this.stepping = true;
    try {
      if (this.inflightPrefill) {
        const batch = this.inflightPrefill;
        this.inflightPrefill = null;
        this.completePrefill(batch);
      } else {
        const n = this.inflightDecode;
        this.inflightDecode = 0;
        this.completeDecode(n);
      }
    } finally {
      this.stepping = false;
    }
    this.scheduleStep();
  };

  // The tokens the step that just ended ran through the model: the prompt slices of a
  // prefill batch, or the newest token of each decoding request.
  private passTokens(): number[] {
    const out: number[] = [];
    if (this.inflightPrefill) {
      for (const { req, tokens } of this.inflightPrefill) for (let i = req.computedTokens; i < req.computedTokens + tokens; i++) out.push(req.inputIds[i]!);
      return out;
    }
    for (let i = 0; i < this.inflightDecode; i++) {
      const req = this.running[i]!;
      if (req.state === 'running') out.push(req.outputIds.at(-1) ?? req.inputIds.at(-1)!);
    }
    return out;
  }

  private formPrefillBatch(): PrefillItem[] | null {
    const noChunking = this.cfg.chunkedPrefillSize === -1;
    let budget = noChunking ? this.cfg.maxPrefillTokens : Math.min(this.cfg.chunkedPrefillSize, this.cfg.maxPrefillTokens);
    const items: PrefillItem[] = [];
    if (this.chunked) {
      const req = this.chunked;
      const remaining = req.isl - req.computedTokens;
      const take = Math.min(remaining, budget);
      items.push({ req, tokens: take });
      if (take < remaining) return items;
      this.chunked = null;
      budget -= take;
    }
    const ps = this.cfg.pageSize;
    while (this.waiting.length > 0 && budget > 0 && this.admitted < this.cfg.maxRunningRequests) {
      const req = this.waiting[0]!;
      // At least one prompt token is always computed (it yields the first output token).
      const { node, length } = this.cache.matchAndLock(req.inputIds, req.isl - 1);
      const uncached = req.isl - length;
      if (noChunking && items.length > 0 && uncached > budget) {
        this.cache.unlock(node);
        break;
      }
      const reserve = this.cfg.mode === 'prefill' ? 1 : req.rules.maxNewTokens;
      const need = this.cache.pagesFor(req.isl + reserve) - length / ps;
      if (!this.cache.reservePrivate(need)) {
        this.cache.unlock(node);
        break;
      }
      this.waiting.shift();
      this.admitted++;
      req.state = 'prefill';
      req.lockedNode = node;
      req.coveredPages = length / ps;
      req.privatePages = need;
      req.cachedTokens = length;
      req.computedTokens = length;
      if (this.hooks.observer && req.logMetrics) this.counters.cachedTokens += length;
      const take = noChunking ? uncached : Math.min(uncached, budget);
      items.push({ req, tokens: take });
      budget -= take;
      if (take < uncached) {
        this.chunked = req;
        break;
      }
    }
    if (items.length === 0) return null;
    let cached = 0;
    let total = 0;
    for (const it of items) {
      if (it.req.computedTokens === it.req.cachedTokens) {
        cached += it.req.cachedTokens;
        total += it.req.isl;
      }
    }
    if (total > 0) this.lastCacheHitRate = cached / total;
    return items;
  }

  private completePrefill(batch: PrefillItem[]): void {
    for (const { req, tokens } of batch) {
      if (req.state !== 'prefill') continue;
      req.computedTokens += tokens;
      this.cacheProgress(req, req.computedTokens, req.inputIds);
      if (req.computedTokens >= req.isl) this.promptDone(req);
    }
  }

  private completeDecode(n: number): void {
    const now = this.clock.now();
    let produced = 0;
    for (let i = 0; i < n; i++) {
      const req = this.running[i]!;
      if (req.state !== 'running') continue;
      this.produceToken(req, now);
      produced++;
      if (req.finished) this.finish(req);
    }
    this.running = this.running.filter((r) => r.state === 'running');
    this.noteThroughput(produced, now);
  }

  private noteThroughput(tokens: number, now: number): void {
    this.windowTokens += tokens;
    const elapsed = now - this.windowStart;
    if (elapsed >= 1000) {
      this.genThroughput = (this.windowTokens * 1000) / elapsed;
      this.windowTokens = 0;
      this.windowStart = now;
    }
  }

  // Insert the page-aligned part of the request's KV into the tree and give back the private
  // pages it held for it (SGLang caches unfinished requests after every chunk).
  private cacheProgress(req: EngineRequest, kvLen: number, tokens: readonly number[]): void {
    if (!this.cache.enabled || !req.lockedNode) return;
    const ps = this.cfg.pageSize;
    const pages = Math.floor(kvLen / ps);
    if (pages <= req.coveredPages) return;
    req.lockedNode = this.cache.insertAndRelock(req.lockedNode, tokens, pages * ps);
    const moved = Math.min(pages - req.coveredPages, req.privatePages);
    this.cache.releasePrivate(moved);
    req.privatePages -= moved;
    req.coveredPages = pages;
  }

  private produceToken(req: EngineRequest, now: number, firstToken?: number): void {
    req.generate(this.cfg.eosTokenId, this.cfg.withText, firstToken);
    const obs = req.logMetrics ? this.hooks.observer : undefined;
    if (req.outputIds.length === 1) {
      obs?.firstToken(req, (now - req.arrivalMs) / 1000);
    } else {
      obs?.interToken(req, (now - req.lastTokenMs) / 1000);
    }
    req.lastTokenMs = now;
    if (obs) this.counters.generationTokens++;
    if (!req.finished && req.stream && req.outputIds.length - req.sentIds >= req.rules.streamInterval) req.sink.output(req, false);
  }

  private promptDone(req: EngineRequest): void {
    const now = this.clock.now();
    if (req.rules.maxNewTokens === 0) return this.finish(req, { type: 'length', length: 0 });
    if (this.cfg.mode === 'prefill') {
      // The prefill engine samples the first token and hands the KV over; its own response
      // ends after the transfer with finish length 0, as SGLang's does.
      req.generate(this.cfg.eosTokenId, this.cfg.withText);
      req.finishReason = null;
      if (req.bootstrap?.host === FAKE_BOOTSTRAP_HOST || !this.hooks.prefillDone) {
        return this.finish(req, { type: 'length', length: 0 });
      }
      this.park(req);
      this.hooks.prefillDone(req).then(
        () => this.unpark(req, { type: 'length', length: 0 }),
        (err: Error) => this.unpark(req, abortReason(err.message, 500)),
      );
      return;
    }
    this.produceToken(req, now);
    if (req.finished) return this.finish(req);
    req.state = 'running';
    this.running.push(req);
  }

  // ---- PD decode: reserve pages, then fetch the KV from prefill ----
  private admitPrealloc(): void {
    while (this.prealloc.length > 0 && this.admitted < this.cfg.maxRunningRequests) {
      const req = this.prealloc[0]!;
      const need = this.cache.pagesFor(req.isl + req.rules.maxNewTokens);
      if (!this.cache.reservePrivate(need)) return;
      this.prealloc.shift();
      this.admitted++;
      req.privatePages = need;
      if (req.bootstrap?.host === FAKE_BOOTSTRAP_HOST || !this.hooks.fetchKv) {
        req.computedTokens = req.isl;
        this.promptDone(req);
        continue;
      }
      this.park(req);
      this.hooks.fetchKv(req).then(
        ({ firstToken, cachedTokens }) => {
          if (req.state !== 'transfer') return;
          this.parked.delete(req);
          this.transferring--;
          req.cachedTokens = cachedTokens;
          req.computedTokens = req.isl;
          if (req.logMetrics && this.hooks.observer) this.counters.cachedTokens += cachedTokens;
          this.produceToken(req, this.clock.now(), firstToken);
          if (req.finished) this.finish(req);
          else {
            req.state = 'running';
            this.running.push(req);
          }
          this.kick();
        },
        (err: Error) => this.unpark(req, abortReason(err.message, 500)),
      );
    }
  }

  private park(req: EngineRequest): void {
    req.state = 'transfer';
    this.parked.add(req);
    this.transferring++;
  }

  private unpark(req: EngineRequest, reason: FinishReason): void {
    if (req.state !== 'transfer') return;
    this.finish(req, reason);
    this.kick();
  }

  // ---- finishing ----
  private finish(req: EngineRequest, reason?: FinishReason): void {
    if (req.state === 'done') return;
    if (reason) req.finishReason = reason;
    switch (req.state) {
      case 'bootstrap':
        this.bootstrapping.delete(req);
        break;
      case 'waiting':
        removeFrom(this.waiting, req);
        break;
      case 'prealloc':
        removeFrom(this.prealloc, req);
        break;
      case 'transfer':
        this.parked.delete(req);
        this.transferring--;
        this.admitted--;
        break;
      case 'prefill':
      case 'running':
        this.admitted--;
        break;
    }
    if (this.chunked === req) this.chunked = null;
    this.release(req);
    req.state = 'done';
    if (req.logMetrics) this.hooks.observer?.finished(req);
    this.hooks.ended?.(req);
    req.sink.output(req, true);
  }

  // Cache what was computed (prompt and output, page-aligned), unpin it, free the rest.
  private release(req: EngineRequest): void {
    if (req.lockedNode) {
      if (this.cfg.mode !== 'decode') {
        const seq = req.outputIds.length > 0 ? req.inputIds.concat(req.outputIds) : req.inputIds;
        this.cacheProgress(req, req.kvTokens, seq);
      }
      this.cache.unlock(req.lockedNode);
      req.lockedNode = null;
    }
    if (req.privatePages > 0) {
      this.cache.releasePrivate(req.privatePages);
      req.privatePages = 0;
    }
  }

  // ---- KV events: everything that changed the cache in one synchronous run is one batch ----
  private queueEvent(e: KvEvent): void {
    if (this.pendingEvents.length === 0) this.clock.defer(() => this.flushEvents());
    this.pendingEvents.push(e);
  }

  private flushEvents(): void {
    if (this.pendingEvents.length === 0) return;
    const events = this.pendingEvents;
    this.pendingEvents = [];
    this.hooks.events(this.cfg.rank, events);
  }
}

function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

