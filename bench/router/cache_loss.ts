// bench:cache-loss: where the prefix-cache hits a router misses on bench:sgl-router's
// shared-prefix workload go. Same mockers, workload and routers as bench:sgl-router; in
// addition it subscribes to every mocker's KV events (ZMQ) and reads, per request, which
// worker served it (the first stored page chain that holds its "Question i from team g"
// text) and what that worker's cache held of the group's system prompt just before. Every
// prompt token the request did not find cached, short of the best possible (the whole shared
// prefix, page-aligned, for all but each group's first request), is put in one bucket:
//   - group's first: the first request of its group (no router can hit; not a loss);
//   - split: the first request of its group on a worker when the group already had another
//     worker (the router moved the group);
//   - same batch: the worker had been sent the group before but had not finished that prefill
//     (the two were prefilled together: the engine caches a prompt once it is computed);
//   - evicted: the worker had held the whole prefix and evicted (part of) it before this
//     request was admitted (KV capacity);
//   - other: anything else (should be 0).
// Also per run: groups per worker, workers per group, prefix pages evicted, and the kvgate
// router's decision counters.
//
//   npm run bench:cache-loss -- [--concurrency 16,64] [--speedup 0.25] [--only kvgate:kv,kvgate:cache_aware,sglang-router:cache_aware]
//                               [--groups 16] [--per-group 20] [--system-words 150] [--workers 4] [--max-total-tokens 8192] [--kvgate-before DIR]

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Unpackr } from 'msgpackr';
import { Subscriber } from 'zeromq';
import { sglangRouterPython, smgBinary } from '../../test/sgl_router/sglang_router_peer.js';
import { stopAll } from '../gateway/procs.js';
import { sharedPrefixWorkload } from '../http/shared_prefix.js';
import { WORKLOAD_FLAGS, startMockers, startRouter } from './sgl_routers.js';

const { values: flags } = parseArgs({
  options: {
    ...WORKLOAD_FLAGS,
    speedup: { type: 'string', default: '0.25' },
    only: { type: 'string', default: 'kvgate:kv,kvgate:cache_aware,sglang-router:cache_aware' },
    'kvgate-before': { type: 'string', default: '' },
  },
});
const int = (k: keyof typeof flags): number => Number(flags[k]);
const PAGE = 16;
const unpackr = new Unpackr({ int64AsType: 'bigint', useRecords: false, mapsAsObjects: true });

// ---- one mocker's KV events, as a page tree per worker ----

interface Page {
  parent: bigint | null;
  pos: number; // page index in its sequence
  group: number; // the group whose system prompt starts the sequence (-1: unknown)
  text: string; // the page's bytes as latin1
}

interface Batch {
  worker: number;
  events: unknown[];
}

const QUESTION = /Question (\d+) from team (\d+):/;

function eventFields(e: unknown): { type: string; hashes: bigint[]; parent: bigint | null; tokens: number[] } {
  if (Array.isArray(e)) {
    const [type, hashes, parent, tokens] = e as [string, unknown[], unknown, number[]];
    if (type !== 'BlockStored') return { type, hashes: ((hashes ?? []) as bigint[]).map((h) => BigInt(h)), parent: null, tokens: [] };
    return { type, hashes: (hashes ?? []).map((h) => BigInt(h as bigint)), parent: parent == null ? null : BigInt(parent as bigint), tokens: tokens ?? [] };
  }
  const m = e as Record<string, unknown>;
  return { type: String(m['type']), hashes: ((m['block_hashes'] as unknown[]) ?? []).map((h) => BigInt(h as bigint)), parent: m['parent_block_hash'] == null ? null : BigInt(m['parent_block_hash'] as bigint), tokens: (m['token_ids'] as number[]) ?? [] };
}

async function subscribe(worker: number, url: string, onBatch: (b: Batch) => void): Promise<Subscriber> {
  const info = (await (await fetch(`${url}/server_info`)).json()) as { kv_events: { endpoint_port_base: number; topic?: string } };
  const sub = new Subscriber({ receiveHighWaterMark: 1_000_000, linger: 0 });
  sub.connect(`tcp://127.0.0.1:${info.kv_events.endpoint_port_base}`);
  sub.subscribe(info.kv_events.topic ?? '');
  void (async () => {
    try {
      for await (const frames of sub) {
        const payload = frames.at(-1)!;
        const [, events] = unpackr.unpack(payload) as [number, unknown[]];
        onBatch({ worker, events });
      }
    } catch {
      /* closed */
    }
  })();
  return sub;
}

// ---- attribution ----

interface Sent {
  group: number;
  index: number;
  cached: number;
  prompt: number;
}

type Bucket = 'group first' | 'split' | 'same batch' | 'evicted' | 'other';
const BUCKETS: Bucket[] = ['group first', 'split', 'same batch', 'evicted', 'other'];

interface Attribution {
  lost: Record<Bucket, { requests: number; tokens: number }>;
  groupsPerWorker: number[];
  workersPerGroup: number[];
  prefixPagesEvicted: number;
  unplaced: number;
}

