// The frontend's WorkerSet over the native KV router: every worker is a member (a worker
// agent reached over the request plane, or a plain SGLang HTTP server), and the workers of
// one served model share one native KvRouter whose block size is their page size.
//
// Requests stream from each member's engine directly (directEngine on the card's
// engineUrl): the agent starts, supervises and describes its engine and relays its KV
// events and load, but no token passes through it.
//
// Members and the index:
// - An agent is admitted when its Hello arrives: every dp rank of its card becomes a routing
//   candidate (worker id = the member's id, rank = dp rank). Its relayed KV-event batches go
//   to router.applyEvents as raw bytes; a KvReset clears that rank and every rank its batches
//   named by their own dp_rank (the batches that follow rebuild them). When the connection drops the worker leaves the router (removeWorker: its
//   blocks leave the index, its active requests are forgotten) and the client reconnects
//   with backoff; the new connection's join reset rebuilds it.
// - A worker whose page size differs from the model's block size is refused (logged, shown in
//   /health).
// - Disaggregation (pd_request.ts): prefill and decode workers form two more pools of their
//   model, each with its own native router: prefill is chosen KV-aware on the prefill pool's
//   KV events; decode by load alone (overlap weight 0, no pending prefixes: Dynamo's decode
//   override). A model is served disaggregated while both pools have a worker up, and by its
//   aggregated workers otherwise. A prefill/decode worker must be compatible with every
//   worker of the other pool (same model, same page size, same TP size unless the model uses
//   MLA; pd_pairs.ts), or it is refused with the reason. Per request, conditional
//   disaggregation may send the request to the decode worker alone (short uncached prompt,
//   or a long prefill queue).
// - A worker that fails a request because it cannot serve (engine unreachable or failing,
//   draining) leaves the router at once and comes back after `penaltyMs` (Dynamo's 5 s
//   reconcile) once its engine answers its health check, or when the agent says hello
//   again (its engine restarted, maybe on another port). KV events are ignored while a
//   worker is out, so on its return its ranks are rebuilt (resync).
// - Load: route() scores workers on the router's own active-request bookkeeping (blocks and
//   prefill tokens of what it routed, released on first token and finish), as Dynamo does;
//   the native router takes no external load. The engines' own load reports are kept for
//   /metrics only.
// - Pending prefixes: a prompt routed to an exact worker counts as being computed there
//   until its KV events store it (or it finishes, or a timeout), so requests routed before
//   those events, a burst sharing a new prefix, follow it (kv_router.h).
// - Waiting for a shared prefill (kv mode, exact workers, aggregated and prefill pools; with
//   replica sync, other frontends' prompts count as this one's own): a prompt routed
//   to a worker that is still prefilling, queued behind other requests, a prompt sharing more
//   than prefillWaitShare of it beyond what the worker caches, is not sent yet: the engine
//   would compute that prefix a second time in the same batch. Its route is released and it
//   is routed again once the worker's events store that prefix (or that request ends, or the
//   client leaves, or pendingTimeoutMs passes) (inflight_prefills.ts, routed_request.ts).
// - Approximate mode is per worker (kvEvents false, or a worker without KV events such as a
//   plain SGLang HTTP server): the router records each prompt routed to it as cached there
//   for a TTL, and its KV events are ignored. The other workers of the model stay exact.
// - While the event plane (NATS) is away, the agents' events cannot arrive: their workers are
//   routed approximately meanwhile (their exact blocks go, as their caches move on unseen),
//   and exactly again once it is back, their ranks rebuilt by a resync.

import { setTimeout as sleep } from 'node:timers/promises';
import { KvgateError } from '../errors.js';
import type { DirectEngine } from '../engine/client.js';
import { directEngine } from '../engine/direct_engine.js';
import type { ModelCard, WorkerRole } from '../engine/model_card.js';
import { pdIncompatibility, readPdShape, type PdShape } from './pd_pairs.js';
import { PdRequest, type PdLeg, type PdPair, type PdPort, type PrefillLeg } from './pd_request.js';
import { DeferredDispatch } from './deferred_dispatch.js';
import { RoomWatch, type RoomDeadlines } from './pd_rooms.js';
import type { Dispatch, PoolInfo, RouteRequest, WorkerEngine, WorkerInfo, WorkerSet } from './worker_set.js';
import { addon, type KvRouter, type KvRouterStats, type RouterPolicy } from '../native/addon.js';
import { silentLogger, type Logger } from '../observability/log.js';
import type { LoadReport } from '../transport/frames.js';
import { RequestPlaneClient, type KvRelayEvent, type RequestPlaneClientOptions, type WorkerHello } from '../transport/request_plane_client.js';
import { BREAKER_STATE_VALUE, CircuitBreaker, DEFAULT_BREAKER, type BreakerOptions, type BreakerState } from './circuit_breaker.js';
import { DEFAULT_RETRY, RoutedRequest, type PromptHold, type RetryPolicy, type Route, type RoutingPort } from './routed_request.js';
import { InflightPrefills, StoredDepth } from './inflight_prefills.js';
import { RouterMetrics, type UnitRow } from './router_metrics.js';
import { ROUTING_DEFAULTS } from './routing_defaults.js';
import type { Registry } from 'prom-client';
import { randomBytes } from 'node:crypto';
import type { RoutingEvent } from '../transport/router_sync.js';

// Requests another frontend routed are forgotten after this long if their end never came
// (that frontend died, or the message was lost).
const REMOTE_REQUEST_TTL_MS = 10 * 60_000;

// Where this set's routing decisions go for the other frontend replicas (router replica sync).
export interface RoutingSink {
  publish(ev: RoutingEvent): void;
}

export const ROUTER_MODES: readonly RouterPolicy[] = ['kv', 'round-robin', 'random', 'power-of-two', 'least-loaded'];

export interface KvWorkerSetOptions {
  mode?: RouterPolicy; // default 'kv'
  // The kv cost's settings; defaults: ROUTING_DEFAULTS.
  overlapWeight?: number;
  temperature?: number;
  // Pending prefixes (native/binding/index.d.ts): 0 turns them off.
  pendingWeight?: number;
  pendingTimeoutMs?: number;
  // Weight of the prompt's own uncached blocks in the kv cost (index.d.ts ownWeight).
  ownWeight?: number;
  // How much the own weight grows with the fleet's prefill queue (index.d.ts ownQueueWeight).
  ownQueueWeight?: number;
  // A prompt waits for a prefill its chosen worker has queued when they share more than this
  // share of the prompt beyond what the worker caches (>= 1: never waits); default
  // ROUTING_DEFAULTS.prefillWaitShare. The wait lasts pendingTimeoutMs at most.
  prefillWaitShare?: number;
  // false: approximate mode, the workers' KV events are ignored.
  kvEvents?: boolean;
  approxTtlMs?: number; // default 120 s
  // Serve every worker under this model name (default: each card's served model name).
  servedModelName?: string;
  // How long a failed worker stays out of routing before it is tried again.
  penaltyMs?: number;
  // How many times a request may move to another worker after its stream broke mid-way;
  // unset: what the first worker's registration (its model card) says.
  migrationLimit?: number;
  // How long a worker may take to send a request's first token before the request moves
  // on and the worker is set aside (0 or unset: no limit).
  firstTokenTimeoutMs?: number;
  // The same for a stream that goes silent after its first token (it migrates if it can).
  streamIdleTimeoutMs?: number;
  // Per-worker circuit breaker (default DEFAULT_BREAKER; failureThreshold 0: off).
  breaker?: Partial<BreakerOptions>;
  // A worker is busy while its engine reports more KV blocks in use than this fraction of
  // its capacity on every dp rank (unset or >= 1: never). Busy workers take no new requests
  // while another is free; when every one is, requests are refused (503 workers_busy).
  busyThreshold?: number;
  // How long a request waits for a worker when none of its model's can take it (workers
  // being restarted or set aside); 0: it fails with no_workers at once.
  workerWaitMs?: number;
  // Retries of requests that failed before their first token (default DEFAULT_RETRY).
  retry?: Partial<RetryPolicy>;
  // Health probes of plain HTTP engines (0: none), every this often.
  healthIntervalMs?: number;
  // A worker nothing was routed to for this long gets a generation health check
  // (/health_generate or gRPC HealthCheck) at the next probe; failing it sets it aside (0: never).
  idleHealthCheckMs?: number;
  seed?: number;
  // Disaggregated serving (prefill and decode pools).
  pd?: Partial<PdOptions>;
  // The engines' --api-key, sent on every engine request.
  engineApiKey?: string;
  // With an event plane: a worker none of whose frames (KV events, load reports) arrived for
  // this long is routed approximately until they come again (its own link to NATS is down);
  // 0 or unset: never.
  eventStaleMs?: number;
  // The request-plane client's settings (the cluster token among them).
  client?: Omit<RequestPlaneClientOptions, 'url' | 'reconnect' | 'log'>;
  log?: Logger;
}

