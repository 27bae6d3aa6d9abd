// `--policy kv`: exact prefix routing on the engines' own KV events. Each worker's
// /server_info `kv_events` descriptor names its ZMQ publishers (one per DP rank); the router
// subscribes to each (src/transport's EngineKvSubscriber, gap-free with replay) and applies
// the batches to the native KvRouter's index. The decision is SGLang's cache_aware with the
// engines' truth in place of the guess (as SMG's event-driven mode): out of balance, the least
// loaded worker; else the worker whose engine holds the longest cached prefix, when that is
// over --cache-threshold of the prompt (ties: the less loaded); else cache_aware's own tree,
// which knows the prompts routed in the last moments, before their events arrive.
// Prompts are routed on token ids: input_ids as given; text tokenized
// the way the engine does (the model's tokenizer; byte ids for a kvgate mocker, which says
// so in /server_info).
// Workers without events (or with another page size than the first one's) are routed by
// cache_aware: whenever a request's candidates include such a worker, cache_aware decides.
// A prompt that shares a long prefix with another still being prefilled on the chosen worker
// waits for that prefill's blocks to be stored before it is sent (inflight_prefills.ts).

import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import { addon, type KvRouter } from '../native/addon.js';
import type { Logger } from '../observability/log.js';
import type { Tokenizer } from '../preprocess/tokenizer.js';
import { EngineKvSubscriber } from '../transport/kv_subscriber.js';
import { InflightPrefills, StoredDepth, type Prefill } from '../router/inflight_prefills.js';
import type { CacheAwarePolicy } from './policies.js';
import type { InferenceRoute } from './request_body.js';
import type { Worker } from './workers.js';

interface Evented {
  num: number;
  subscribers: EngineKvSubscriber[];
  // Tokenizes text as UTF-8 bytes (a kvgate mocker) rather than with the model's tokenizer.
  byteTokens: boolean;
}

export interface KvPick {
  worker: Worker;
  // Cached prompt blocks the engine's events showed on the worker (null: cache_aware decided).
  overlapBlocks: number | null;
}

export class KvPolicy {
  private router: KvRouter | null = null;
  private readonly evented = new Map<string, Evented>(); // by worker id
  private readonly byNum = new Map<number, string>();
  private nextNum = 1;
  private units = 0;
  private scratch = { workers: new Uint32Array(0), ranks: new Uint32Array(0), overlap: new Uint32Array(0), costs: new Float64Array(0) };
  readonly prefills = new InflightPrefills();
  private readonly stored = new StoredDepth();

  constructor(
    readonly fallback: CacheAwarePolicy,
    private readonly tokenizer: () => Tokenizer,
    private readonly log: Logger,
  ) {}

  // Subscribes to a registered worker's events when its /server_info describes them.
  async attach(w: Worker, serverInfo: unknown): Promise<boolean> {
    if (!isJsonObject(serverInfo) || !isJsonObject(serverInfo['kv_events'])) return false;
    const d = serverInfo['kv_events'];
    const blockSize = typeof d['block_size'] === 'number' ? d['block_size'] : null;
    const base = typeof d['endpoint_port_base'] === 'number' ? d['endpoint_port_base'] : null;
    if (d['publisher'] !== 'zmq' || blockSize === null || base === null) return false;
    if (this.router === null) this.router = new addon.KvRouter({ blockSize, policy: 'kv' });
    if (this.router.blockSize !== blockSize) {
      this.log.warn('kv policy: worker page size differs from the first worker\'s; routed by cache_aware', { worker: w.id, blockSize, routerBlockSize: this.router.blockSize });
      return false;
    }
    const url = new URL(w.baseUrl);
    const advertised = typeof d['endpoint_host'] === 'string' ? d['endpoint_host'] : '*';
    const host = ['*', '0.0.0.0', '::', ''].includes(advertised) ? url.hostname : advertised;
    const replayBase = typeof d['replay_endpoint_port_base'] === 'number' ? d['replay_endpoint_port_base'] : null;
    const dpSize = typeof d['dp_size'] === 'number' ? d['dp_size'] : 1;
    // A --dp-aware target is one rank. Otherwise the server is one target whose ranks are
    // units of the router: the request goes to the server and its own DP balancer picks the rank.
    const ranks = w.dpRank !== null ? [w.dpRank] : Array.from({ length: dpSize }, (_, r) => r);
    const num = this.nextNum++;
    const router = this.router;
    const subscribers = ranks.map(
      (rank) =>
        new EngineKvSubscriber({
          dpRank: rank,
          endpoint: `tcp://${host}:${base + rank}`,
          replayEndpoint: replayBase === null ? null : `tcp://${host}:${replayBase + rank}`,
          topic: typeof d['topic'] === 'string' ? d['topic'] : '',
          onBatch: (b) => {
            try {
              router.applyEvents(num, rank, b.payload);
              this.prefills.check(num, (hashes) => this.storedOn(num, hashes));
            } catch (err) {
              this.log.warn('kv policy: malformed KV-event batch', { worker: w.id, error: (err as Error).message });
            }
          },
          onHistoryLost: () => {
            router.clearWorker(num);
            this.prefills.dropWorker(num);
          },
          log: this.log,
        }),
    );
    for (const s of subscribers) {
      await s.open();
      s.start();
    }
    for (const rank of ranks) router.addWorker(num, rank);
    this.units += ranks.length;
    const mocker = isJsonObject(serverInfo['mocker']) && serverInfo['mocker']['text_tokenization'] === 'utf8-bytes';
    this.evented.set(w.id, { num, subscribers, byteTokens: mocker });
    this.byNum.set(num, w.id);
    this.log.info('kv policy: subscribed to KV events', { worker: w.id, ranks, blockSize });
    return true;
  }

