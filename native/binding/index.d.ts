// Type declarations of the kvgate native addon (build/native/Release/kvgate.node), written
// by hand. Load it through src/native/addon.ts, never directly.
//
// Common rules:
// - Thread: every call is synchronous and runs on the calling JS thread; nothing runs in the
//   background. An instance belongs to the thread (isolate) that created it.
// - Arrays passed in are read during the call only and never kept. Output arrays are
//   caller-owned, written during the call only, and must not overlap the inputs.
// - Errors have a stable `code` (registered in src/errors.ts): ERR_INVALID_ARG (a bad
//   argument), ERR_KV_EVENT_MALFORMED (bytes that are not a valid SGLang KV-event batch;
//   nothing was applied), ERR_CLOSED (a method called after close()), ERR_LIMIT (a
//   documented capacity limit reached). They are instances of the class handed to
//   setErrorClass (src/native/addon.ts hands over KvgateError), else plain `Error`s with
//   err.code set. Running out of memory in a call throws a plain Error (no code) instead of
//   aborting the process.

/** The codes of native errors. */
export type NativeErrorCode = 'ERR_INVALID_ARG' | 'ERR_KV_EVENT_MALFORMED' | 'ERR_CLOSED' | 'ERR_LIMIT';

/** Native errors are thrown as `new errorClass(code, message)` from now on (per thread).
 *  Throws ERR_INVALID_ARG if errorClass is not a constructor. */
export function setErrorClass(errorClass: new (code: NativeErrorCode, message: string) => Error): void;
// - Ids: workers are dense u32 ids chosen by the caller (TS maps ids to addresses), dp ranks
//   are u32; a (worker, rank) pair is a "unit", the thing routed to. At most 65535 units
//   exist at a time (candidates plus units only named by KV events).
// - Block hashes: local hashes (the router's own, XXH3-64 seed 1337 of a block's tokens) are
//   BigUint64Array; engine hashes (opaque ids from KV events, signed in SGLang) are
//   BigInt64Array, or BigUint64Array with the same 64 bits.

// ---- Hashing and KV-event decoding (native/binding/hash_binding.cc) ----

/** The code paths of XXH3's long inputs (over 240 bytes) this CPU runs, widest first: xxh3
 *  and the router use the first. All give the same hashes. */
export type Xxh3Path = 'avx512' | 'avx2' | 'scalar';
export function xxh3Paths(): Xxh3Path[];

/** XXH3-64 of `data` (XXH3_64bits_withSeed). Seed defaults to 0n and must be in [0, 2^64).
 *  `path` (for tests: one of xxh3Paths()) forces the code of long inputs; by default the
 *  widest this CPU runs. Cost: O(data.length), ~60 ns per call from JS for short inputs,
 *  ~55 GB/s on long ones with AVX2 or AVX-512, ~14 GB/s scalar (bench/README.md);
 *  synchronous on the calling thread. `data` is read during the call only. Throws
 *  ERR_INVALID_ARG on a bad argument (a path not in xxh3Paths() included). */
export function xxh3(data: Uint8Array, seed?: bigint, path?: Xxh3Path): bigint;

/** Dynamo local block hashes: XXH3-64 (seed 1337) of each full block of `blockSize`
 *  tokens as little-endian u32; a trailing partial block is not hashed, so the result has
 *  floor(tokens.length / blockSize) elements. blockSize is an integer in [1, 1024].
 *  With `out` (length >= that count, not overlapping `tokens`) the hashes are written
 *  there and `out` is returned when its length equals the count, else a view of its first
 *  count elements (no copy); without `out` a new array is allocated.
 *  Cost: O(tokens.length), ~1.2 µs from JS for 4,096 tokens at block size 16 with `out`, as
 *  for 12,288 tokens at block size 512 (SIMD long path); synchronous; the arrays are only
 *  accessed during the call.
 *  Throws ERR_INVALID_ARG on a bad argument. */