export interface PdOptions extends RoomDeadlines {
  // Conditional disaggregation: the decode worker prefills the prompt itself when the
  // prefill pool's cache leaves at most this many prompt tokens to compute (0: never)...
  localPrefillTokens: number;
  // ...or when the prefill pool's engines report at least this many queued requests per
  // worker on average (0: never).
  localPrefillQueue: number;
  // A pair whose handoff gap EWMA is at least this many times the median of the prefill
  // worker's other pairs is slow: its decode worker counts the ratio as extra active
  // requests (avoidSlowPair; 0: off).
  slowPairFactor: number;
}

export const DEFAULT_PD: PdOptions = { prefillMs: 300_000, transferMs: 60_000, decodeMs: 0, localPrefillTokens: 0, localPrefillQueue: 0, slowPairFactor: 3 };
// Handoffs a pair needs before its gap counts (one slow first transfer is not a slow link).
const MIN_PAIR_HANDOFFS = 3;
// Gaps shorter than this are all fast: their ratios are noise.
const GAP_FLOOR_MS = 10;

type MemberState = 'connecting' | 'up' | 'down' | 'refused';

interface Group {
  model: string;
  role: WorkerRole;
  router: KvRouter;
  blockSize: number;
  port: RoutingPort<Member>;
  // The wait for a shared prefill applies (kv mode, an aggregated or prefill pool).
  holds: boolean;
}

interface Member {
  readonly id: number;
  readonly name: string;
  // The worker agent's control connection (Hello, KV events, load); null for a plain engine.
  readonly agent: RequestPlaneClient | null;
  // What requests stream from: the engine at the card's engineUrl (null until known).
  engine: DirectEngine | null;
  card: ModelCard | null;
  instanceId: bigint | null;
  // Agent: the next Hello opens a new connection, whose join resets rebuild its ranks.
  fresh: boolean;
  group: Group | null;
  // dp ranks registered in group.router (0 when out of routing).
  ranks: number;
  // Routed approximately: its cache is predicted, its KV events are ignored.
  approx: boolean;
  // Per relay rank, the other ranks its batches' dp_rank sent events to (cleared with it).
  eventRanks: Map<number, Set<number>>;
  state: MemberState;
  reason: string;
  timer: NodeJS.Timeout | null;
  load: LoadReport | null;
  // Over the busy threshold on its last load report (passed over by routing).
  busy: boolean;
  breaker: CircuitBreaker;
  // Date.now() of the last request routed to it or finished on it.
  lastActive: number;
  // Prefill/decode workers: the engine's parallel layout (pd_pairs.ts), read once.
  shape: PdShape | null;
  // Event plane: Date.now() of its last frame (or of its admission), and whether none came for
  // eventStaleMs (it is routed approximately meanwhile).
  lastEventAt: number;
  eventsStale: boolean;
  // Ranks with a sequence gap whose resync's reset has not come yet: the worker is routed
  // approximately meanwhile (its exact unit missed batches).
  resyncing: Set<number>;
  // Legs this frontend sent to its engine that have not ended.
  inflight: number;
}

export class KvWorkerSet implements WorkerSet {
  private readonly members = new Map<string, Member>();
  private readonly byId = new Map<number, Member>();
  private readonly groups = new Map<string, Group>();
  private nextId = 0;
  private nextRid = 0;
  private readonly out = new Uint32Array(3);
  private readonly counts = new Uint32Array(5);
  private readonly metrics: RouterMetrics;
  private readonly probeTimer: NodeJS.Timeout | null;
  private readonly staleTimer: NodeJS.Timeout | null;
  private closed = false;
  private probing = false;
  private readonly log: Logger;
  private readonly mode: RouterPolicy;
  private readonly breakerOptions: BreakerOptions;
  private sync: RoutingSink | null = null;
  // The event plane is away: agents are routed approximately (eventPlaneDown()).
  private eventsDown = false;
  private readonly frontendId = randomBytes(8).readBigUInt64LE();
  // Requests other frontends routed, recorded in our routers: key `${frontend}:${rid}`.
  // `prefilled`: settles the prompt's record as prefilling on its worker (the wait for a shared prefill).
  private readonly remote = new Map<string, { group: Group; rid: number; at: number; prefilled: (() => void) | null }>();
  private readonly pd: PdOptions;
  readonly rooms: RoomWatch;
  // Prompts sent to exact workers and not stored yet per their events, by member id.
  private readonly prefills = new InflightPrefills();
  private readonly prefillWaitShare: number;
  private readonly stored = new StoredDepth();

  constructor(private readonly opts: KvWorkerSetOptions = {}) {
    this.log = opts.log ?? silentLogger;
    this.mode = opts.mode ?? 'kv';
    this.breakerOptions = { ...DEFAULT_BREAKER, ...opts.breaker };
    this.pd = { ...DEFAULT_PD, ...opts.pd };
    this.rooms = new RoomWatch(this.pd, 50, opts.seed);
    this.prefillWaitShare = opts.prefillWaitShare ?? ROUTING_DEFAULTS.prefillWaitShare;
    if (!ROUTER_MODES.includes(this.mode)) throw new KvgateError('invalid_config', `unknown router mode '${this.mode}' (one of ${ROUTER_MODES.join(', ')})`);
    this.metrics = new RouterMetrics({
      units: () => this.unitRows(),
      members: () => [...this.members.values()].map((m) => ({ model: this.modelOf(m), worker: m.name, state: m.state, breaker: BREAKER_STATE_VALUE[m.breaker.state], busy: m.busy })),
      indexBlocks: () => [...this.groups.values()].map((g) => ({ model: g.model, blocks: g.router.stats().blocks })),
      loads: () =>
        [...this.members.values()].flatMap((m) =>
          (m.load?.ranks ?? []).map((r) => ({ worker: m.name, rank: r.dpRank, running: r.running, queued: r.queued, kvUsage: r.tokenUsage })),
        ),
      roomsInFlight: () => this.rooms.inFlight,
      roomsFailed: () => this.rooms.counters.failed,
      roomsLatePrefill: () => this.rooms.counters.latePrefill,
      pairs: () => this.pairRows(),
      prefills: () => (this.mode === 'kv' && this.prefillWaitShare < 1 ? this.prefills : null),
    });
    const every = opts.healthIntervalMs ?? 5000;
    this.probeTimer = every > 0 ? setInterval(() => void this.probe(), every) : null;
    this.probeTimer?.unref();
    const stale = opts.eventStaleMs ?? 0;
    this.staleTimer = stale > 0 ? setInterval(() => this.findStaleEvents(stale), Math.min(1000, stale / 4)) : null;
    this.staleTimer?.unref();
  }

