// The prefill engine's bootstrap server with SGLang's routes (CommonKVBootstrapServer,
// python/sglang/srt/disaggregation/common/conn.py; reference/sglang.md §3.2):
//   PUT /route             a prefill rank registers itself
//   GET /route             decode asks for the prefill layout (all -1) or one rank's address
//   POST /register_dp_rank which DP rank took a room, when prefill does not follow the room
//   POST /query_dp_ranks   decode looks rooms up
//   GET /health            "OK"
// plus the mocker's own KV rendezvous (POST /kvgate/kv_transfer, see disagg.ts), served on the
// address the ranks register (rank_ip:rank_port), as SGLang's ranks serve their ZMQ endpoints.

import { MockerApp, readBody, sendJson, sendText, type Exchange } from './http_util.js';

export interface RankRegistration {
  attn_tp_size: number;
  attn_tp_rank: number;
  attn_cp_size: number;
  attn_cp_rank: number;
  attn_dp_size: number;
  attn_dp_rank: number;
  pp_size: number;
  pp_rank: number;
  system_dp_size: number;
  system_dp_rank: number;
  rank_ip: string;
  rank_port: number;
  page_size: number;
  kv_cache_dtype: string;
  prefill_http_port?: number;
  load_balance_method?: string;
}

interface Reply {
  status: number;
  json?: unknown;
  text?: string;
}

const ROOM_ENTRY_TTL_MS = 120_000; // SGLANG_DISAGGREGATION_BOOTSTRAP_ENTRY_CLEANUP_INTERVAL

// The integer values of `key` in a JSON text, digit-exact (rooms are 63-bit).
function rawInts(raw: string, key: string): bigint[] | null {
  const m = new RegExp(`(?<!\\\\)"${key}"\\s*:\\s*(\\[[^\\]]*\\]|-?\\d+)`).exec(raw);
  if (!m) return null;
  return (m[1]!.match(/-?\d+/g) ?? []).map((d) => BigInt(d));
}

export class BootstrapTable {
  private attnTpSize: number | null = null;
  private attnCpSize: number | null = null;
  private dpSize: number | null = null;
  private ppSize: number | null = null;
  private pageSize: number | null = null;
  private kvCacheDtype: string | null = null;
  private prefillHttpPort: number | null = null;
  private followRoom: boolean | null = null;
  private registered = 0;
  private readonly ports = new Map<string, { rank_ip: string; rank_port: number }>();
  private readonly roomToDpRank = new Map<string, { dpRank: number; at: number }>();

  private ready(): boolean {
    if (this.attnTpSize === null || this.attnCpSize === null || this.ppSize === null || this.dpSize === null) return false;
    return this.registered >= this.dpSize * this.attnCpSize * this.attnTpSize * this.ppSize;
  }

  putRoute(d: RankRegistration): Reply {
    this.attnTpSize ??= d.attn_tp_size;
    this.attnCpSize ??= d.attn_cp_size;
    this.dpSize ??= d.system_dp_size === 1 ? d.attn_dp_size : d.system_dp_size;
    this.ppSize ??= d.pp_size;
    this.pageSize ??= d.page_size;
    this.kvCacheDtype ??= d.kv_cache_dtype;
    if (d.prefill_http_port !== undefined) this.prefillHttpPort ??= d.prefill_http_port;
    this.followRoom ??= (d.load_balance_method ?? 'follow_bootstrap_room') === 'follow_bootstrap_room';
    const group = d.system_dp_size === 1 ? d.attn_dp_rank : d.system_dp_rank;
    this.ports.set(`${group}/${d.attn_cp_rank}/${d.attn_tp_rank}/${d.pp_rank}`, { rank_ip: String(d.rank_ip), rank_port: Number(d.rank_port) });
    this.registered++;
    return { status: 200, text: 'OK' };
  }