export function blockHashes(tokens: Uint32Array, blockSize: number, out?: BigUint64Array): BigUint64Array;

/** Chained sequence hashes of local block hashes: seq[0] = local[0],
 *  seq[i] = XXH3-64(le64(seq[i-1]) ++ le64(local[i]), 1337). `out` may be `local` itself
 *  (computed in place) or another array of length >= local.length (not otherwise
 *  overlapping); the return value follows blockHashes' rule. Cost: ~4 ns per hash
 *  (~1.3 µs from JS for 256); synchronous. Throws ERR_INVALID_ARG on a bad argument. */
export function sequenceHashes(local: BigUint64Array, out?: BigUint64Array): BigUint64Array;

export type KvEventObject =
  | {
      kind: 'BlockStored';
      blockHashes: BigInt64Array;
      parentHash: bigint | null;
      tokenIds: Uint32Array;
      blockSize: number;
      loraId: bigint | null;
      gpuMedium: boolean;
    }
  | { kind: 'BlockRemoved'; blockHashes: BigInt64Array; gpuMedium: boolean }
  | { kind: 'AllBlocksCleared' };
export interface KvEventBatchObject {
  ts: number;
  dpRank: number | null;
  events: KvEventObject[];
}

/** Decodes one SGLang KV-event batch (raw msgpack payload frame: `[ts, events, dp_rank?]`,
 *  events as arrays (SGLang <= 0.5.19) or tagged maps (>= 0.5.20), mixed freely) with the
 *  native reader into plain JS objects. For tests and debugging only, NOT the hot path: it allocates an
 *  object per event (the router applies batches natively without this, see
 *  KvRouter.applyEvents). Engine hashes are signed int64; gpuMedium is true for medium nil
 *  or "GPU". Synchronous, O(bytes.length); `bytes` is read during the call only. Throws
 *  ERR_KV_EVENT_MALFORMED (message names the reader error: TRUNCATED, BAD_TYPE, BAD_SHAPE,
 *  UNKNOWN_EVENT, LIMIT_EXCEEDED, TRAILING_BYTES) or ERR_INVALID_ARG when `bytes` is not a
 *  Uint8Array. */
export function parseKvEventBatch(bytes: Uint8Array): KvEventBatchObject;

// ---- Router (native/binding/router_binding.cc over native/core/kv_router.h) ----

/** How route() picks among the candidates. */
export type RouterPolicy = 'kv' | 'round-robin' | 'random' | 'power-of-two' | 'least-loaded';