  // ---- adding workers ----

  // A worker agent's request plane (ws://host:port), kept connected with backoff.
  addAgent(url: string): void {
    if (this.members.has(url)) return;
    const client = new RequestPlaneClient({ ...this.opts.client, url, reconnect: true, log: this.log });
    const m = this.newMember(url, client, null);
    client.onHello((h) => this.onHello(m, h));
    client.onDisconnect((err) => this.onDisconnect(m, err));
    client.onKvEvent((ev) => this.onKv(m, ev));
    client.onLoad((report) => this.onLoad(m, report));
    // A worker that is not up yet is retried by the client's reconnect loop.
    client.connect().catch((err: Error) => this.log.debug(`worker ${url}: ${err.message}`));
  }

  // A worker agent gone for good (its process died; a respawned one has a new URL): out of
  // routing and /health, and its client stops reconnecting.
  async removeAgent(url: string): Promise<void> {
    const m = this.members.get(url);
    if (!m?.agent) return;
    this.members.delete(url);
    this.byId.delete(m.id);
    if (m.timer) clearTimeout(m.timer);
    this.unregister(m);
    this.rooms.forgetWorker(m.id);
    m.state = 'down';
    await Promise.all([m.agent.close(), m.engine?.close()]);
  }

  // A worker's event-plane frame that came over NATS (transport/nats_event_plane.ts), by
  // the worker's instance id; dropped if no connected agent has that id.
  eventFrame(instanceIdHex: string, bytes: Uint8Array): void {
    for (const m of this.members.values()) {
      if (!m.agent || m.instanceId === null || m.instanceId.toString(16).padStart(16, '0') !== instanceIdHex) continue;
      m.lastEventAt = Date.now();
      if (m.eventsStale) {
        m.eventsStale = false;
        if (this.remode(m)) this.log.info(`worker ${m.name}: its events arrive again over the event plane; routing it on them, rebuilding its state`);
      }
      return m.agent.receiveEventFrame(bytes);
    }
  }

  // Workers whose frames stopped coming while this frontend's own event-plane link is up: their
  // link is down, so their caches move on unseen. Routed approximately until frames come again.
  private findStaleEvents(staleMs: number): void {
    if (this.closed || this.eventsDown) return;
    const now = Date.now();
    for (const m of this.members.values()) {
      if (m.eventsStale || m.state !== 'up' || !m.agent || now - m.lastEventAt <= staleMs) continue;
      m.eventsStale = true;
      if (this.remode(m)) this.log.warn(`worker ${m.name}: no events over the event plane for ${Math.round((now - m.lastEventAt) / 1000)} s; routing it approximately until they come again`);
    }
  }

  // Puts a routed agent in the mode approxFor() gives now; in the other mode its unit starts
  // empty (predicted blocks, or exact ones rebuilt by a resync; `rebuilding`: a rank whose
  // rebuild is already on its way, so it needs no resync). True if it changed.
  private remode(m: Member, rebuilding?: number): boolean {
    const g = m.group;
    if (m.state !== 'up' || !m.agent || !g || !m.card) return false;
    const approx = this.approxFor(m, m.card);
    if (approx === m.approx) return false;
    m.approx = approx;
    m.eventRanks.clear();
    this.prefills.dropWorker(m.id);
    for (let r = 0; r < m.ranks; r++) g.router.addWorker(m.id, r, approx);
    if (!approx) for (let r = 0; r < m.ranks; r++) if (r !== rebuilding) m.agent.requestResync(r);
    return true;
  }

  // The event plane (NATS) went away (true) or came back (false): the agents' workers are
  // routed approximately meanwhile, then exactly again after a rebuild of their ranks.
  eventPlaneDown(down: boolean): void {
    if (this.eventsDown === down || this.closed) return;
    this.eventsDown = down;
    let n = 0;
    for (const m of this.members.values()) {
      // Back: every worker gets a fresh grace period before its frames count as missing.
      if (!down) m.lastEventAt = Date.now();
      if (this.remode(m)) n++;
    }
    if (down) this.log.warn(`event plane down: routing ${n} worker(s) approximately (caches predicted from this frontend's own decisions) until it is back`);
    else this.log.info(`event plane back: routing ${n} worker(s) on their KV events again, rebuilding their state from the workers`);
  }

  // Router replica sync: this set's decisions, first tokens and ends go to `sink`.
  syncWith(sink: RoutingSink): void {
    this.sync = sink;
  }

  // Another frontend's routing event: its requests count as load on the worker they went to
  // (matched by instance id) until they end.
  applyRouting(ev: RoutingEvent): void {
    if (ev.frontend === this.frontendId || this.closed) return;
    const now = Date.now();
    for (const [key, r] of this.remote) {
      if (now - r.at < REMOTE_REQUEST_TTL_MS) break;
      r.group.router.free(r.rid);
      r.prefilled?.();
      this.remote.delete(key);
    }
    const key = `${ev.frontend}:${ev.rid}`;
    if (ev.kind === 'routed') {
      const g = this.groups.get(ev.model);
      const m = [...this.members.values()].find((w) => w.instanceId === ev.instanceId && w.state === 'up' && w.group === g);
      if (!g || !m || this.remote.has(key)) return;
      const rid = this.nextRid++;
      if (!g.router.addRouted(ev.tokens, rid, m.id, ev.rank, ev.prefillTokens)) return;
      this.remote.set(key, { group: g, rid, at: now, prefilled: this.remotePrefill(g, m, ev.tokens, ev.prefillTokens) });
      return;
    }
    const r = this.remote.get(key);
    if (!r) return;
    if (ev.kind === 'prefill_done') r.group.router.markPrefillDone(r.rid);
    else {
      r.group.router.free(r.rid);
      r.prefilled?.();
      this.remote.delete(key);
    }
  }

  // Another frontend's prompt with full blocks left to compute on `m`: recorded as prefilling
  // there, as this frontend records its own (sending()), so this frontend's prompts sharing it
  // wait for it too. Queued unless it is the only request the router sees on the worker.
  private remotePrefill(g: Group, m: Member, tokens: Uint32Array, prefillTokens: number): (() => void) | null {
    if (!g.holds) return null;
    // The router counts every frontend's requests on the worker, this one included.
    let active = 0;
    for (const u of g.router.units()) if (u.worker === m.id) active += u.activeRequests;
    return this.recordPrefill(g, m, { tokens, hashes: null }, tokens.length - prefillTokens, active <= 1);
  }

  // Records `prompt` as prefilling on exact worker `m` when it has full blocks the worker does
  // not cache (`cachedTokens`); the returned function settles the record.
  private recordPrefill(g: Group, m: Member, prompt: { tokens: Uint32Array; hashes: BigUint64Array | null }, cachedTokens: number, started: boolean): (() => void) | null {
    if (m.approx || m.ranks === 0 || cachedTokens >= prompt.tokens.length - (prompt.tokens.length % g.blockSize)) return null;
    return this.prefills.add(m.id, (prompt.hashes ??= addon.blockHashes(prompt.tokens, g.blockSize)), started);
  }

