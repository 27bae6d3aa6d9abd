// The engine's own load, per dp rank, read periodically (reference/sglang.md §1.7-1.8):
// GET /v1/loads (newest), else /get_load (deprecated, older engines), else the Prometheus
// /metrics (`sglang:` or `sglang_` names). The first source that answers is kept.

import type { ModelCard } from '../engine/model_card.js';
import { finiteNumber as n, isJsonObject } from '../json.js';
import type { RankLoad } from '../transport/frames.js';
import type { GetJson } from '../engine/model_card.js';

type Capacity = Pick<ModelCard, 'pageSize' | 'maxTotalNumTokens' | 'dpSize'>;

interface Raw {
  dpRank: number;
  running: number;
  queued: number;
  usedTokens: number;
  totalTokens: number | null;
  tokenUsage: number | null;
}

function finish(raw: Raw[], cap: Capacity): RankLoad[] {
  return raw
    .sort((a, b) => a.dpRank - b.dpRank)
    .map((r) => {
      const total = r.totalTokens ?? cap.maxTotalNumTokens;
      return {
        dpRank: r.dpRank,
        running: r.running,
        queued: r.queued,
        kvUsedTokens: r.usedTokens,
        kvTotalTokens: total,
        kvUsedBlocks: Math.ceil(r.usedTokens / cap.pageSize),
        kvTotalBlocks: Math.ceil(total / cap.pageSize),
        tokenUsage: r.tokenUsage ?? (total > 0 ? r.usedTokens / total : 0),
      };
    });
}

// /v1/loads: {loads: [{dp_rank, num_running_reqs, num_waiting_reqs, num_used_tokens, max_total_num_tokens, token_usage}]}
export function parseV1Loads(body: unknown, cap: Capacity): RankLoad[] | null {
  if (!isJsonObject(body) || !Array.isArray(body['loads'])) return null;
  const raw: Raw[] = [];
  for (const l of body['loads']) {
    if (!isJsonObject(l)) return null;
    const running = n(l, 'num_running_reqs');
    const queued = n(l, 'num_waiting_reqs');
    const used = n(l, 'num_used_tokens');
    if (running === null || queued === null || used === null) return null;
    raw.push({ dpRank: n(l, 'dp_rank') ?? 0, running, queued, usedTokens: used, totalTokens: n(l, 'max_total_num_tokens'), tokenUsage: n(l, 'token_usage') });
  }
  return raw.length ? finish(raw, cap) : null;
}

// /get_load: [{dp_rank, num_reqs (running + waiting), num_waiting_reqs, num_tokens, num_pending_tokens}]
export function parseGetLoad(body: unknown, cap: Capacity): RankLoad[] | null {
  if (!Array.isArray(body)) return null;
  const raw: Raw[] = [];
  for (const l of body) {
    if (!isJsonObject(l)) return null;
    const reqs = n(l, 'num_reqs');
    const waiting = n(l, 'num_waiting_reqs');
    const tokens = n(l, 'num_tokens');
    if (reqs === null || waiting === null || tokens === null) return null;
    const used = tokens - (n(l, 'num_pending_tokens') ?? 0);
    raw.push({ dpRank: n(l, 'dp_rank') ?? 0, running: reqs - waiting, queued: waiting, usedTokens: used, totalTokens: null, tokenUsage: null });
  }
  return raw.length ? finish(raw, cap) : null;
}

// Prometheus text: sglang:num_running_reqs{...,dp_rank="0"} 3 (or sglang_num_running_reqs).
export function parseMetrics(text: unknown, cap: Capacity): RankLoad[] | null {
  if (typeof text !== 'string') return null;
  const byRank = new Map<number, Record<string, number>>();
  const line = /^sglang[:_](num_running_reqs|num_queue_reqs|num_used_tokens|token_usage|max_total_num_tokens)(\{[^}]*\})?\s+(\S+)/;
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const rank = /dp_rank="(\d+)"/.exec(m[2] ?? '');
    const r = rank ? Number(rank[1]) : 0;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    const rec = byRank.get(r) ?? {};
    // Several series per rank (e.g. one per TP rank) report the same scheduler: keep one.
    rec[m[1]!] ??= v;
    byRank.set(r, rec);
  }
  const raw: Raw[] = [];
  for (const [dpRank, m] of byRank) {
    if (m['num_running_reqs'] === undefined || m['num_queue_reqs'] === undefined || m['num_used_tokens'] === undefined) continue;
    raw.push({
      dpRank,
      running: m['num_running_reqs'],
      queued: m['num_queue_reqs'],
      usedTokens: m['num_used_tokens'],
      totalTokens: m['max_total_num_tokens'] ?? null,
      tokenUsage: m['token_usage'] ?? null,
    });
  }
  return raw.length ? finish(raw, cap) : null;
}

const SOURCES = [
  { path: '/v1/loads?include=core', parse: parseV1Loads },
  { path: '/get_load', parse: parseGetLoad },
  { path: '/metrics', parse: parseMetrics },
] as const;

export class LoadPoller {
  private source: (typeof SOURCES)[number] | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last = '';

  constructor(
    private readonly get: GetJson,
    private readonly cap: Capacity,
    // Called with every reading that differs from the previous one.
    private readonly onChange: (ranks: RankLoad[]) => void,
    private readonly onError: (message: string) => void,
  ) {}

  // One reading, from the remembered source or the first that answers.
  async poll(): Promise<RankLoad[] | null> {
    for (const s of this.source ? [this.source] : SOURCES) {
      try {
        const r = await this.get(s.path);
        const ranks = r.status === 200 ? s.parse(r.body, this.cap) : null;
        if (ranks) {
          this.source = s;
          return ranks;
        }
      } catch {
        /* try the next source */
      }
    }
    this.source = null;
    return null;
  }

  start(intervalMs: number): void {
    let failing = false;
    const tick = async () => {
      const ranks = await this.poll();
      if (!ranks) {
        if (!failing) this.onError('engine reports no load on /v1/loads, /get_load or /metrics');
        failing = true;
      } else {
        failing = false;
        const key = JSON.stringify(ranks.map(({ dpRank, running, queued, kvUsedTokens }) => [dpRank, running, queued, kvUsedTokens]));
        if (key !== this.last) {
          this.last = key;
          this.onChange(ranks);
        }
      }
      if (this.timer) this.timer = setTimeout(tick, intervalMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