export interface KvRouterOptions {
  /** Tokens per block: the engines' KV page size (all workers of a model share it). Integer in [1, 1024]. */
  blockSize: number;
  /** Default 'kv': the lowest Dynamo cost (see route). 'round-robin' cycles through the
   *  candidates in (worker, rank) order; 'random' is uniform; 'power-of-two' draws two
   *  distinct candidates and takes the less loaded (the first drawn on a tie);
   *  'least-loaded' takes the least loaded (ties at random). Load = active blocks +
   *  prefill tokens / blockSize. */
  policy?: RouterPolicy;
  /** Default weight of prefill blocks in the KV cost (Dynamo's overlap_score_weight), >= 0. Default 1. */
  overlapWeight?: number;
  /** Default softmax temperature, >= 0. 0 (the default) takes the minimum cost. */
  temperature?: number;
  /** Seed of the random generator (SplitMix64) for ties, softmax and the random policies.
   *  Default: random. */
  seed?: bigint | number;
  /** Approximate mode for engines without KV events (Dynamo's --no-router-kv-events): each
   *  request routed to an approximate unit has its full blocks recorded as cached there for
   *  approxTtlMs (refreshed in place when routed again), dropping the oldest recordings when
   *  more than approxMaxBlocks are held (down to approxMaxBlocks * approxPruneRatio); memory
   *  is bounded by approxMaxBlocks, not by the request rate. This option is the mode of
   *  units added without one (addWorker's `approx`). */
  approx?: boolean;
  /** Default 120000 (Dynamo's --router-ttl-secs 120). > 0. */
  approxTtlMs?: number;
  /** Default 1048576 (Dynamo's --router-max-tree-size). An integer in [1, 2^53). */
  approxMaxBlocks?: number;
  /** Default 0.8 (Dynamo's --router-prune-target-ratio). In (0, 1]. */
  approxPruneRatio?: number;
  /** Pending prefixes, >= 0; default 0 (off). When > 0, each request routed to an exact unit
   *  has its full blocks recorded as pending there until the unit's KV events store its last
   *  full block (confirmed), it is freed, its unit is removed, or pendingTimeoutMs passed.
   *  Later requests see them (route's cost): a burst sharing a new prefix stays together
   *  before any event arrives. The value is what one pending block beyond the cached overlap
   *  takes off the cost, in blocks. */
  pendingWeight?: number;
  /** Default 10000. How long a routed request's blocks stay pending at most, in route's
   *  nowMs clock. > 0. */
  pendingTimeoutMs?: number;
  /** Weight of the prompt's own uncached blocks, counted again beside the backlog they wait
   *  behind (route's cost), >= 0; default 0 (Dynamo's cost). The prefill a request takes from
   *  the fleet, so that a prompt stays with its cached prefix behind a short queue rather
   *  than recompute it on an idle unit. */
  ownWeight?: number;
  /** How much the own weight grows per prompt queued per unit, >= 0; default 0 (a fixed own
   *  weight). route's own weight is ownWeight * (1 + ownQueueWeight * prompts before their
   *  first token (markPrefillDone) over the fleet / candidate units): the prefill a request
   *  adds delays every prompt queued behind it, so a saturated fleet keeps a prompt with its
   *  cached prefix rather than recompute it elsewhere. */
  ownQueueWeight?: number;
  /** Default false. true: route() scores every candidate on every request. By default a kv
   *  route at temperature 0 with the options' overlapWeight scores only the units the prompt
   *  shares blocks with plus the least loaded of the rest (kept in load order) and picks
   *  exactly what the full scan would, with the same random draws; this option is the
   *  yardstick for that (tests, benchmarks). */
  fullScan?: boolean;
}

/** Outcome of applyStored. 'unknown-parent': the parent hash is not held by the unit, so
 *  the event was dropped. 'block-size-mismatch': more tokens than hashes x blockSize (the
 *  engine's page size differs from blockSize), dropped. 'limit': a unit holds one block
 *  under 65535 engine hashes; that hold was skipped. */
export type StoreStatus = 'ok' | 'unknown-parent' | 'block-size-mismatch' | 'limit';

export interface KvRouterStats {
  /** Distinct blocks held by at least one unit. */
  blocks: number;
  /** Held (block, unit, engine hash) entries: per-unit lookup size summed. */
  pairs: number;
  /** Units holding at least one block. */
  indexUnits: number;
  /** Memory of the KV index, approximately, in bytes. */
  indexBytes: number;
  /** Units registered with addWorker. */
  candidates: number;
  /** Candidates marked busy with setBusy (routed to only while every candidate is). */
  busy: number;
  /** Units in use: candidates plus units only named by KV events. */
  units: number;
  activeRequests: number;
  /** KV events applied without error, and events with an error (unknown parent, block size
   *  mismatch, removal of a block not held), since the router was created. */
  eventsApplied: number;
  eventErrors: number;
  /** Blocks recorded by approximate mode and still within their TTL. */
  approxBlocks: number;
  /** Pending prefixes: requests whose blocks are pending, and their (block, unit) holds
   *  (a block pending for two requests on one unit counts twice). */
  pendingRequests: number;
  pendingBlocks: number;
  /** Memory of the whole router (index, active requests, tables), approximately, in bytes. */
  bytes: number;
}