// Replays the workers' event streams in order and places each request.
function attribute(batches: Batch[], sent: Map<string, Sent>, prefixPages: number[], workers: number): Attribution {
  const pages: Map<bigint, Page>[] = Array.from({ length: workers }, () => new Map());
  // Per worker and group: prefix pages held now, and whether the whole prefix was ever held.
  const held = Array.from({ length: workers }, () => new Map<number, Set<number>>());
  const everFull = Array.from({ length: workers }, () => new Set<number>());
  // Per worker and group: requests placed there so far.
  const placedOn = Array.from({ length: workers }, () => new Map<number, number>());
  const groupWorkers = new Map<number, Set<number>>();
  const placed = new Set<string>();
  const lost = Object.fromEntries(BUCKETS.map((b) => [b, { requests: 0, tokens: 0 }])) as Attribution['lost'];
  let prefixPagesEvicted = 0;
  const groupsSeen = new Set<number>();
  const hold = (w: number, g: number) => {
    let s = held[w]!.get(g);
    if (!s) held[w]!.set(g, (s = new Set()));
    return s;
  };
  for (const { worker: w, events } of batches) {
    // The prefix state before this batch (a request prefilled in this batch saw it at admission
    // at best; pages stored by this batch's own requests came too late for them).
    const fullBefore = new Set<number>();
    for (const [g, s] of held[w]!) if (s.size >= prefixPages[g]!) fullBefore.add(g);
    const everFullBefore = new Set(everFull[w]);
    const inBatch: { key: string; g: number }[] = [];
    for (const raw of events) {
      const e = eventFields(raw);
      if (e.type === 'AllBlocksCleared') {
        pages[w]!.clear();
        held[w]!.clear();
        continue;
      }
      if (e.type === 'BlockRemoved') {
        for (const h of e.hashes) {
          const p = pages[w]!.get(h);
          if (!p) continue;
          pages[w]!.delete(h);
          if (p.group >= 0 && p.pos < prefixPages[p.group]!) {
            prefixPagesEvicted++;
            held[w]!.get(p.group)?.delete(p.pos);
          }
        }
        continue;
      }
      if (e.type !== 'BlockStored') continue;
      let parent = e.parent;
      for (let k = 0; k < e.hashes.length; k++) {
        const h = e.hashes[k]!;
        const tokens = e.tokens.slice(k * PAGE, (k + 1) * PAGE);
        const text = Buffer.from(tokens).toString('latin1');
        const pp = parent === null ? undefined : pages[w]!.get(parent);
        const pos = pp ? pp.pos + 1 : 0;
        const group = pp ? pp.group : Number(/^Team (\d+) /.exec(text)?.[1] ?? -1);
        pages[w]!.set(h, { parent, pos, group, text });
        if (group >= 0 && pos < prefixPages[group]!) {
          const s = hold(w, group);
          s.add(pos);
          if (s.size >= prefixPages[group]!) everFull[w]!.add(group);
        }
        // The request this page's sequence belongs to, once its question text is seen.
        const gp = pp?.parent == null ? undefined : pages[w]!.get(pp.parent);
        const m = QUESTION.exec((gp?.text ?? '') + (pp?.text ?? '') + text);
        if (m) {
          const key = `${m[2]}/${m[1]}`;
          if (!placed.has(key) && sent.has(key)) {
            placed.add(key);
            inBatch.push({ key, g: Number(m[2]) });
          }
        }
        parent = h;
      }
    }
    for (const { key, g } of inBatch) {
      const r = sent.get(key)!;
      let gw = groupWorkers.get(g);
      if (!gw) groupWorkers.set(g, (gw = new Set()));
      const firstOfGroup = !groupsSeen.has(g);
      groupsSeen.add(g);
      const before = placedOn[w]!.get(g) ?? 0;
      placedOn[w]!.set(g, before + 1);
      const newWorker = !gw.has(w);
      gw.add(w);
      const best = firstOfGroup ? 0 : prefixPages[g]! * PAGE;
      const miss = Math.max(0, best - r.cached);
      let bucket: Bucket;
      if (firstOfGroup) bucket = 'group first';
      else if (miss === 0) continue;
      else if (newWorker && before === 0) bucket = 'split';
      else if (!fullBefore.has(g) && everFullBefore.has(g)) bucket = 'evicted';
      else if (!everFullBefore.has(g)) bucket = 'same batch';
      else bucket = 'other';
      lost[bucket].requests++;
      lost[bucket].tokens += firstOfGroup ? prefixPages[g]! * PAGE - r.cached : miss;
    }
  }
  return {
    lost,
    groupsPerWorker: placedOn.map((m) => m.size),
    workersPerGroup: [...groupWorkers.values()].map((s) => s.size),
    prefixPagesEvicted,
    unplaced: sent.size - placed.size,
  };
}

// ---- the run ----

