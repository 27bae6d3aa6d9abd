// Routing decisions from JavaScript: the native KvRouter (through src/native/addon.ts)
// side by side with the TypeScript reference router, on the same index and the same
// requests. `npm run bench:router`; prints a markdown table (bench/README.md).
//
// The index is the fleet of native/bench/index_bench.cc (block size 16, 64 workers):
// 32 system prompts of 64 blocks on 16 workers each, and conversations of 256 blocks (a
// system prompt plus 192 own blocks) on the worker that served them, a quarter on a
// second worker too; about 1 M blocks with the default CONVERSATIONS=5440. Each routed
// request is one of those conversations (4,096 tokens), with a window of IN_FLIGHT
// requests active (prefill marked done 8 requests later, freed IN_FLIGHT requests later),
// so the active-load bookkeeping is exercised as in a serving frontend.
//
// Env: CONVERSATIONS (5440), ROUTES (native, 20000), REF_ROUTES (reference, 300),
// IN_FLIGHT (32), REF=0 to skip the reference.

import { performance } from 'node:perf_hooks';
import { addon } from '../../src/native/addon.js';
import { ReferenceRouter } from '../../test/reference/router.js';

const BS = 16;
const WORKERS = 64;
const SYSTEM_PROMPTS = 32;
const SYSTEM_BLOCKS = 64;
const SYSTEM_HOLDERS = 16;
const CONV_BLOCKS = 256;
const CONVERSATIONS = Number(process.env.CONVERSATIONS ?? 5440);
const ROUTES = Number(process.env.ROUTES ?? 20_000);
const REF_ROUTES = Number(process.env.REF_ROUTES ?? 300);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 32);
const WITH_REF = process.env.REF !== '0';

/** mulberry32: deterministic workload. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Store {
  worker: number;
  parent: bigint | null;
  tokens: Uint32Array;
  hashes: BigInt64Array;
}

/** The fleet's KV events (multi-block stored events) and its conversations' prompts. */
function buildWorkload() {
  const r = rng(42);
  const tokens = (n: number) => Uint32Array.from({ length: n }, () => Math.floor(r() * 151_000));
  const holder = (s: number, h: number) => (s * 7 + h * 4) % WORKERS;
  const hashes = (base: bigint, from: number, to: number) =>
    BigInt64Array.from({ length: to - from }, (_, i) => base + BigInt(from + i));
  const stores: Store[] = [];
  const system = Array.from({ length: SYSTEM_PROMPTS }, () => tokens(SYSTEM_BLOCKS * BS));
  system.forEach((t, s) => {
    for (let h = 0; h < SYSTEM_HOLDERS; h++) {
      stores.push({ worker: holder(s, h), parent: null, tokens: t, hashes: hashes(BigInt(s) << 20n, 0, SYSTEM_BLOCKS) });
    }
  });
  const prompts: Uint32Array[] = [];
  for (let c = 0; c < CONVERSATIONS; c++) {
    const s = Math.floor(r() * SYSTEM_PROMPTS);
    const p = new Uint32Array(CONV_BLOCKS * BS);
    p.set(system[s]!);
    p.set(tokens((CONV_BLOCKS - SYSTEM_BLOCKS) * BS), SYSTEM_BLOCKS * BS);
    const own = (1n << 40n) + BigInt(c) * 1024n;
    stores.push({
      worker: holder(s, Math.floor(r() * SYSTEM_HOLDERS)),
      parent: (BigInt(s) << 20n) + BigInt(SYSTEM_BLOCKS - 1),
      tokens: p.subarray(SYSTEM_BLOCKS * BS),
      hashes: hashes(own, SYSTEM_BLOCKS, CONV_BLOCKS),
    });
    if (c % 4 === 0) {
      stores.push({ worker: Math.floor(r() * WORKERS), parent: null, tokens: p, hashes: hashes((2n << 40n) + BigInt(c) * 1024n, 0, CONV_BLOCKS) });
    }
    prompts.push(p);
  }
  return { stores, prompts };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))]!;
}