  removed(w: Worker): void {
    const e = this.evented.get(w.id);
    this.fallback.removed(w);
    if (!e) return;
    for (const s of e.subscribers) s.close();
    this.prefills.dropWorker(e.num);
    this.router?.removeWorker(e.num);
    this.units -= e.subscribers.length;
    this.evented.delete(w.id);
    this.byNum.delete(e.num);
  }

  // The prompt's token ids: input_ids as sent; text tokenized as the workers do. null when
  // the request has neither (chat: the engine renders the template; cache_aware decides).
  async tokens(route: InferenceRoute, body: JsonObject, text: string, workers: readonly Worker[]): Promise<Uint32Array | null> {
    const ids = route === '/generate' ? body['input_ids'] : route === '/v1/completions' && Array.isArray(body['prompt']) ? body['prompt'] : null;
    const first = Array.isArray(ids) && Array.isArray(ids[0]) ? ids[0] : ids;
    if (Array.isArray(first) && first.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) return Uint32Array.from(first as number[]);
    if (route === '/v1/chat/completions' || text === '') return null;
    const bytes = workers.some((w) => this.evented.get(w.id)?.byteTokens);
    if (bytes) return Uint32Array.from(Buffer.from(text, 'utf8'));
    try {
      return Uint32Array.from(await this.tokenizer().encode(text, false));
    } catch (err) {
      throw err instanceof KvgateError ? err : new KvgateError('internal_error', `tokenizing the prompt failed: ${(err as Error).message}`);
    }
  }

  pick(workers: readonly Worker[], text: string, tokens: Uint32Array | null): KvPick {
    const router = this.router;
    const allEvented = workers.every((w) => this.evented.has(w.id));
    if (router === null || tokens === null || tokens.length === 0 || !allEvented || this.fallback.imbalanced(workers)) return this.byCacheAware(workers, text);
    const { workers: ws, overlap } = this.sized();
    const n = router.score(tokens, ws, this.scratch.ranks, overlap, this.scratch.costs);
    let best: Worker | null = null;
    let bestOverlap = 0;
    for (let i = 0; i < n; i++) {
      const id = this.byNum.get(ws[i]!);
      const w = id === undefined ? undefined : workers.find((x) => x.id === id);
      if (!w) continue; // out of rotation
      const o = overlap[i]!;
      if (o > bestOverlap || (o === bestOverlap && best !== null && w.load < best.load)) [best, bestOverlap] = [w, o];
    }
    if (best === null || (bestOverlap * router.blockSize) / tokens.length <= this.fallback.cacheThreshold) return this.byCacheAware(workers, text);
    // cache_aware's tree learns the text too: the next requests of this prefix find it before its events arrive.
    if (text !== '') this.fallback.tree.insert(text, best.id);
    return { worker: best, overlapBlocks: bestOverlap };
  }

  // Local hashes of the prompt's full blocks (null: none, or no evented worker yet).
  blocks(tokens: Uint32Array | null): BigUint64Array | null {
    if (this.router === null || tokens === null) return null;
    const h = addon.blockHashes(tokens, this.router.blockSize);
    return h.length > 0 ? h : null;
  }

  // The prefill on the worker this prompt should wait for: one sharing more of its blocks than
  // the worker's events show cached, by over --cache-threshold of the prompt. null: send now.
  blockingPrefill(w: Worker, hashes: BigUint64Array, promptTokens: number): Prefill | null {
    const e = this.evented.get(w.id);
    if (!e || this.router === null) return null;
    const minBlocks = Math.floor((this.fallback.cacheThreshold * promptTokens) / this.router.blockSize);
    return this.prefills.blocking(e.num, hashes, () => this.storedOn(e.num, hashes), minBlocks);
  }

  // Records a prompt sent to the worker as prefilling until its events store it; call the
  // returned function when its request ends (before the worker's load counts it).
  sent(w: Worker, hashes: BigUint64Array | null): () => void {
    const e = this.evented.get(w.id);
    if (!e || hashes === null || this.storedOn(e.num, hashes) >= hashes.length) return () => undefined;
    return this.prefills.add(e.num, hashes, w.load === 0);
  }

  // Leading blocks of the prompt the worker's events show stored (the most of its ranks).
  private storedOn(num: number, hashes: BigUint64Array): number {
    return this.router === null ? 0 : this.stored.of(this.router, hashes, num, this.units);
  }

  private sized(): KvPolicy['scratch'] {
    if (this.scratch.workers.length < this.units) {
      const n = this.units;
      this.scratch = { workers: new Uint32Array(n), ranks: new Uint32Array(n), overlap: new Uint32Array(n), costs: new Float64Array(n) };
    }
    return this.scratch;
  }

  private byCacheAware(workers: readonly Worker[], text: string): KvPick {
    return { worker: this.fallback.select(workers, text), overlapBlocks: null };
  }

  close(): void {
    for (const e of this.evented.values()) {
      for (const s of e.subscribers) s.close();
      this.prefills.dropWorker(e.num);
    }
    this.evented.clear();
    this.router?.close();
    this.router = null;
  }
}
