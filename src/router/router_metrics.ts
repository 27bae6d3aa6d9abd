// Prometheus metrics of the KV router, added to the frontend's /metrics registry: what the
// index holds per worker, how KV events and resets flow in, how much prefix each routing
// decision found, and the load each engine reports. Counters and histograms are updated as
// things happen; gauges are read from the router when /metrics is scraped.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { prefillMetrics, type InflightPrefills } from './inflight_prefills.js';

const PREFIX = 'kvgate_router_';

export interface UnitRow {
  model: string;
  worker: string;
  rank: number;
  cachedBlocks: number;
  activeBlocks: number;
  prefillTokens: number;
  activeRequests: number;
}

export interface WorkerRow {
  model: string;
  worker: string;
  state: string;
  breaker: number; // 0 closed, 1 open, 2 half-open
  busy: boolean;
}

export interface LoadRow {
  worker: string;
  rank: number;
  running: number;
  queued: number;
  kvUsage: number;
}

export interface PairRow {
  model: string;
  prefill: string;
  decode: string;
  stats: { handoffs: number; gapMsMean: number; gapMsEwma: number; tokensPerMs: number };
}

// What the gauges read at scrape time.
export interface RouterState {
  units(): UnitRow[];
  members(): WorkerRow[];
  indexBlocks(): { model: string; blocks: number }[];
  loads(): LoadRow[];
  // Disaggregation: rooms of the transfer coordinator in flight, failed so far, and the
  // coordinator's statistics of each prefill/decode pair that handed over KV.
  roomsInFlight(): number;
  roomsFailed(): number;
  roomsLatePrefill(): number;
  pairs(): PairRow[];
  // The kv mode's wait for a shared prefill (null: off).
  prefills(): InflightPrefills | null;
}

type Labels = Record<string, string | number>;

export class RouterMetrics {
  readonly decisions: Counter<'model' | 'worker' | 'dp_rank'>;
  readonly retries: Counter<'model'>;
  readonly migrations: Counter<'model' | 'cause'>;
  readonly migrationRecomputed: Histogram<'model'>;
  readonly overlapBlocks: Histogram<'model'>;
  readonly hitRate: Histogram<'model'>;
  readonly kvEvents: Counter<'model' | 'worker' | 'result'>;
  readonly kvResets: Counter<'model' | 'worker' | 'reason'>;
  readonly kvMalformed: Counter<'model' | 'worker'>;
  readonly kvGaps: Counter<'model' | 'worker'>;
  readonly breakerTransitions: Counter<'model' | 'worker' | 'from_state' | 'to_state'>;
  readonly pdDecisions: Counter<'model' | 'decision'>;
  readonly pdRoomsTimedOut: Counter<'model' | 'state'>;
  private readonly all: (Counter<string> | Gauge<string> | Histogram<string>)[];

  constructor(state: RouterState) {
    const none: Registry[] = [];
    this.decisions = new Counter({ name: `${PREFIX}decisions_total`, help: 'Routing decisions per worker and data-parallel rank (a retry on another worker counts again)', labelNames: ['model', 'worker', 'dp_rank'], registers: none });
    this.retries = new Counter({ name: `${PREFIX}retries_total`, help: 'Requests moved to another worker because theirs failed before the first token', labelNames: ['model'], registers: none });
    this.migrations = new Counter({
      name: `${PREFIX}migrations_total`,
      help: 'Requests moved to another worker after their stream broke mid-generation (prompt plus the tokens generated so far), by cause',
      labelNames: ['model', 'cause'],
      registers: none,
    });
    this.migrationRecomputed = new Histogram({
      name: `${PREFIX}migration_recomputed_tokens`,
      help: 'Per migration, the tokens the new worker prefills beyond its cached prefix (the prompt plus the tokens generated before the break)',
      labelNames: ['model'],
      buckets: [0, 16, 64, 256, 1024, 4096, 16384, 65536],
      registers: none,
    });
    this.overlapBlocks = new Histogram({
      name: `${PREFIX}overlap_blocks`,
      help: 'Prompt blocks the chosen worker already held, per routing decision',
      labelNames: ['model'],
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
      registers: none,
    });
    this.hitRate = new Histogram({
      name: `${PREFIX}kv_hit_ratio`,
      help: 'Share of the prompt the chosen worker held in its KV cache, per routing decision',
      labelNames: ['model'],
      buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1],
      registers: none,
    });
    this.kvEvents = new Counter({
      name: `${PREFIX}kv_events_total`,
      help: 'Engine KV events by outcome: applied to the index, ignored (another medium, approximate mode, worker not admitted) or error (unknown parent, block size mismatch, unknown block)',
      labelNames: ['model', 'worker', 'result'],
      registers: none,
    });
    this.kvResets = new Counter({ name: `${PREFIX}kv_resets_total`, help: 'Resets of a worker rank\'s KV state in the index, by reason', labelNames: ['model', 'worker', 'reason'], registers: none });
    this.kvGaps = new Counter({ name: `${PREFIX}kv_gaps_total`, help: 'Sequence gaps in a worker rank\'s KV-event batches (the worker is routed approximately until its resync)', labelNames: ['model', 'worker'], registers: none });
    this.kvMalformed = new Counter({ name: `${PREFIX}kv_malformed_batches_total`, help: 'KV-event batches that did not parse (nothing applied)', labelNames: ['model', 'worker'], registers: none });

