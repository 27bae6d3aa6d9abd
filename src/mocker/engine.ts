// The mocker engine: N data-parallel ranks (independent caches, schedulers and event ports), the
// request registry (rids for /abort_request), DP rank choice, and the PD wiring.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BootstrapTable } from './bootstrap_server.js';
import { DecodeKvClient, PrefillRendezvous } from './disagg.js';
import { ExpertDistributionRecorder } from './expert_distribution.js';
import { silentLogger, type Logger } from '../observability/log.js';
import type { KvEventPublishers } from './kv_events.js';
import { MockerMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { RequestError } from './protocol.js';
import { abortReason, EngineRequest, type FinishReason, type OutputSink } from './request.js';
import { FAKE_BOOTSTRAP_HOST, RankScheduler, type RequestObserver } from './scheduler.js';
import { polynomialTiming } from './timing.js';

export type ServerStatus = 'starting' | 'up' | 'stopping';

export class MockEngine {
  readonly ranks: RankScheduler[];
  readonly rendezvous: PrefillRendezvous | null = null;
  readonly decodeClient: DecodeKvClient | null = null;
  readonly bootstrapTable: BootstrapTable | null = null;
  readonly metrics: MockerMetrics | null = null;
  readonly experts: ExpertDistributionRecorder;
  readonly startedAt = Date.now();
  status: ServerStatus = 'starting';
  private readonly byRid = new Map<string, EngineRequest>();
  private rr = 0;

  constructor(
    readonly opts: ResolvedOptions,
    private readonly publishers: KvEventPublishers | null,
    log: Logger = silentLogger,
  ) {
    const dir = process.env['SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR'] ?? '/tmp';
    this.experts = new ExpertDistributionRecorder(opts.expertDistributionRecorderMode, opts.dpSize, opts.expertDistributionRecorderBufferSize, dir, (msg) => log.warn(msg));
    const timing = polynomialTiming(opts);
    if (opts.disaggregationMode === 'prefill') {
      this.rendezvous = new PrefillRendezvous(timing, opts.bootstrapTimeoutMs, (req, message) => this.abort(req, abortReason(message, 500)));
      this.bootstrapTable = new BootstrapTable();
    } else if (opts.disaggregationMode === 'decode') {
      // A request without bootstrap_port uses this engine's own --disaggregation-bootstrap-port.
      this.decodeClient = new DecodeKvClient(opts.pageSize, opts.waitingTimeoutMs, opts.disaggregationBootstrapPort);
    }
    let observer: RequestObserver | undefined;
    if (opts.enableMetrics) {
      observer = {
        firstToken: (r, s) => this.metrics?.firstToken(r, s),
        interToken: (r, s) => this.metrics?.interToken(r, s),
        finished: (r) => this.metrics?.finished(r),
      };
    }
    const rv = this.rendezvous;
    const dc = this.decodeClient;
    this.ranks = Array.from(
      { length: opts.dpSize },
      (_, rank) =>
        new RankScheduler(
          {
            rank,
            pageSize: opts.pageSize,
            maxTotalTokens: opts.maxTotalTokens,
            maxRunningRequests: opts.maxRunningRequests,
            chunkedPrefillSize: opts.chunkedPrefillSize,
            maxPrefillTokens: opts.maxPrefillTokens,
            eosTokenId: opts.eosTokenId,
            withText: !opts.skipTokenizerInit,
            mode: opts.disaggregationMode,
            // A decode engine keeps no prefix cache (SGLang's default in PD decode).
            cacheEnabled: !opts.disableRadixCache && opts.disaggregationMode !== 'decode',
            timing,
          },
          {
            events: (r, events) => this.publishers?.publish(r, events),
            ended: (req) => {
              if (this.byRid.get(req.rid) === req) this.byRid.delete(req.rid);
              if (req.bootstrap && req.bootstrap.host !== FAKE_BOOTSTRAP_HOST) {
                rv?.ended(req);
                dc?.ended(req);
              }
            },
            bootstrap: rv ? (req) => rv.waitForDecode(req) : undefined,
            prefillDone: rv ? (req) => rv.transfer(req) : undefined,
            fetchKv: dc ? (req) => dc.fetchKv(req) : undefined,
            observer,
            experts: this.experts,
          },
        ),
    );
    if (opts.enableMetrics) {
      const views = this.ranks.map((s) => ({
        scheduler: s,
        bootstrapQueue: () => s.numBootstrapping,
        transferLatencyMs: () => rv?.lastTransferMs ?? 0,
      }));
      this.metrics = new MockerMetrics(opts, views, 0);
    }
  }

  get inFlight(): number {
    return this.byRid.size;
  }

  hasRid(rid: string): boolean {
    return this.byRid.has(rid);
  }

  // Which DP rank serves a request (SGLang's DataParallelController, roughly).
  private pickRank(routed: number | null, room: bigint | null): number {
    const dp = this.opts.dpSize;
    if (routed !== null) {
      if (routed < 0 || routed >= dp) throw new RequestError(`routed_dp_rank ${routed} is out of range [0, ${dp}).`);
      return routed;
    }
    if (dp === 1) return 0;
    const start = this.rr++ % dp;
    switch (this.opts.loadBalanceMethod) {
      case 'follow_bootstrap_room':
        return room !== null ? Number(room % BigInt(dp)) : start;
      case 'round_robin':
        return start;
      case 'total_requests':
      case 'total_tokens': {
        const load = (s: RankScheduler) =>
          this.opts.loadBalanceMethod === 'total_requests' ? s.numRunning + s.numWaiting + s.numBootstrapping : s.usedTokens + s.waitingTokens;
        let best = start;
        for (let i = 1; i < dp; i++) {
          const r = (start + i) % dp;
          if (load(this.ranks[r]!) < load(this.ranks[best]!)) best = r;
        }
        return best;
      }
    }
  }

  // Queue a request; throws RequestError (duplicate rid, bad DP rank) before anything runs.
  submit(req: EngineRequest, routedDpRank: number | null): void {
    if (this.byRid.has(req.rid)) throw new RequestError(`Duplicate request ID detected: ${req.rid}`);
    const room = req.bootstrap?.room ?? null;
    const rank = this.pickRank(routedDpRank, room);
    if (this.bootstrapTable && room !== null && this.opts.loadBalanceMethod !== 'follow_bootstrap_room') {
      this.bootstrapTable.registerDpRank(room, rank);
    }
    this.byRid.set(req.rid, req);
    this.ranks[rank]!.submit(req);
  }

  abort(req: EngineRequest, reason?: FinishReason): void {
    this.ranks[req.rank]?.abort(req, reason);
  }

  // POST /abort_request: rids match by prefix (batch items are "<rid>_<i>").
  abortByRid(rid: string, abortAll: boolean): number {
    if (!abortAll && !rid) return 0;
    let n = 0;
    for (const req of [...this.byRid.values()]) {
      if (abortAll || req.rid.startsWith(rid)) {
        this.abort(req);
        n++;
      }
    }
    return n;
  }

  // /flush_cache: only when nothing runs, optionally waiting up to timeoutMs for that.
  async flushCache(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ranks.every((s) => s.idle)) {
      if (Date.now() >= deadline) return false;
      await sleep(5);
    }
    for (const s of this.ranks) s.flushCache();
    return true;
  }

  // /health_generate: one token through the engine (a fake room in PD mode, as SGLang does).
  healthProbe(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve(false);
        this.abort(req);
      }, timeoutMs);
      const sink: OutputSink = {
        output: (_r, finished) => {
          if (!finished) return;
          clearTimeout(timer);
          resolve(_r.finishReason?.type !== 'abort');
        },
      };
      const pd = this.opts.disaggregationMode !== 'null';
      const req = new EngineRequest({
        rid: `HEALTH_CHECK_${randomUUID().replaceAll('-', '')}`,
        inputIds: [0],
        rules: { maxNewTokens: 1, minNewTokens: 0, ignoreEos: false, stopTokenIds: null, stopStrings: null, noStopTrim: false, skipSpecialTokens: true, streamInterval: 1, samplingSeed: null },
        stream: false,
        sink,
        seed: this.opts.seed,
        bootstrap: pd ? { host: FAKE_BOOTSTRAP_HOST, port: null, room: 0n } : null,
        logMetrics: false,
      });
      this.submit(req, null);
    });
  }

  // Stop: refuse new work, give in-flight requests `graceMs` to finish, abort the rest.
  async drain(graceMs: number): Promise<void> {
    this.status = 'stopping';
    const deadline = Date.now() + graceMs;
    while (this.byRid.size > 0 && Date.now() < deadline) await sleep(10);
    const reason = abortReason('The server is shutting down.', 503);
    for (const s of this.ranks) s.close(reason);
  }
}