export interface UnitInfo {
  worker: number;
  rank: number;
  /** Registered with addWorker (else only named by KV events: indexed, never routed to). */
  candidate: boolean;
  /** Distinct blocks of the unit's active requests (shared prefixes count once, a partial
   *  last block once per request). */
  activeBlocks: number;
  /** Prompt tokens of active requests not yet past their first output token, minus what
   *  was cached when they were routed. */
  prefillTokens: number;
  activeRequests: number;
  /** Blocks the unit holds in the KV index (Dynamo's tree size). */
  cachedBlocks: number;
}

/**
 * KV-aware router over a set of candidate units: the KV index (which unit holds which
 * prefix blocks, kept exact by KV events), the active requests per unit, and the scheduler.
 *
 * Lifetime: the native memory lives until close() or garbage collection of the object;
 * every method after close() throws ERR_CLOSED (close itself may be called again).
 * Memory is bounded by what KV events say is stored (about 50-60 bytes per held
 * (block, unit) pair, bench/README.md) plus the active requests (about 50 bytes per distinct
 * active block).
 */
export class KvRouter {
  /** Throws ERR_INVALID_ARG on a bad or unknown option. Cost: O(1). */
  constructor(options: KvRouterOptions);

  /** The options' blockSize. */
  readonly blockSize: number;

  /** Registers (worker, rank = 0) as a routing candidate, approximate (its cache predicted
   *  from routing decisions) or exact (kept by its KV events); `approx` defaults to the
   *  options' approx. Idempotent; adding it again in the other mode drops its cached blocks.
   *  O(units log units). Throws ERR_LIMIT when 65535 units are in use. */
  addWorker(worker: number, rank?: number, approx?: boolean): void;
  /** Forgets the unit, or every rank of the worker when rank is omitted: its cached blocks,
   *  its active requests (free() on them then returns false) and its candidacy. Call when
   *  discovery loses the worker. O(its blocks + active requests + units). */
  removeWorker(worker: number, rank?: number): void;
  /** Drops the cached blocks of the unit, or of every rank of the worker; it stays a
   *  candidate. O(its blocks). */
  clearWorker(worker: number, rank?: number): void;
  /** Marks every rank of the worker busy (its engine is saturated) or free again. route()
   *  picks among the candidates not busy while there is one, and among all of them when
   *  every one is busy; a busy unit keeps its cache, its load and its candidacy (addRouted,
   *  score). Removing the unit clears the mark. O(units). Throws ERR_INVALID_ARG on a bad
   *  worker or a busy that is not a boolean. */
  setBusy(worker: number, busy: boolean): void;

  /** Applies one stored event for (worker, rank): block i is tokens[i*bs, (i+1)*bs) under
   *  blockHashes[i], chained under the unit's block parentHash (null = under the root).
   *  Only full blocks are stored; a trailing partial page is ignored. An engine hash the
   *  unit already holds for another block moves. O(tokens + blocks). */
  applyStored(
    worker: number,
    rank: number,
    parentHash: bigint | null,
    tokens: Uint32Array,
    blockHashes: BigInt64Array | BigUint64Array,
  ): StoreStatus;
  /** Applies one removed event: drops the unit's holds named by the hashes (no cascade to
   *  blocks chained under them). Returns how many were not held. O(blocks). */
  applyRemoved(worker: number, rank: number, blockHashes: BigInt64Array | BigUint64Array): number;
  /** Parses one raw SGLang KV-event batch (the msgpack payload frame; array or tagged-map
   *  events, as parseKvEventBatch) natively and, only if
   *  all of it is valid, applies its events to (worker, rank). A dp_rank carried by the
   *  batch replaces `rank`. Events for another medium than the GPU are ignored;
   *  AllBlocksCleared clears this one unit. Returns the number of events with an error
   *  (as in applyStored/applyRemoved); with `out` (Uint32Array, length >= 4) also writes
   *  [events, applied, ignored, errors], and, if out has a fifth element, the rank the
   *  events went to. O(bytes); allocates no JS objects.
   *  Throws ERR_KV_EVENT_MALFORMED (nothing applied) on bytes that are not a valid batch. */
  applyEvents(worker: number, rank: number, bytes: Uint8Array, out?: Uint32Array): number;