  // A plain SGLang server, http(s):// or grpc:// (no agent, no KV events: it is routed
  // approximately).
  addEngine(url: string): void {
    if (this.members.has(url)) return;
    const engine = directEngine(url, this.opts.engineApiKey);
    const m = this.newMember(engine.url, null, engine);
    void this.readEngineCard(m);
  }

  // Resolves once `count` workers can take requests; throws engine_timeout after timeoutMs.
  async waitForWorkers(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.upCount() < count) {
      if (this.closed) throw new KvgateError('shutting_down', 'the worker set is closed');
      if (Date.now() >= deadline) {
        const states = [...this.members.values()].map((m) => `${m.name}: ${m.state}${m.reason ? ` (${m.reason})` : ''}`).join('; ');
        throw new KvgateError('engine_timeout', `${this.upCount()} of ${count} worker(s) ready after ${timeoutMs / 1000} s: ${states}`);
      }
      await sleep(50);
    }
  }

  // Cards of the workers routed to now.
  cards(): ModelCard[] {
    return [...this.members.values()].filter((m) => m.state === 'up').map((m) => m.card!);
  }

  // The router's units with worker names (tests, diagnostics).
  unitRows(): UnitRow[] {
    const rows: UnitRow[] = [];
    for (const g of this.groups.values()) {
      for (const u of g.router.units()) {
        const { worker, rank, ...rest } = u;
        rows.push({ model: g.model, worker: this.byId.get(worker)?.name ?? `#${worker}`, rank, ...rest });
      }
    }
    return rows;
  }

  routerStats(model: string, role: WorkerRole = 'agg'): KvRouterStats | null {
    return this.groups.get(groupKey(model, role))?.router.stats() ?? null;
  }

  // ---- the WorkerSet seam ----

  // Workers that serve `model` now: its aggregated ones, and its prefill and decode ones
  // while both pools have one up.
  readyCount(model: string): number {
    const p = this.poolCounts(model);
    return p.agg + (p.prefill > 0 && p.decode > 0 ? p.prefill + p.decode : 0);
  }

  pools(): Record<string, PoolInfo> {
    const models = new Set([...this.groups.values()].map((g) => g.model));
    return Object.fromEntries([...models].map((model) => [model, this.poolCounts(model)]));
  }

  private poolCounts(model: string): PoolInfo {
    const p: PoolInfo = { mode: 'none', agg: 0, prefill: 0, decode: 0 };
    for (const m of this.members.values()) if (m.state === 'up' && m.group?.model === model) p[m.group.role]++;
    p.mode = p.prefill > 0 && p.decode > 0 ? 'disaggregated' : p.agg > 0 ? 'aggregated' : 'none';
    return p;
  }

  workers(): WorkerInfo[] {
    return [...this.members.values()].map((m) => ({
      name: m.name,
      model: this.modelOf(m),
      ...(m.card ? { role: m.card.role } : {}),
      healthy: m.state === 'up',
      ...(m.state === 'up' ? {} : { reason: m.reason || m.agent?.lastError || m.state }),
      ...(m.state === 'up' && m.approx && (this.eventsDown || m.eventsStale || m.resyncing.size > 0) ? { routing: 'approximate' as const } : {}),
    }));
  }

  engines(): WorkerEngine[] {
    const key = this.opts.engineApiKey;
    const headers: Record<string, string> = key !== undefined ? { authorization: `Bearer ${key}` } : {};
    return [...this.members.values()].map((m) => ({ worker: m.name, url: m.engine?.url ?? null, headers }));
  }

  dispatch(req: RouteRequest): Dispatch {
    const pools = this.poolCounts(req.model);
    if (pools.mode === 'disaggregated') return this.dispatchPd(req);
    const waitMs = this.opts.workerWaitMs ?? 0;
    // A model with prefill/decode pools and nothing up: wait for whichever way comes back.
    if (pools.mode === 'none' && waitMs > 0 && !this.closed && (this.groups.has(groupKey(req.model, 'prefill')) || this.groups.has(groupKey(req.model, 'decode')))) {
      const none = new KvgateError('no_workers', `no worker can serve model '${req.model}' now (waited ${waitMs / 1000} s)`);
      return new DeferredDispatch(() => this.poolCounts(req.model).mode !== 'none', () => this.dispatch(req), waitMs, none);
    }
    const group = this.groups.get(req.model);
    if (group && this.allBusy(group)) throw this.busyError(req.model, '');
    const tokens = Uint32Array.from(req.tokenIds);
    const hold = this.holdFor(group, tokens);
    const first = group ? this.route(group, tokens, true, hold) : null;
    // Made only when needed: an error costs a stack trace.
    const none = () => new KvgateError('no_workers', `no worker can serve model '${req.model}' now`);
    // With a wait allowed (or a prefill to wait for), the request waits in its stream (holding nothing).
    if (!group || (!first && !hold?.blocking && !(group.port.workerWaitMs > 0))) throw none();
    return new RoutedRequest(group.port, tokens, first, first ? null : none(), hold);
  }

  // The wait for a shared prefill of a first leg routed on `g`, or null when it does not apply.
  private holdFor(g: Group | undefined, tokens: Uint32Array): PromptHold | null {
    return g?.holds ? { tokens, hashes: null, until: performance.now() + (this.opts.pendingTimeoutMs ?? ROUTING_DEFAULTS.pendingTimeoutMs), blocking: null } : null;
  }

  // `pool`: '' or 'decode ' (the pool whose workers are all busy).
  private busyError(model: string, pool: string): KvgateError {
    return new KvgateError('workers_busy', `every ${pool}worker of ${model} is busy (KV cache in use above ${this.opts.busyThreshold} of capacity); retry later`, null, 1);
  }

  private allBusy(g: Group): boolean {
    let up = 0;
    for (const m of this.members.values()) {
      if (m.group !== g || m.state !== 'up') continue;
      if (!m.busy) return false;
      up++;
    }
    return up > 0;
  }

  // Dynamo's busy detection (reference/dynamo.md §2.9), from the engines' load reports: a
  // rank is busy when its KV blocks in use exceed busyThreshold x its capacity, a worker when
  // all its ranks are; a worker without a report is not busy. The router passes a busy
  // worker over while another is free (requests already routed there, retries and
  // migrations when every worker is busy, still go to it).
  private onLoad(m: Member, report: LoadReport): void {
    m.load = report;
    const t = this.opts.busyThreshold;
    const busy = t !== undefined && t < 1 && report.ranks.length > 0 && report.ranks.every((r) => r.kvTotalBlocks > 0 && r.kvUsedBlocks > t * r.kvTotalBlocks);
    if (busy === m.busy) return;
    m.busy = busy;
    if (m.group && m.ranks > 0 && !this.closed) m.group.router.setBusy(m.id, busy);
    this.log.info(`worker ${m.name} ${busy ? 'busy' : 'free again'}: KV blocks in use ${busy ? 'above' : 'at or below'} ${t} of capacity`);
  }

  registerMetrics(registry: Registry): void {
    this.metrics.register(registry);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.rooms.close();
    if (this.staleTimer) clearInterval(this.staleTimer);
    for (const m of this.members.values()) {
      if (m.timer) clearTimeout(m.timer);
      // Requests waiting for a shared prefill stop waiting (and find no worker).
      this.prefills.dropWorker(m.id);
    }
    await Promise.all([...this.members.values()].flatMap((m) => [m.agent?.close(), m.engine?.close()]));
    for (const g of this.groups.values()) g.router.close();
  }

  // ---- members ----

  private newMember(name: string, agent: RequestPlaneClient | null, engine: DirectEngine | null): Member {
    const m: Member = {
      id: this.nextId++,
      name,
      agent,
      engine,
      card: null,
      instanceId: null,
      fresh: true,
      group: null,
      ranks: 0,
      approx: false,
      eventRanks: new Map(),
      state: 'connecting',
      reason: '',
      timer: null,
      load: null,
      busy: false,
      breaker: new CircuitBreaker(this.breakerOptions, (from, to) => this.breakerMoved(name, from, to)),
      lastActive: Date.now(),
      shape: null,
      lastEventAt: Date.now(),
      eventsStale: false,
      resyncing: new Set(),
      inflight: 0,
    };
    this.members.set(name, m);
    this.byId.set(m.id, m);
    return m;
  }

  private breakerMoved(name: string, from: BreakerState, to: BreakerState): void {
    const m = this.members.get(name);
    this.metrics.breakerTransitions.inc({ model: m ? this.modelOf(m) : '', worker: name, from_state: from, to_state: to });
  }

  private modelOf(m: Member): string {
    return m.group?.model ?? (m.card ? (this.opts.servedModelName ?? m.card.servedModelName) : '');
  }

  private upCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.state === 'up') n++;
    return n;
  }

  private onHello(m: Member, h: WorkerHello): void {
    if (this.closed) return;
    const newConnection = m.fresh || m.instanceId !== h.instanceId;
    if (newConnection) m.shape = null;
    m.fresh = false;
    m.instanceId = h.instanceId;
    const g = m.group;
    // The same agent again (its engine restarted): the relay's resets already rebuilt its
    // ranks, so only the card changes, unless its shape did.
    if (!newConnection && m.state === 'up' && g && g.model === (this.opts.servedModelName ?? h.card.servedModelName) && g.blockSize === h.card.pageSize && m.ranks === h.card.dpSize && m.approx === this.approxFor(m, h.card)) {
      m.card = h.card;
      this.useEngine(m, h.card.engineUrl);
      return;
    }
    this.unregister(m);
    // Events were ignored while it was out (or its ranks just left the index): rebuild.
    this.admit(m, h.card, !newConnection);
  }

  private onDisconnect(m: Member, err: Error): void {
    m.fresh = true;
    m.load = null;
    m.busy = false;
    if (m.timer) clearTimeout(m.timer);
    m.timer = null;
    if (this.closed) return;
    if (m.state === 'up') this.log.warn(`worker ${m.name} disconnected: out of routing until it reconnects`);
    this.unregister(m);
    m.state = 'connecting';
    m.reason = err.message;
  }

  // Streams go to the engine the card names; an engine that moved (restarted on another
  // port) gets a new client.
  private useEngine(m: Member, url: string): void {
    if (m.engine?.url === url.replace(/\/+$/, '')) return;
    void m.engine?.close();
    m.engine = directEngine(url, this.opts.engineApiKey);
  }

  private admit(m: Member, card: ModelCard, resync: boolean): void {
    m.card = card;
    m.lastEventAt = Date.now();
    // Its ranks are rebuilt from the join resets (or the resyncs below), not from a gap's.
    m.resyncing.clear();
    // Back after its breaker's open period (or with a restarted engine): on probation.
    m.breaker.halfOpen();
    if (m.agent) {
      try {
        this.useEngine(m, card.engineUrl);
      } catch (err) {
        return this.refuse(m, (err as Error).message);
      }
    }
    const model = this.opts.servedModelName ?? card.servedModelName;
    if (card.role !== 'agg') {
      // Pairing needs the engine's parallel layout: read it first, then admit again.
      if (!m.shape) return void this.readShape(m, card, resync);
      const other = card.role === 'prefill' ? 'decode' : 'prefill';
      for (const o of this.members.values()) {
        if (o === m || o.state !== 'up' || o.group?.model !== model || o.group.role !== other || !o.shape) continue;
        const why = pdIncompatibility(m.shape, o.shape);
        if (why) return this.refuse(m, `cannot pair with ${other} worker ${o.name}: ${why}`);
      }
      if (card.role === 'prefill' && (card.bootstrapHost === null || card.bootstrapPort === null)) {
        return this.refuse(m, 'a prefill worker without a bootstrap host and port (its engine reports no disaggregation_bootstrap_port)');
      }
    }
    let g = this.groups.get(groupKey(model, card.role));
    if (!g) {
      if (!Number.isInteger(card.pageSize) || card.pageSize < 1 || card.pageSize > 1024) {
        return this.refuse(m, `page size ${card.pageSize} is outside the router's block sizes 1..1024`);
      }
      g = this.newGroup(model, card);
    }
    if (card.pageSize !== g.blockSize) {
      return this.refuse(m, `page size ${card.pageSize} differs from ${g.blockSize}, the page size of the other ${card.role === 'agg' ? '' : `${card.role} `}workers of ${model}`);
    }
    const approx = this.approxFor(m, card);
    try {
      for (let r = 0; r < card.dpSize; r++) g.router.addWorker(m.id, r, approx);
    } catch (err) {
      g.router.removeWorker(m.id);
      return this.refuse(m, (err as Error).message);
    }
    if (m.busy) g.router.setBusy(m.id, true);
    m.group = g;
    m.ranks = card.dpSize;
    m.approx = approx;
    m.state = 'up';
    m.reason = '';
    const routing = approx ? `approximate (no KV events; predicted cache, TTL ${(this.opts.approxTtlMs ?? 120_000) / 1000} s)` : 'KV events';
    this.log.info(`worker ${m.name} up: ${model}, ${card.dpSize} dp rank(s), page size ${card.pageSize}, ${card.totalKvBlocks} KV blocks per rank, role ${card.role}, routed by ${routing}`);
    if (resync && m.agent && !approx) for (let r = 0; r < card.dpSize; r++) m.agent.requestResync(r);
  }

  private approxFor(m: Member, card: ModelCard): boolean {
    return this.opts.kvEvents === false || m.agent === null || !card.kvEvents || this.eventsDown || m.eventsStale || m.resyncing.size > 0;
  }

  private refuse(m: Member, reason: string): void {
    this.unregister(m);
    m.state = 'refused';
    m.reason = reason;
    this.log.error(`worker ${m.name} refused: ${reason}`);
  }

  // Out of routing: its blocks leave the index and its active requests are forgotten.
  private unregister(m: Member): void {
    if (m.group && m.ranks > 0 && !this.closed) m.group.router.removeWorker(m.id);
    m.ranks = 0;
    m.eventRanks.clear();
    this.prefills.dropWorker(m.id);
  }

  private newGroup(model: string, card: ModelCard): Group {
    // Decode workers are chosen by load alone: no prefix credit (Dynamo's decode override).
    const decode = card.role === 'decode';
    const router = new addon.KvRouter({
      blockSize: card.pageSize,
      policy: this.mode,
      overlapWeight: decode ? 0 : (this.opts.overlapWeight ?? ROUTING_DEFAULTS.overlapWeight),
      temperature: this.opts.temperature ?? ROUTING_DEFAULTS.temperature,
      pendingWeight: decode ? 0 : (this.opts.pendingWeight ?? ROUTING_DEFAULTS.pendingWeight),
      pendingTimeoutMs: this.opts.pendingTimeoutMs ?? ROUTING_DEFAULTS.pendingTimeoutMs,
      ownWeight: decode ? 0 : (this.opts.ownWeight ?? ROUTING_DEFAULTS.ownWeight),
      ownQueueWeight: this.opts.ownQueueWeight ?? ROUTING_DEFAULTS.ownQueueWeight,
      ...(this.opts.approxTtlMs !== undefined ? { approxTtlMs: this.opts.approxTtlMs } : {}),
      ...(this.opts.seed !== undefined ? { seed: this.opts.seed } : {}),
    });
    const holds = this.mode === 'kv' && (card.role === 'agg' || card.role === 'prefill') && this.prefillWaitShare < 1;
    const g: Group = { model, role: card.role, router, blockSize: card.pageSize, port: null!, holds };
    g.port = {
      route: (tokens, hold) => this.route(g, tokens, true, hold ?? null),
      waitPrefill: (p, until, signal) => this.prefills.wait(p, until, signal),
      sending: (r, hold) => this.sending(g, r, hold),
      markPrefillDone: (rid) => {
        if (this.closed) return;
        router.markPrefillDone(rid);
        this.sync?.publish({ kind: 'prefill_done', frontend: this.frontendId, rid });
      },
      free: (rid) => {
        if (this.closed) return;
        router.free(rid);
        this.sync?.publish({ kind: 'finished', frontend: this.frontendId, rid });
      },
      failed: (m, err) => this.failed(m, err),
      succeeded: (m) => {
        m.breaker.success();
        m.lastActive = Date.now();
      },
      firstTokenTimeoutMs: this.opts.firstTokenTimeoutMs ?? 0,
      streamIdleTimeoutMs: this.opts.streamIdleTimeoutMs ?? 0,
      retried: (from, to, err) => {
        this.metrics.retries.inc({ model });
        this.log.warn(`request moved from ${from.name} to ${to.name} before its first token: ${(err as Error).message}`);
      },
      retry: { ...DEFAULT_RETRY, ...this.opts.retry },
      workerWaitMs: this.opts.workerWaitMs ?? 0,
      migrationLimit: (m) => this.opts.migrationLimit ?? m.card?.migrationLimit ?? 0,
      migrated: (from, to, cause, generated, recomputed, err) => {
        this.metrics.migrations.inc({ model, cause });
        this.metrics.migrationRecomputed.observe({ model }, recomputed);
        this.log.warn(`request migrated from ${from.name} to ${to.name} after ${generated} token(s) (${cause}): ${(err as Error).message}`);
      },
    };
    this.groups.set(groupKey(model, card.role), g);
    this.log.info(`routing ${model}${card.role === 'agg' ? '' : ` (${card.role} pool)`}: ${this.mode}${decode ? ' by load (no prefix credit)' : ''}, block size ${card.pageSize}`);
    return g;
  }

  // ---- routing ----

  // `record`: count the decision in the metrics now (disaggregated requests count theirs
  // once they know which legs they use). `hold`: a first leg, which may have to wait for a
  // shared prefill: then nothing is held or counted, hold.blocking is set and null returned.
  private route(g: Group, tokens: Uint32Array, record = true, hold: PromptHold | null = null): Route<Member> | null {
    if (this.closed) return null;
    const rid = this.nextRid++;
    if (!g.router.route(tokens, rid, this.out)) return null;
    const m = this.byId.get(this.out[0]!);
    if (!m || m.state !== 'up') {
      // Only admitted members are candidates; anything else is a bookkeeping bug.
      g.router.free(rid);
      throw new KvgateError('internal_error', `the router chose worker #${this.out[0]}, which is not routable`);
    }
    m.lastActive = Date.now();
    const overlap = this.out[2]!;
    if (hold && this.mustWait(g, m, overlap, hold)) {
      g.router.free(rid);
      return null;
    }
    const cachedTokens = Math.min(tokens.length, overlap * g.blockSize);
    const rank = this.out[1]!;
    if (record) this.recordDecision(g, m, rank, tokens.length, cachedTokens, true);
    if (this.sync && m.instanceId !== null && g.role === 'agg') {
      const prefillTokens = Math.max(0, tokens.length - overlap * g.blockSize);
      this.sync.publish({ kind: 'routed', frontend: this.frontendId, rid, model: g.model, instanceId: m.instanceId, rank, prefillTokens, tokens });
    }
    return { member: m, name: m.name, rank, rid, client: m.engine!, cachedTokens };
  }

  // Whether the prompt should wait for a prefill `m` has queued (sets hold.blocking): one
  // sharing more of it than the `overlap` blocks the chosen rank caches, by over
  // prefillWaitShare of the prompt. O(1) while the worker has no prefill in flight.
  private mustWait(g: Group, m: Member, overlap: number, hold: PromptHold): boolean {
    if (m.approx || !this.prefills.has(m.id) || performance.now() >= hold.until) return false;
    const hashes = (hold.hashes ??= addon.blockHashes(hold.tokens, g.blockSize));
    const minBlocks = Math.floor((this.prefillWaitShare * hold.tokens.length) / g.blockSize);
    hold.blocking = this.prefills.blocking(m.id, hashes, () => overlap, minBlocks);
    return hold.blocking !== null;
  }

  // A leg goes to `r`'s worker: counted in flight there, and a first leg's prompt recorded as
  // prefilling (queued unless nothing else was in flight) until its blocks are stored.
  private sending(g: Group, r: Route<Member>, hold: PromptHold | null): () => void {
    const m = r.member;
    const started = m.inflight === 0;
    m.inflight++;
    const prefilled = hold ? this.recordPrefill(g, m, hold, r.cachedTokens, started) : null;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      m.inflight--;
      prefilled?.();
    };
  }

  // `cache`: the chosen worker's cache serves the prompt (not a decode leg's).
  private recordDecision(g: Group, m: Member, rank: number, promptTokens: number, cachedTokens: number, cache: boolean): void {
    this.metrics.decisions.inc({ model: g.model, worker: m.name, dp_rank: rank });
    if (!cache) return;
    this.metrics.overlapBlocks.observe({ model: g.model }, Math.floor(cachedTokens / g.blockSize));
    if (promptTokens > 0) this.metrics.hitRate.observe({ model: g.model }, cachedTokens / promptTokens);
  }

  // ---- disaggregation ----

  // A prefill worker by KV cost on the prefill pool, a decode worker by load; or the decode
  // worker alone when conditional disaggregation says the prompt is cheap to prefill there.
  private dispatchPd(req: RouteRequest): PdRequest<Member> {
    const pg = this.groups.get(groupKey(req.model, 'prefill'))!;
    const dg = this.groups.get(groupKey(req.model, 'decode'))!;
    if (this.allBusy(dg)) throw this.busyError(req.model, 'decode ');
    const tokens = Uint32Array.from(req.tokenIds);
    const hold = this.holdFor(pg, tokens);
    const pair = this.pickPair(pg, dg, tokens, undefined, hold);
    const none = () => new KvgateError('no_workers', `no prefill/decode pair can serve model '${req.model}' now`);
    // A prompt whose prefill worker is prefilling a prompt it shares waits in its stream.
    if (!pair && !hold?.blocking) throw none();
    const port: PdPort<Member> = {
      prefill: pg.port,
      decode: dg.port,
      rooms: this.rooms,
      roomTimedOut: (state) => this.metrics.pdRoomsTimedOut.inc({ model: req.model, state }),
      pick: (tokens, hold) => this.pickPair(pg, dg, tokens, undefined, hold),
      repick: (tokens, failed) => this.pickPair(pg, dg, tokens, failed),
      none,
      retried: (from, to, err) => {
        this.metrics.retries.inc({ model: req.model });
        this.log.warn(`disaggregated request moved from ${from} to ${to} before its first token: ${(err as Error).message}`);
      },
    };
    return new PdRequest(port, pair, hold);
  }

  // The legs of one attempt (their routes held, the decision counted), or null; a retry
  // passes over the workers of the pair that failed while others are free. `hold`: a first
  // attempt, which may have to wait for a shared prefill (then null, with hold.blocking set).
  private pickPair(pg: Group, dg: Group, tokens: Uint32Array, failed?: PdPair<Member>, hold: PromptHold | null = null): PdPair<Member> | null {
    const p = failed ? this.routeAvoiding(pg, tokens, failed.prefill?.member ?? null) : this.route(pg, tokens, false, hold);
    if (!p) return null;
    const uncached = tokens.length - p.cachedTokens;
    const queued = this.meanQueued(pg);
    const local =
      this.pd.localPrefillTokens > 0 && uncached <= this.pd.localPrefillTokens
        ? 'local_short_prompt'
        : this.pd.localPrefillQueue > 0 && queued >= this.pd.localPrefillQueue
          ? 'local_prefill_queue'
          : null;
    if (local) pg.router.free(p.rid);
    let d = this.routeAvoiding(dg, tokens, failed?.decode.member ?? null);
    if (!d) {
      if (!local) pg.router.free(p.rid);
      return null;
    }
    if (!local) d = this.avoidSlowPair(dg, p.member, d, tokens);
    // A retry goes to another pair, or fails: the same pair would fail the same way.
    if (failed && d.member === failed.decode.member && (local ? failed.prefill === null : p.member === failed.prefill?.member)) {
      if (!local) pg.router.free(p.rid);
      dg.router.free(d.rid);
      return null;
    }
    if (!local) this.recordDecision(pg, p.member, p.rank, tokens.length, p.cachedTokens, true);
    // A local request's prompt is prefilled by the decode worker, whose cache is not tracked.
    this.recordDecision(dg, d.member, d.rank, tokens.length, 0, false);
    this.metrics.pdDecisions.inc({ model: pg.model, decision: local ?? 'disaggregated' });
    const leg = (r: Route<Member>): PdLeg<Member> => ({ ...r, id: r.member.id, dpSize: r.member.card!.dpSize, grpc: r.member.card!.engineUrl.startsWith('grpc') });
    const prefill: PrefillLeg<Member> | null = local ? null : { ...leg(p), bootstrapHost: p.member.card!.bootstrapHost!, bootstrapPort: p.member.card!.bootstrapPort! };
    return { prefill, decode: leg(d) };
  }

  // The decode worker the router chose by load, unless its pair with prefill worker `p` is
  // slow: its handoff gap EWMA is at least slowPairFactor times the median of p's other
  // pairs (each with MIN_PAIR_HANDOFFS handoffs; the median at least GAP_FLOOR_MS). Then the router chooses again with `d`
  // passed over, and the alternative is taken unless it has at least that ratio more active
  // requests than `d`: the ratio is `d`'s penalty, in requests. A slow pair still serves
  // when the others are loaded, which also keeps its statistics fresh.
  private avoidSlowPair(dg: Group, p: Member, d: Route<Member>, tokens: Uint32Array): Route<Member> {
    const factor = this.pd.slowPairFactor;
    if (factor <= 0 || d.member.busy) return d;
    const gap = (m: Member) => {
      const s = this.rooms.pairStats(p.id, m.id);
      return s && s.handoffs >= MIN_PAIR_HANDOFFS ? s.gapMsEwma : null;
    };
    const own = gap(d.member);
    if (own === null) return d;
    const others: number[] = [];
    for (const m of this.members.values()) {
      const g = m !== d.member && m.group === dg && m.state === 'up' ? gap(m) : null;
      if (g !== null) others.push(g);
    }
    if (others.length === 0) return d;
    others.sort((a, b) => a - b);
    const median = others.length % 2 ? others[others.length >> 1]! : (others[others.length / 2 - 1]! + others[others.length / 2]!) / 2;
    const penalty = own / Math.max(median, GAP_FLOOR_MS);
    if (penalty < factor) return d;
    const alt = this.routeAvoiding(dg, tokens, d.member);
    if (!alt) return d;
    // Active requests per worker, each counting the request just routed to it.
    const active = new Map<number, number>();
    for (const u of dg.router.units()) active.set(u.worker, (active.get(u.worker) ?? 0) + u.activeRequests);
    if (alt.member !== d.member && (active.get(alt.member.id) ?? 0) < (active.get(d.member.id) ?? 0) + penalty) {
      dg.router.free(d.rid);
      this.log.debug(`decode ${alt.name} instead of ${d.name} for prefill ${p.name}: that pair's handoff gap is ${penalty.toFixed(1)}x the others' median`);
      return alt;
    }
    dg.router.free(alt.rid);
    return d;
  }

  // A route on `g` (not counted in the decision metrics) that passes `avoid` over while
  // another worker is free (the router's busy exclusion, for this one decision).
  private routeAvoiding(g: Group, tokens: Uint32Array, avoid: Member | null): Route<Member> | null {
    if (!avoid || avoid.busy || avoid.group !== g || avoid.ranks === 0) return this.route(g, tokens, false);
    g.router.setBusy(avoid.id, true);
    try {
      return this.route(g, tokens, false);
    } finally {
      g.router.setBusy(avoid.id, false);
    }
  }

  // Requests the prefill pool's engines report waiting, per worker up (their load reports).
  private meanQueued(g: Group): number {
    let up = 0;
    let queued = 0;
    for (const m of this.members.values()) {
      if (m.group !== g || m.state !== 'up') continue;
      up++;
      for (const r of m.load?.ranks ?? []) queued += r.queued;
    }
    return up > 0 ? queued / up : 0;
  }

  // Tried again with backoff while the engine cannot be reached; an engine that answers
  // without a TP size is refused.
  private async readShape(m: Member, card: ModelCard, resync: boolean): Promise<void> {
    m.state = 'connecting';
    m.reason = 'reading the engine\'s parallel layout for prefill/decode pairing';
    for (let delay = 100; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const shape = await readPdShape(m.engine!, card);
        if (this.closed || m.card !== card || m.state !== 'connecting') return;
        m.shape = shape;
        return this.admit(m, card, resync);
      } catch (err) {
        if (this.closed || m.card !== card || m.state !== 'connecting') return;
        const e = err as Error;
        if (e instanceof KvgateError && e.code === 'invalid_config') return this.refuse(m, `cannot pair it: ${e.message}`);
        m.reason = `reading the engine's parallel layout for prefill/decode pairing: ${e.message}`;
      }
      await sleep(delay, undefined, { ref: false });
    }
  }

  private pairRows(): { model: string; prefill: string; decode: string; stats: NonNullable<ReturnType<RoomWatch['pairStats']>> }[] {
    const rows = [];
    const up = (role: WorkerRole) => [...this.members.values()].filter((m) => m.state === 'up' && m.group?.role === role);
    for (const p of up('prefill')) {
      for (const d of up('decode')) {
        const stats = p.group!.model === d.group!.model ? this.rooms.pairStats(p.id, d.id) : null;
        if (stats) rows.push({ model: p.group!.model, prefill: p.name, decode: d.name, stats });
      }
    }
    return rows;
  }

  // A stream on `m` failed. Failures that mean the worker cannot serve (rather than this
  // request being bad) take it out of routing for a while; the request may go elsewhere.
  private failed(m: Member, err: unknown): boolean {
    if (!(err instanceof KvgateError)) return false;
    const c = err.code;
    // An engine that reported an error itself is up: only failures to reach it take it out
    // now; every server-side failure counts towards its circuit breaker.
    const gone = c === 'engine_unavailable' || c === 'engine_timeout';
    const opened = (gone || c === 'engine_error') && m.breaker.failure();
    if (!gone && !opened) return false;
    if ((m.state === 'up' || (opened && m.state === 'down')) && !this.closed) {
      this.unregister(m);
      m.state = 'down';
      m.reason = opened ? `circuit breaker open (${this.breakerOptions.failureThreshold} failures in a row; last: ${err.message})` : err.message;
      const penalty = opened ? this.breakerOptions.openMs : (this.opts.penaltyMs ?? 5000);
      this.log.warn(`worker ${m.name} failed (${m.reason}): out of routing for ${penalty / 1000} s`);
      this.scheduleReadmit(m, penalty);
    }
    return gone;
  }

  private scheduleReadmit(m: Member, delayMs: number): void {
    if (m.timer) clearTimeout(m.timer);
    m.timer = setTimeout(() => void this.readmit(m), delayMs);
    m.timer.unref();
  }

  private async readmit(m: Member): Promise<void> {
    m.timer = null;
    if (this.closed || m.state !== 'down' || !m.card) return;
    // An agent that dropped its connection meanwhile comes back through its Hello.
    if (m.agent && !m.agent.connected) return;
    // The generation check: an engine that answers /health but cannot generate stays out.
    if (await m.engine!.healthy(true)) {
      if (m.state === 'down' && !this.closed && (!m.agent || m.agent.connected)) this.admit(m, m.card, m.agent !== null);
    } else {
      const again = this.opts.penaltyMs ?? 5000;
      this.log.info(`worker ${m.name} failed its generation check: out of routing for another ${again / 1000} s`);
      this.scheduleReadmit(m, again);
    }
  }

  // ---- KV events ----

  private onKv(m: Member, ev: KvRelayEvent): void {
    const g = m.group;
    if (this.closed || m.state !== 'up' || !g || ev.instanceId !== m.instanceId) return;
    if (ev.kind === 'gap') return this.onGap(m, g, ev.dpRank);
    // The reset of a gap's resync: its rebuild follows it on the same stream, so the worker is
    // routed on its events again from here (its other ranks are rebuilt by resyncs).
    if (ev.kind === 'reset' && m.resyncing.delete(ev.dpRank) && m.resyncing.size === 0 && this.remode(m, ev.dpRank)) {
      this.log.info(`worker ${m.name} rank ${ev.dpRank}: resync after the KV-event gap arrived; routing it on its events again`);
    }
    if (m.approx) return;
    const labels = { model: g.model, worker: m.name };
    if (ev.kind === 'reset') {
      g.router.clearWorker(m.id, ev.dpRank);
      for (const r of m.eventRanks.get(ev.dpRank) ?? []) g.router.clearWorker(m.id, r);
      m.eventRanks.delete(ev.dpRank);
      // Its prefills' blocks may have been stored before the reset and never show up again.
      this.prefills.dropWorker(m.id);
      this.metrics.kvResets.inc({ ...labels, reason: ev.reason });
      return;
    }
    try {
      g.router.applyEvents(m.id, ev.dpRank, ev.payload, this.counts);
    } catch (err) {
      this.metrics.kvMalformed.inc(labels);
      this.log.warn(`worker ${m.name} rank ${ev.dpRank}: KV batch ${ev.seq} not applied: ${(err as Error).message}`);
      return;
    }
    const [, applied, ignored, errors, rank] = this.counts;
    if (rank !== ev.dpRank) {
      let extra = m.eventRanks.get(ev.dpRank);
      if (!extra) m.eventRanks.set(ev.dpRank, (extra = new Set()));
      extra.add(rank!);
    }
    if (applied) this.metrics.kvEvents.inc({ ...labels, result: 'applied' }, applied);
    if (ignored) this.metrics.kvEvents.inc({ ...labels, result: 'ignored' }, ignored);
    if (errors) this.metrics.kvEvents.inc({ ...labels, result: 'error' }, errors);
    if (this.prefills.has(m.id)) this.checkPrefills(g, m.id);
  }

  // Settles the worker's prefills whose blocks the index now shows stored on it (on any of its
  // ranks; an engine may keep a prompt's last page until the request ends).
  private checkPrefills(g: Group, worker: number): void {
    const units = g.router.stats().units;
    this.prefills.check(worker, (hashes) => this.stored.of(g.router, hashes, worker, units));
  }

  // A batch missing on a rank: the exact unit is behind, so the worker is routed approximately
  // until the resync the client asked for (request_plane_client.ts) rebuilds the rank.
  private onGap(m: Member, g: Group, dpRank: number): void {
    if (m.approx && m.resyncing.size === 0) return; // approximate anyway: its events are ignored
    this.metrics.kvGaps.inc({ model: g.model, worker: m.name });
    m.resyncing.add(dpRank);
    if (this.remode(m)) this.log.warn(`worker ${m.name} rank ${dpRank}: KV-event gap; routing it approximately until its resync rebuilds the rank`);
  }

  // ---- plain engines (no agent) ----

  private async readEngineCard(m: Member): Promise<void> {
    for (let delay = 250; !this.closed; delay = Math.min(delay * 2, 5000)) {
      try {
        const card = await m.engine!.modelCard();
        if (!this.closed) this.admit(m, card, false);
        return;
      } catch (err) {
        m.reason = (err as Error).message;
      }
      await sleep(delay, undefined, { ref: false });
    }
  }

  // Plain engines get a liveness check every round; any worker idle for idleHealthCheckMs a
  // generation check, which catches an engine that answers /health but cannot generate. Idle
  // means nothing routed or finished there for that long and nothing in flight: a saturated
  // engine's queue would time the check out and set a working engine aside (its own requests
  // have the first-token and stream-idle timeouts).
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    const idleMs = this.opts.idleHealthCheckMs ?? 0;
    const now = Date.now();
    // Workers with requests in flight, read off the routers once per probe.
    let serving: Set<number> | null = null;
    const hasRequests = (m: Member) => {
      serving ??= new Set([...this.groups.values()].flatMap((g) => g.router.units().filter((u) => u.activeRequests > 0).map((u) => u.worker)));
      return serving.has(m.id);
    };
    try {
      await Promise.all(
        [...this.members.values()]
          .filter((m) => m.state === 'up' && m.engine)
          .map(async (m) => {
            const generate = idleMs > 0 && now - m.lastActive >= idleMs && !hasRequests(m);
            if (!generate && m.agent) return;
            if (generate) m.lastActive = now;
            if (await m.engine!.healthy(generate)) return;
            this.failed(m, new KvgateError('engine_unavailable', `engine ${m.name} failed its ${generate ? 'generation ' : ''}health check`));
          }),
      );
    } finally {
      this.probing = false;
    }
  }
}

// Groups by model and role: the aggregated workers of a model under its name (router replica
// sync names them so), its prefill and decode pools beside them.
function groupKey(model: string, role: WorkerRole): string {
  return role === 'agg' ? model : `${model}\0${role}`;
}