async function runOne(system: string, concurrency: number, urls: string[], prefixPages: number[], logDir: string): Promise<string> {
  const workload = sharedPrefixWorkload({ groups: int('groups'), perGroup: int('per-group'), systemWords: int('system-words'), seed: 1 });
  await Promise.all(urls.map((u) => fetch(`${u}/flush_cache`, { method: 'POST' })));
  const batches: Batch[] = [];
  const subs = await Promise.all(urls.map((u, w) => subscribe(w, u, (b) => batches.push(b))));
  await new Promise((r) => setTimeout(r, 300)); // let the SUBs connect before any event
  const router = await startRouter(system, urls, { logDir, kvgateBefore: flags['kvgate-before'] || undefined });
  const sent = new Map<string, Sent>();
  let prompt = 0;
  let cached = 0;
  let next = 0;
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < workload.length) {
      const r = workload[next++]!;
      const body = JSON.stringify({ text: r.messages.map((m) => m.content).join('\n'), sampling_params: { max_new_tokens: 16, ignore_eos: true } });
      const res = await fetch(`${router.urls[0]}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const meta = ((await res.json()) as { meta_info: { prompt_tokens: number; cached_tokens: number } }).meta_info;
      sent.set(`${r.group}/${r.index}`, { group: r.group, index: r.index, cached: meta.cached_tokens, prompt: meta.prompt_tokens });
      prompt += meta.prompt_tokens;
      cached += meta.cached_tokens;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  let decisions = '';
  if (system.startsWith('kvgate')) {
    const text = await (await fetch(`${router.urls[0]}/metrics`)).text();
    const val = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    decisions = `tree hit ${val(/^sgl_router_cache_hits_total (\S+)/m)}, tree miss ${val(/^sgl_router_cache_misses_total (\S+)/m)}, balanced ${val(/^sgl_router_load_balancing_events_total (\S+)/m)}, kv events ${val(/^kvgate_router_kv_decisions_total\{by="kv_events"\} (\S+)/m)}, waited for a prefill ${val(/^kvgate_router_kv_prefill_waits_total (\S+)/m)}`;
  }
  await router.stop();
  await new Promise((r) => setTimeout(r, 500)); // the last events
  for (const s of subs) s.close();
  const a = attribute(batches, sent, prefixPages, urls.length);
  const cell = (b: Bucket) => `${a.lost[b].requests} / ${(a.lost[b].tokens / prompt).toFixed(4)}`;
  const sort = (xs: number[]) => [...xs].sort((x, y) => y - x).join(' ');
  return `| ${concurrency} | ${system} | ${(workload.length / seconds).toFixed(1)} | ${(cached / prompt).toFixed(3)} | ${BUCKETS.map(cell).join(' | ')} | ${sort(a.groupsPerWorker)} | ${a.workersPerGroup.filter((n) => n > 1).length} | ${a.prefixPagesEvicted} | ${a.unplaced} | ${decisions} |`;
}

async function main(): Promise<void> {
  const systems = flags.only.split(',').map((s) => s.trim());
  if (systems.some((s) => s.startsWith('sglang-router'))) sglangRouterPython();
  if (systems.some((s) => s.startsWith('smg'))) smgBinary();
  const logDir = resolve('build', 'bench-cache-loss', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(logDir, { recursive: true });
  // The best possible cached prefix per group: its requests' common prefix, in whole pages.
  const workload = sharedPrefixWorkload({ groups: int('groups'), perGroup: int('per-group'), systemWords: int('system-words'), seed: 1 });
  const texts = new Map<number, Buffer[]>();
  for (const r of workload) (texts.get(r.group) ?? texts.set(r.group, []).get(r.group)!).push(Buffer.from(r.messages.map((m) => m.content).join('\n'), 'utf8'));
  const prefixPages = [...texts.keys()].sort((a, b) => a - b).map((g) => {
    const ts = texts.get(g)!;
    let n = Infinity;
    for (const t of ts.slice(1)) {
      let i = 0;
      while (i < t.length && t[i] === ts[0]![i]) i++;
      n = Math.min(n, i);
    }
    return Math.floor(n / PAGE);
  });
  const { urls } = await startMockers(int('workers'), ['--page-size', String(PAGE), '--max-total-tokens', flags['max-total-tokens'], '--speedup-ratio', flags.speedup], logDir);
  const rows: string[] = [];
  try {
    for (const c of flags.concurrency.split(',').map(Number)) {
      for (const s of systems) {
        const row = await runOne(s, c, urls, prefixPages, logDir);
        console.error(row);
        rows.push(row);
      }
    }
  } finally {
    await stopAll();
  }
  console.log(`\nshared-prefix ${int('groups')} x ${int('per-group')}, ${int('workers')} mockers (page ${PAGE}, KV ${flags['max-total-tokens']} tokens, speedup ${flags.speedup}); each loss cell: requests / prompt-token share lost`);
  console.log(`| concurrency | router:policy | requests/s | cached share | ${BUCKETS.join(' | ')} | groups per worker | groups on >1 worker | prefix pages evicted | unplaced | router decisions |`);
  console.log(`|---|---|---|---|${BUCKETS.map(() => '---|').join('')}---|---|---|---|---|`);
  for (const r of rows) console.log(r);
  console.log(`\nlogs: ${logDir}`);
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