interface Router {
  addWorker(w: number): void;
  store(s: Store): void;
  route(tokens: Uint32Array, id: number): void;
  markPrefillDone(id: number): void;
  free(id: number): void;
}

interface Result {
  name: string;
  buildS: number;
  routes: number;
  routeUs: number[];
  freeUs: number[];
  perSecond: number;
}

function run(name: string, router: Router, prompts: Uint32Array[], stores: Store[], routes: number): Result {
  for (let w = 0; w < WORKERS; w++) router.addWorker(w);
  const t0 = performance.now();
  for (const s of stores) router.store(s);
  const buildS = (performance.now() - t0) / 1000;
  const pick = rng(7);
  const routeUs: number[] = [];
  const freeUs: number[] = [];
  // The prompt is copied into a fresh array first, as the tokenizer would have just
  // written it: warm in cache, as in a serving frontend.
  const tokens = new Uint32Array(CONV_BLOCKS * BS);
  const start = performance.now();
  for (let id = 1; id <= routes; id++) {
    tokens.set(prompts[Math.floor(pick() * prompts.length)]!);
    const a = performance.now();
    router.route(tokens, id);
    const b = performance.now();
    routeUs.push((b - a) * 1000);
    if (id > 8) router.markPrefillDone(id - 8);
    if (id > IN_FLIGHT) {
      const c = performance.now();
      router.free(id - IN_FLIGHT);
      freeUs.push((performance.now() - c) * 1000);
    }
  }
  const perSecond = routes / ((performance.now() - start) / 1000);
  return { name, buildS, routes, routeUs, freeUs, perSecond };
}

function nativeRouter(): Router {
  const r = new addon.KvRouter({ blockSize: BS, seed: 1 });
  const out = new Uint32Array(3);
  return {
    addWorker: (w) => r.addWorker(w),
    store: (s) => {
      if (r.applyStored(s.worker, 0, s.parent, s.tokens, s.hashes) !== 'ok') throw new Error('store failed');
    },
    route: (t, id) => {
      if (!r.route(t, id, out)) throw new Error('no route');
    },
    markPrefillDone: (id) => r.markPrefillDone(id),
    free: (id) => r.free(id),
  };
}

function referenceRouter(): Router {
  const r = new ReferenceRouter({ blockSize: BS, seed: 1n });
  return {
    addWorker: (w) => r.addWorker(w),
    store: (s) => {
      if (r.applyStored(s.worker, 0, s.parent, s.tokens, [...s.hashes]) !== 'ok') throw new Error('store failed');
    },
    route: (t, id) => {
      if (!r.route(t, id)) throw new Error('no route');
    },
    markPrefillDone: (id) => r.markPrefillDone(id),
    free: (id) => r.free(id),
  };
}

const { stores, prompts } = buildWorkload();
const blocks = stores.reduce((n, s) => n + s.hashes.length, 0);
console.log(
  `index: ${WORKERS} workers, ${CONVERSATIONS} conversations, ${blocks} stored (block, worker) pairs; ` +
    `requests of ${CONV_BLOCKS * BS} tokens, ${IN_FLIGHT} in flight\n`,
);
const results = [run('native (addon)', nativeRouter(), prompts, stores, ROUTES)];
if (WITH_REF) results.push(run('TypeScript reference', referenceRouter(), prompts, stores, REF_ROUTES));

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
console.log('| router | route p50 µs | route p99 µs | free p50 µs | routes/s (route + bookkeeping + free) | index build s | routes |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.name} | ${f(pct(r.routeUs, 50))} | ${f(pct(r.routeUs, 99))} | ${f(pct(r.freeUs, 50))} | ` +
      `${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.buildS.toFixed(2)} | ${r.routes} |`,
  );
}
if (results.length === 2) {
  const [n, t] = results as [Result, Result];
  console.log(
    `\nnative / reference: ${(pct(t.routeUs, 50) / pct(n.routeUs, 50)).toFixed(0)}x at p50, ` +
      `${(n.perSecond / t.perSecond).toFixed(0)}x in routes/s`,
  );
}