  /** For each unit holding the query's first block, the number of leading query blocks it
   *  holds. The query is prompt tokens (Uint32Array, hashed at blockSize) or local block
   *  hashes (BigUint64Array). Writes the units and depths into the three outputs (each must
   *  have room for every unit in use: stats().units), one row per unit in no particular
   *  order, and returns how many it wrote.
   *  O(tokens + depth reached x holders per block); stops when no unit is left. When every
   *  unit caching any block caches the query's first k blocks (a system prompt cached
   *  everywhere), those k blocks' holders are not walked: O(tokens + units + the walk past k),
   *  about 6 µs at 10,000 units with a 23-block query. */
  findMatches(
    query: Uint32Array | BigUint64Array,
    outWorkers: Uint32Array,
    outRanks: Uint32Array,
    outDepths: Uint32Array,
  ): number;

  /** Routes one request: hashes the prompt, finds each candidate's cached overlap, picks a
   *  candidate by the policy and records the request as active on it (its blocks, and its
   *  prompt tokens minus the cached ones as prefill load). Writes [worker, rank,
   *  overlap blocks] into `out` (length >= 3) and returns true; returns false (nothing
   *  recorded) when there is no candidate.
   *
   *  KV policy, Dynamo 2026-04 (lower is better), bs = blockSize, isl = tokens.length:
   *    prefill = (unit prefill tokens + max(0, isl - overlap*bs)) / bs
   *    decode  = unit active blocks + ceil(isl/bs) - blocks of this prompt already active on the unit
   *    cost    = overlapWeight * prefill + decode
   *  With pendingWeight > 0, extra = blocks of the prompt pending on the unit beyond its
   *  cached overlap: min(unit prefill tokens, extra*bs) leaves the unit prefill (computed
   *  once, by the request that made them pending), and cost -= pendingWeight * extra. The
   *  request's own prefill load then counts its pending blocks as cached.
   *  With ownWeight > 0, own = max(0, isl - overlap*bs - that shared prefill) (the prompt's
   *  part computed for it alone there), and cost += ownWeight * own / bs (ownWeight times
   *  1 + ownQueueWeight * the fleet's prompts before their first token per candidate unit).
   *  temperature 0: the minimum cost, ties to the unit with the fewest cached blocks, then
   *  at random; temperature > 0: a sample of softmax(-(cost / (max - min)) / temperature).
   *
   *  requestId: an integer in [0, 2^53) not currently active (ERR_INVALID_ARG otherwise);
   *  pair every successful route with free(requestId). overlapWeight and temperature
   *  override the options for this request. nowMs is approximate mode's clock in ms
   *  (default: a native monotonic clock); pass it always or never, and never decreasing.
   *  Cost: O(tokens + depth x holders + units), about 12 µs for 4,096 tokens among 64 units
   *  against a 1 M-block index (bench/README.md); a kv route at temperature 0 with the
   *  options' overlapWeight (unless fullScan) is O(tokens + depth x holders + matched units
   *  + log units) instead, plus the size of a tie at the best cost that spans several loads.
   *  Allocates no JS objects. Throws ERR_LIMIT if
   *  the chosen unit already has 65535 active requests. */
  route(
    tokens: Uint32Array,
    requestId: number,
    out: Uint32Array,
    overlapWeight?: number,
    temperature?: number,
    nowMs?: number,
  ): boolean;
  /** What route would compute for `tokens`, without picking or recording anything: for
   *  every candidate in (worker, rank) order, its cached overlap in blocks and its KV cost.
   *  Each output must have room for stats().candidates entries; returns that count.
   *  O(tokens + depth x holders + units). */
  score(
    tokens: Uint32Array,
    outWorkers: Uint32Array,
    outRanks: Uint32Array,
    outOverlap: Uint32Array,
    outCosts: Float64Array,
    overlapWeight?: number,
  ): number;

