// `--policy kv`: exact prefix routing on the engines' own KV events. Each worker's
// /server_info `kv_events` descriptor names its ZMQ publishers (one per DP rank); the router
// subscribes to each (src/transport's EngineKvSubscriber, gap-free with replay) and applies
// the batches to the native KvRouter, which scores candidates on cached overlap and active
// load (Dynamo's cost). Prompts are routed on token ids: input_ids as given; text tokenized
// the way the engine does (the model's tokenizer; byte ids for a kvgate mocker, which says
// so in /server_info).
// Workers without events (or with another page size than the first one's) are routed by
// cache_aware: whenever a request's candidates include such a worker, cache_aware decides.

import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import { addon, type KvRouter } from '../native/addon.js';
import type { Logger } from '../observability/log.js';
import type { Tokenizer } from '../preprocess/tokenizer.js';
import { EngineKvSubscriber } from '../transport/kv_subscriber.js';
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
  release(): void;
  // Cached prompt blocks the router expected on the worker (null: cache_aware decided).
  overlapBlocks: number | null;
}

export class KvPolicy {
  private router: KvRouter | null = null;
  private readonly evented = new Map<string, Evented>(); // by worker id
  private readonly byNum = new Map<number, string>();
  private nextNum = 1;
  private nextRequest = 1;
  private readonly out = new Uint32Array(3);

  constructor(
    readonly fallback: CacheAwarePolicy,
    private readonly tokenizer: () => Tokenizer,
    private readonly log: Logger,
    private readonly overlapWeight = 1,
  ) {}

  // Subscribes to a registered worker's events when its /server_info describes them.
  async attach(w: Worker, serverInfo: unknown): Promise<boolean> {
    if (!isJsonObject(serverInfo) || !isJsonObject(serverInfo['kv_events'])) return false;
    const d = serverInfo['kv_events'];
    const blockSize = typeof d['block_size'] === 'number' ? d['block_size'] : null;
    const base = typeof d['endpoint_port_base'] === 'number' ? d['endpoint_port_base'] : null;
    if (d['publisher'] !== 'zmq' || blockSize === null || base === null) return false;
    if (this.router === null) this.router = new addon.KvRouter({ blockSize, policy: 'kv', overlapWeight: this.overlapWeight });
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
            } catch (err) {
              this.log.warn('kv policy: malformed KV-event batch', { worker: w.id, error: (err as Error).message });
            }
          },
          onHistoryLost: () => router.clearWorker(num),
          log: this.log,
        }),
    );
    for (const s of subscribers) {
      await s.open();
      s.start();
    }
    for (const rank of ranks) router.addWorker(num, rank);
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
    this.router?.removeWorker(e.num);
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
    if (router === null || tokens === null || tokens.length === 0 || !allEvented) return this.byCacheAware(workers, text);
    const id = this.nextRequest++;
    if (!router.route(tokens, id, this.out)) return this.byCacheAware(workers, text);
    const wid = this.byNum.get(this.out[0]!);
    const worker = workers.find((w) => w.id === wid);
    if (!worker) {
      // The router's choice is out of rotation (unhealthy, circuit open): cache_aware instead.
      router.free(id);
      return this.byCacheAware(workers, text);
    }
    // cache_aware's tree still learns the text, so a later fallback starts informed.
    if (text !== '') this.fallback.tree.insert(text, worker.id);
    return { worker, overlapBlocks: this.out[2]!, release: () => void router.free(id) };
  }

  private byCacheAware(workers: readonly Worker[], text: string): KvPick {
    return { worker: this.fallback.select(workers, text), overlapBlocks: null, release: () => undefined };
  }

  close(): void {
    for (const e of this.evented.values()) for (const s of e.subscribers) s.close();
    this.evented.clear();
    this.router?.close();
    this.router = null;
  }
}