    this.breakerTransitions = new Counter({
      name: `${PREFIX}worker_circuit_transitions_total`,
      help: 'Circuit breaker state changes per worker (closed, open, half_open: SGLang gateway\'s spellings)',
      labelNames: ['model', 'worker', 'from_state', 'to_state'],
      registers: none,
    });

    this.pdDecisions = new Counter({
      name: `${PREFIX}pd_decisions_total`,
      help: 'Requests of a disaggregated model by how they were served: disaggregated (prefill and decode worker), local_short_prompt / local_prefill_queue (conditional disaggregation: the decode worker prefilled it)',
      labelNames: ['model', 'decision'],
      registers: none,
    });
    this.pdRoomsTimedOut = new Counter({
      name: `${PREFIX}pd_rooms_timed_out_total`,
      help: 'Disaggregated requests whose room outlived its state\'s deadline (--pd-prefill-timeout, --pd-transfer-timeout, --pd-decode-timeout), by that state; both legs were aborted',
      labelNames: ['model', 'state'],
      registers: none,
    });
    // A counter whose value is kept elsewhere (the room watch's counts), read at scrape time.
    const countFrom = (name: string, help: string, value: () => number) =>
      new Counter({
        name: `${PREFIX}${name}`,
        help,
        registers: none,
        collect() {
          this.reset();
          this.inc(value());
        },
      });
    const pairGauge = (name: string, help: string, value: (p: PairRow['stats']) => number) =>
      new Gauge({
        name: `${PREFIX}pd_${name}`,
        help,
        labelNames: ['model', 'prefill', 'decode'],
        registers: none,
        collect() {
          this.reset();
          for (const p of state.pairs()) this.set({ model: p.model, prefill: p.prefill, decode: p.decode }, value(p.stats));
        },
      });
    const unitGauge = (name: string, help: string, value: (u: UnitRow) => number) =>
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        labelNames: ['model', 'worker', 'dp_rank'],
        registers: none,
        collect() {
          this.reset();
          for (const u of state.units()) this.set({ model: u.model, worker: u.worker, dp_rank: u.rank }, value(u));
        },
      });
    const loadGauge = (name: string, help: string, value: (l: LoadRow) => number) =>
      new Gauge({
        name: `kvgate_worker_${name}`,
        help,
        labelNames: ['worker', 'dp_rank'],
        registers: none,
        collect() {
          this.reset();
          for (const l of state.loads()) this.set({ worker: l.worker, dp_rank: l.rank }, value(l));
        },
      });
    const gauges = [
      unitGauge('worker_cached_blocks', 'KV blocks the index says the worker rank holds (Dynamo\'s tree size)', (u) => u.cachedBlocks),
      unitGauge('worker_active_blocks', 'Distinct KV blocks of the requests active on the worker rank', (u) => u.activeBlocks),
      unitGauge('worker_prefill_tokens', 'Uncached prompt tokens of active requests not past their first token', (u) => u.prefillTokens),
      unitGauge('worker_active_requests', 'Requests routed to the worker rank and not finished', (u) => u.activeRequests),
      new Gauge({
        name: `${PREFIX}index_blocks`,
        help: 'Distinct KV blocks in the model\'s index',
        labelNames: ['model'],
        registers: none,
        collect() {
          this.reset();
          for (const r of state.indexBlocks()) this.set({ model: r.model }, r.blocks);
        },
      }),
      new Gauge({
        name: `${PREFIX}workers`,
        help: 'Workers by state: up (routed to), down (failed; retried later), connecting, refused (incompatible card)',
        labelNames: ['model', 'state'],
        registers: none,
        collect() {
          this.reset();
          const counts = new Map<string, Labels & { n: number }>();
          for (const m of state.members()) {
            const key = `${m.model}\0${m.state}`;
            const c = counts.get(key) ?? { model: m.model, state: m.state, n: 0 };
            c.n++;
            counts.set(key, c);
          }
          for (const { n, ...labels } of counts.values()) this.set(labels, n);
        },
      }),
      new Gauge({
        name: `${PREFIX}worker_circuit_state`,
        help: 'Circuit breaker of the worker: 0 closed, 1 open (no requests), 2 half-open (on probation)',
        labelNames: ['model', 'worker'],
        registers: none,
        collect() {
          this.reset();
          for (const m of state.members()) this.set({ model: m.model, worker: m.worker }, m.breaker);
        },
      }),
      new Gauge({
        name: `${PREFIX}worker_busy`,
        help: 'Whether the worker is over its busy threshold (--active-decode-blocks-threshold): 1 passed over by routing while another is free',
        labelNames: ['model', 'worker'],
        registers: none,
        collect() {
          this.reset();
          for (const m of state.members()) this.set({ model: m.model, worker: m.worker }, m.busy ? 1 : 0);
        },
      }),
      new Gauge({
        name: `${PREFIX}pd_rooms_in_flight`,
        help: 'Disaggregated requests holding a bootstrap room in the transfer coordinator',
        registers: none,
        collect() {
          this.set(state.roomsInFlight());
        },
      }),
      countFrom('pd_rooms_failed_total', 'Disaggregated requests whose room ended failed (a leg failed, the client left, or the caller got an error); timeouts are counted apart', state.roomsFailed),
      countFrom('pd_prefill_answered_after_first_token_total', 'Disaggregated requests whose prefill leg answered after the decode leg\'s first token (the two race: SGLang\'s prefill answers once its transfer is done); no handoff gap is measured for them', state.roomsLatePrefill),
      pairGauge('handoffs', 'KV handoffs (prefill done, then a first decode token) between the prefill and the decode worker', (p) => p.handoffs),
      pairGauge('handoff_gap_ms', 'Mean milliseconds from the prefill leg\'s answer to the decode leg\'s first token, per pair', (p) => p.gapMsMean),
      pairGauge('handoff_gap_ewma_ms', 'The same gap, exponentially weighted towards recent handoffs', (p) => p.gapMsEwma),
      pairGauge('transfer_tokens_per_ms', 'Prompt tokens per millisecond of handoff gap, per pair (the transfer rate the gap implies)', (p) => p.tokensPerMs),
      loadGauge('running_requests', 'Requests the engine reports running (its own load report)', (l) => l.running),
      loadGauge('queued_requests', 'Requests the engine reports waiting', (l) => l.queued),
      loadGauge('kv_usage', 'Fraction of the engine\'s KV cache in use, as the engine reports it', (l) => l.kvUsage),
      ...prefillMetrics(none, state.prefills),
    ];
    this.all = [this.decisions, this.retries, this.migrations, this.migrationRecomputed, this.overlapBlocks, this.hitRate, this.kvEvents, this.kvResets, this.kvMalformed, this.kvGaps, this.breakerTransitions, this.pdDecisions, this.pdRoomsTimedOut, ...gauges];
  }

  register(registry: Registry): void {
    for (const m of this.all) registry.registerMetric(m);
  }
}