  /** Records a request another router (a frontend replica) routed to (worker, rank): its
   *  prompt's blocks and `prefillTokens` (its uncached prompt tokens) count as that unit's
   *  load, as if route had picked it, until free(requestId); markPrefillDone applies too.
   *  The index is not touched. Returns false (nothing recorded) when (worker, rank) is not a
   *  candidate. requestId as in route. O(tokens). Throws ERR_LIMIT at 65535 active requests
   *  on the unit. */
  addRouted(tokens: Uint32Array, requestId: number, worker: number, rank: number, prefillTokens: number): boolean;
  /** The request's first output token arrived: its prefill tokens leave its unit's load.
   *  Returns false if the request is not active or was already marked. O(1). */
  markPrefillDone(requestId: number): boolean;
  /** The request finished or was aborted: releases its blocks and load. Idempotent: returns
   *  false if it was not active. O(request blocks). */
  free(requestId: number): boolean;
  /** Approximate mode: drops recorded blocks whose TTL ended by nowMs (route does this
   *  itself; call it to age an idle router). Same clock as route's nowMs. O(expired blocks). */
  expire(nowMs?: number): void;
  /** Reseeds the random generator. */
  setSeed(seed: bigint | number): void;

  /** Counters and sizes. O(units). Allocates an object: not for the hot path. */
  stats(): KvRouterStats;
  /** Every unit in use with its load, sorted by worker then rank. O(units). Allocates. */
  units(): UnitInfo[];
  /** Frees the native memory now. Later calls throw ERR_CLOSED. */
  close(): void;
}

// ---- cache_aware tree (native/binding/text_tree_binding.cc over native/core/text_tree.h) ----

/** SGLang's cache_aware approximate tree: a radix tree over request text (UTF-8 bytes) whose
 *  nodes record which tenants (uint32 ids) were sent that prefix and when (one logical tick
 *  per insert). Sizes are bytes per tenant. src/sgl_router/text_tree.ts wraps it (string
 *  tenants) and holds the TypeScript twin it is tested against. Bad arguments throw
 *  ERR_INVALID_ARG. Freed by the garbage collector. */
export class TextTree {
  constructor();
  /** Records `text` under `tenant`, refreshing its last use along the path. O(bytes). */
  insert(text: string, tenant: number): void;
  /** The longest prefix of `text` some tenant holds: writes [matched bytes, tenant that used
   *  it last or -1, text bytes] into `out` (length >= 3) and returns the matched bytes. O(bytes). */
  prefixMatch(text: string, out: Float64Array): number;
  /** Bytes the tenant holds (0 if unknown). O(1). */
  tenantSize(tenant: number): number;
  /** Forgets the tenant. O(its nodes). */
  removeTenant(tenant: number): void;
  /** Trims each tenant over maxSize bytes, least recently used leaves first, until it fits. */
  evict(maxSize: number): void;
  /** Every prefix the tenant holds with its last use (tests only; O(size^2) bytes). */
  dump(tenant: number): [string, number][];
  /** Nodes in the tree. */
  readonly nodeCount: number;
}

// ---- Transfer coordinator (native/binding/transfer_coordinator_binding.cc over native/core/transfer_coordinator.h) ----

/** The state of a prefill/decode room. Finished and Failed rooms are freed at once (state()
 *  then says -1); TimedOut is only reported by poll(). */