  getRoute(q: URLSearchParams): Reply {
    const dp = q.get('prefill_dp_rank');
    const cp = q.get('prefill_cp_rank');
    const tp = q.get('target_tp_rank');
    const pp = q.get('target_pp_rank');
    if (!dp || !cp || !tp || !pp) return { status: 400, text: 'Missing inputs for bootstrap server.' };
    const notReady: Reply = { status: 503, text: `Prefill server not fully registered yet (${this.registered} workers registered).` };
    if (!this.ready()) return notReady;
    if ([dp, cp, tp, pp].every((v) => Number(v) === -1)) {
      return {
        status: 200,
        json: {
          attn_tp_size: this.attnTpSize,
          attn_cp_size: this.attnCpSize,
          dp_size: this.dpSize,
          pp_size: this.ppSize,
          page_size: this.pageSize,
          kv_cache_dtype: this.kvCacheDtype,
          follow_bootstrap_room: this.followRoom ?? true,
          enable_dsa_cache_layer_split: false,
          decode_allocation_policy: 'early',
          enable_kv_cache_sharding: false,
          prefill_http_port: this.prefillHttpPort,
          target_tp_rank: null,
          target_tp_ranks: null,
          target_cp_ranks: null,
          target_pp_ranks: null,
          required_dst_info_num: null,
          required_prefill_response_num: null,
        },
      };
    }
    const info = this.ports.get(`${Number(dp)}/${Number(cp)}/${Number(tp)}/${Number(pp)}`);
    if (!info) return { status: 404, text: `Bootstrap info not found for dp_rank=${dp} cp_rank=${cp} tp_rank=${tp} pp_rank=${pp}` };
    return { status: 200, json: info };
  }

  registerDpRank(room: bigint, dpRank: number): void {
    this.roomToDpRank.set(room.toString(), { dpRank, at: Date.now() });
  }

  queryDpRanks(rooms: bigint[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of rooms) {
      const e = this.roomToDpRank.get(r.toString());
      if (e) out[r.toString()] = e.dpRank;
    }
    return out;
  }

  expire(now = Date.now()): void {
    for (const [room, e] of this.roomToDpRank) if (now - e.at > ROOM_ENTRY_TTL_MS) this.roomToDpRank.delete(room);
  }
}

export type TransferHandler = (ex: Exchange, body: string) => void;

export interface BootstrapServer {
  port: number;
  close(): void;
}

function answer(ex: Exchange, r: Reply): void {
  if (r.json !== undefined) sendJson(ex, r.status, r.json);
  else sendText(ex, r.status, r.text ?? '');
}

export async function startBootstrapServer(host: string, port: number, table: BootstrapTable, onTransfer: TransferHandler): Promise<BootstrapServer> {
  const app = new MockerApp(
    (ex) => sendText(ex, 405, 'Method not allowed'),
    (ex) => sendText(ex, 404, '404: Not Found'),
  );
  const withBody = (ex: Exchange, handle: (ex: Exchange, body: string) => void) => {
    void readBody(ex).then((body) => {
      if (body !== null) handle(ex, body);
    });
  };
  const badJson = (ex: Exchange, err: unknown) => sendText(ex, 400, `Invalid request body: ${(err as Error).message}`);
  app.put('/route', (ex) =>
    withBody(ex, (ex, body) => {
      try {
        const d = JSON.parse(body) as RankRegistration;
        for (const k of ['attn_tp_size', 'attn_tp_rank', 'attn_cp_size', 'attn_cp_rank', 'attn_dp_size', 'attn_dp_rank', 'pp_size', 'pp_rank', 'system_dp_size', 'system_dp_rank', 'rank_ip', 'rank_port', 'page_size', 'kv_cache_dtype']) {
          if (!(k in d)) throw new Error(`missing key '${k}'`);
        }
        answer(ex, table.putRoute(d));
      } catch (err) {
        badJson(ex, err);
      }
    }),
  );
  app.get('/route', (ex) => answer(ex, table.getRoute(new URLSearchParams(ex.wire.query))));
  app.post('/register_dp_rank', (ex) =>
    withBody(ex, (ex, body) => {
      const room = rawInts(body, 'bootstrap_room');
      const dp = rawInts(body, 'dp_rank');
      if (!room || room.length !== 1 || !dp || dp.length !== 1) return badJson(ex, new Error('expected {"bootstrap_room": int, "dp_rank": int}'));
      table.registerDpRank(room[0]!, Number(dp[0]!));
      sendText(ex, 200, 'OK');
    }),
  );
  app.post('/query_dp_ranks', (ex) =>
    withBody(ex, (ex, body) => {
      const rooms = rawInts(body, 'bootstrap_rooms');
      if (!rooms) return badJson(ex, new Error('expected {"bootstrap_rooms": [int, ...]}'));
      sendJson(ex, 200, table.queryDpRanks(rooms));
    }),
  );
  app.get('/health', (ex) => sendText(ex, 200, 'OK'));
  app.post('/kvgate/kv_transfer', (ex) => withBody(ex, onTransfer));
  const bound = await app.listen(host, port);
  const sweep = setInterval(() => table.expire(), ROOM_ENTRY_TTL_MS);
  sweep.unref();
  return {
    port: bound,
    close() {
      clearInterval(sweep);
      app.close();
      app.closeConnections();
    },
  };
}