export type RoomState = 0 | 1 | 2 | 3 | 4 | 5;
export declare const RoomState: {
  readonly Dispatched: 0;
  readonly PrefillDone: 1;
  readonly FirstDecodeToken: 2;
  readonly Finished: 3;
  readonly Failed: 4;
  readonly TimedOut: 5;
};
/** What happened to a room's legs (advance's `ev`). */
export type RoomEvent = 0 | 1 | 2 | 3;
export declare const RoomEvent: {
  /** The prefill leg finished (its KV is ready to transfer). */
  readonly PrefillDone: 0;
  /** The decode leg produced its first token (the transfer completed). */
  readonly FirstDecodeToken: 1;
  readonly Finished: 2;
  readonly Failed: 3;
};

export interface TransferCoordinatorOptions {
  /** Max time in Dispatched (waiting for the prefill leg to finish), ms; 0 = no deadline. Number in [0, 2^40]. */
  dispatchedTimeoutMs: number;
  /** Max time in PrefillDone (KV transfer, waiting for the decode leg's first token); 0 = none. */
  prefillDoneTimeoutMs: number;
  /** Max time in FirstDecodeToken until Finished; 0 = none. */
  decodeTimeoutMs: number;
  /** Rooms are drawn uniformly in [1, 2^roomBits); integer in [8, 63], default 63 (SGLang's
   *  bootstrap_room); 31 for SGLang's gRPC, whose room is an int32. */
  roomBits?: number;
  /** Timer-wheel granularity in ms, in [1, 60000], default 10. Only the cost of poll depends on it,
   *  never which rooms expire. */
  tickMs?: number;
  /** Seed of the room draws (SplitMix64; the top roomBits bits of each draw, redrawn when 0 or
   *  in flight), an integer in [0, 2^53). Default: random. */
  seed?: number;
}

export interface TransferPairStats {
  /** Handoffs where PrefillDone came before FirstDecodeToken. */
  handoffs: number;
  /** Mean and EWMA (alpha 0.2, seeded by the first gap) of the PrefillDone -> FirstDecodeToken gap, ms
   *  (a clock that stepped back counts 0). */
  gapMsMean: number;
  gapMsEwma: number;
  /** EWMA (alpha 0.2) of promptTokens / max(gap, 1 ms): the transfer rate the gap implies. */
  tokensPerMs: number;
}

/**
 * The bookkeeping of prefill/decode handoffs: allocates each disaggregated request's
 * bootstrap room, runs its state machine, and times each state out.
 *
 * Transitions (advance; anything else returns -2 and changes nothing):
 *   Dispatched       --PrefillDone-->      PrefillDone
 *   Dispatched       --FirstDecodeToken--> FirstDecodeToken  (the prefill's answer comes late)
 *   PrefillDone      --FirstDecodeToken--> FirstDecodeToken  (a handoff: pair stats updated)
 *   FirstDecodeToken --PrefillDone-->      FirstDecodeToken  (that late answer: 0, no change)
 *   any state        --Finished / Failed--> freed
 * Entering a state sets the room's deadline to nowMs + that state's timeout (none when 0);
 * poll(nowMs) frees every room whose deadline is <= nowMs. A room is freed exactly once (by
 * Finished, Failed or poll); afterwards it is unknown (-1) and may be drawn again.
 *
 * Clock: every nowMs is the caller's clock in ms (e.g. performance.now()), a number in
 * [0, 2^53), fractions allowed; pass one clock, normally non-decreasing.
 * Thread and cost: synchronous on the calling thread, nothing in the background, no timers.
 * open, advance, state: O(1) (open redraws on a collision: inFlight / (2^roomBits - 1 -
 * inFlight) extra draws expected); a room lifecycle takes ~130 ns in C++, the N-API calls
 * more. poll: O(expired + ticks since the last poll, at most one wheel revolution; plus the
 * rooms due later in the current tick, and rooms due more than a revolution ahead once per
 * revolution), ~4 ns in C++ when nothing is due; it allocates the returned array and a pair
 * per expired room. Memory: about 80 bytes per room in flight at the high-water
 * mark (records are reused, bench/README.md), a wheel of 4 bytes per slot (enough slots for
 * the longest timeout, 64 to 65536), and the pair stats. Freed by the garbage collector.
 * Bad arguments throw ERR_INVALID_ARG (a non-bigint room, a negative or non-integer worker
 * id, roomBits outside [8, 63], an unknown option).
 */
export class TransferCoordinator {
  constructor(options: TransferCoordinatorOptions);
  /** Opens a room no room in flight holds, in Dispatched. prefill, decode: worker ids (uint32);
   *  promptTokens: uint32. Throws ERR_LIMIT when all 2^roomBits - 1 rooms are in flight. */
  open(prefill: number, decode: number, promptTokens: number, nowMs: number): bigint;
  /** 0 on success; -1 unknown room (never opened, or already freed); -2 the event is not
   *  allowed in the room's state. `ev` is a RoomEvent (else ERR_INVALID_ARG). */
  advance(room: bigint, ev: RoomEvent, nowMs: number): 0 | -1 | -2;
  /** Frees the rooms whose current state's deadline is <= nowMs and returns them as
   *  [room, the state it timed out in] pairs, in no particular order ([] when none). */
  poll(nowMs: number): [bigint, RoomState][];
  /** The room's RoomState, or -1 if it is not in flight. */
  state(room: bigint): RoomState | -1;
  /** Rooms in flight. */
  readonly inFlight: number;
  /** The pair's handoff statistics, or null before its first handoff (or after forgetWorker). */
  pairStats(prefill: number, decode: number): TransferPairStats | null;
  /** Drops the stats of every pair naming the worker (its rooms in flight stay until they end). O(pairs). */
  forgetWorker(id: number): void;
  /** Bytes held by the coordinator, approximately (records, room index, wheel, pair stats). */
  memoryBytes(): number;
}

// ---- Byte-level BPE (native/binding/bpe_binding.cc over native/core/bpe.h) ----

export interface BpeEncoderOptions {
  /** Tokens by id, in GPT-2's byte-level alphabet, joined by "\n" ("" for an unused id). */
  vocab: string;
  /** Merges by rank as "left right", joined by "\n". */
  merges: string;
  /** Added tokens, split off the text (leftmost, longest) before the pre-tokenizer. */
  added: { content: string; id: number }[];
  /** The pre-tokenizer regex, exactly as tokenizer.json writes it: Qwen2's, Llama-3's or
   *  GPT-2's (ByteLevel use_regex); anything else throws ERR_INVALID_ARG. */
  pattern: string;
  /** BPE ignore_merges: a pre-tokenized piece that is itself a token is that token. */
  ignoreMerges?: boolean;
}

/** A byte-level BPE encoder (HF tokenizers' BPE model with a Split/ByteLevel pre-tokenizer),
 *  without normalization: the caller normalizes (NFC) each text between added tokens.
 *  Construction: ~0.3 s for Qwen3's 151K-token vocabulary (once per process), a few MB kept
 *  (the merge table); throws ERR_INVALID_ARG for an unsupported pattern or a vocabulary that is not byte-level.
 *  Lifetime: the JS object's; it keeps a word cache (≤ ~8 MB, cleared whole when full).
 *  Thread: synchronous on the calling thread; an instance is not shared between threads. */
export class BpeEncoder {
  constructor(options: BpeEncoderOptions);
  /** The ids of `text` (no special tokens added). With splitAdded (default true) added tokens
   *  in the text become their ids; with false the text is a single segment. Lone surrogates
   *  read as U+FFFD. Throws ERR_INVALID_ARG if text is not a string. Cost: O(text), ~0.2-0.3 ms
   *  for a fresh 4K-token prompt (bench/README.md, "Preprocessing"); blocks the calling thread
   *  for all of it. */
  encode(text: string, splitAdded?: boolean): Uint32Array;
  /** Words held by the word cache (tests and metrics). */
  readonly cachedWords: number;
}
