// The KvRouter binding as TypeScript sees it: real SGLang-shaped msgpack batches applied
// natively, routing and bookkeeping, approximate mode, and the errors (stable codes) for
// bad input, malformed bytes and use after close.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { KvgateError } from '../../src/errors.js';
import { asKvgateError, errorJson } from '../../src/http/errors.js';
import { ADDON_PATHS, addon } from '../../src/native/addon.js';

const packr = new Packr({ useRecords: false });
const BS = 16;

/** SGLang's page hash chain (reference/sglang.md §2.5): SHA-256 over the previous digest and
 *  the page's u32 LE tokens, the first 8 bytes read big-endian as a signed int64. */
function sglangPageHashes(tokens: Uint32Array, pageSize: number): bigint[] {
  const out: bigint[] = [];
  let prev = Buffer.alloc(0);
  for (let p = 0; p * pageSize < tokens.length; p++) {
    const page = tokens.subarray(p * pageSize, Math.min(tokens.length, (p + 1) * pageSize));
    prev = createHash('sha256').update(prev).update(Buffer.from(page.buffer, page.byteOffset, page.byteLength)).digest();
    out.push(prev.readBigInt64BE(0));
  }
  return out;
}

/** One BlockStored per page, chained by parent, as SGLang publishes them (with the newest
 *  builds' trailing {cache_salt} element on the first). */
function sglangStoredBatch(tokens: Uint32Array, dpRank?: number): Uint8Array {
  const hashes = sglangPageHashes(tokens, BS);
  const events = hashes.map((h, p) => {
    const page = [...tokens.subarray(p * BS, (p + 1) * BS)];
    const ev: unknown[] = ['BlockStored', [h], p === 0 ? null : hashes[p - 1], page, page.length, null, p % 2 ? 'GPU' : null];
    if (p === 0) ev.push({ cache_salt: 'x' });
    return ev;
  });
  return packr.pack(dpRank === undefined ? [1.25, events] : [1.25, events, dpRank]);
}

function prompt(seed: number, n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => (seed * 7919 + i * 31) % 151_000);
}

function matches(router: InstanceType<typeof addon.KvRouter>, query: Uint32Array | BigUint64Array) {
  const w = new Uint32Array(256);
  const r = new Uint32Array(256);
  const d = new Uint32Array(256);
  const n = router.findMatches(query, w, r, d);
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${w[i]}:${r[i]}`, d[i]]));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('addon loader', () => {
  it('loads the built addon with the router and the hashing functions', () => {
    expect(ADDON_PATHS.some((p) => existsSync(p))).toBe(true);
    expect(typeof addon.KvRouter).toBe('function');
    expect(typeof addon.blockHashes).toBe('function');
  });
});

describe('KvRouter: SGLang KV-event batches', () => {
  it('applies a real msgpack batch natively and matches by token content', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 1 });
    router.addWorker(3);
    // 5 full pages and a partial one (SGLang reports it; it is not a full block).
    const tokens = prompt(1, 5 * BS + 7);
    const counts = new Uint32Array(4);
    expect(router.applyEvents(3, 0, sglangStoredBatch(tokens), counts)).toBe(0);
    expect([...counts]).toEqual([6, 6, 0, 0]);
    expect(matches(router, tokens)).toEqual({ '3:0': 5 });
    // The same query as local block hashes from the hashing functions.
    expect(matches(router, addon.blockHashes(tokens, BS))).toEqual({ '3:0': 5 });
    // A diverging prompt matches up to the divergence.
    const other = tokens.slice();
    other[2 * BS + 3] = 99;
    expect(matches(router, other)).toEqual({ '3:0': 2 });

    // The batch's dp rank names the unit: rank 1 of worker 4 gets the first 3 pages.
    expect(router.applyEvents(4, 0, sglangStoredBatch(tokens.subarray(0, 3 * BS), 1))).toBe(0);
    expect(matches(router, tokens)).toEqual({ '3:0': 5, '4:1': 3 });

    // Evicting page 2 of worker 3 stops its match there; its pages 3 and 4 stay indexed.
    const page2 = sglangPageHashes(tokens, BS)[2]!;
    expect(router.applyEvents(3, 0, packr.pack([2.0, [['BlockRemoved', [page2], 'GPU']], 0]))).toBe(0);
    expect(matches(router, tokens)).toEqual({ '3:0': 2, '4:1': 3 });
    expect(router.stats()).toMatchObject({ blocks: 5, pairs: 4 + 3, indexUnits: 2, units: 2, candidates: 1 });

    // AllBlocksCleared clears that unit only.
    expect(router.applyEvents(4, 1, packr.pack([3.0, [['AllBlocksCleared']]]))).toBe(0);
    expect(matches(router, tokens)).toEqual({ '3:0': 2 });
    router.close();
  });

  it('rejects malformed bytes with ERR_KV_EVENT_MALFORMED and changes nothing', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 1 });
    const tokens = prompt(2, 4 * BS);
    router.applyEvents(1, 0, sglangStoredBatch(tokens));
    const before = router.stats();
    const good = sglangStoredBatch(prompt(3, 2 * BS));
    const bad = [
      good.subarray(0, good.length - 1),
      new Uint8Array([0x92, 0xcb]),
      packr.pack([1, [['BlockStolen', [1n]]]]),
      packr.pack({ ts: 1 }),
      new Uint8Array(0),
    ];
    for (const bytes of bad) {
      expect(codeOf(() => router.applyEvents(1, 0, bytes))).toBe('ERR_KV_EVENT_MALFORMED');
    }
    expect(router.stats()).toEqual(before);
    expect(matches(router, tokens)).toEqual({ '1:0': 4 });
    router.close();
  });

  it('counts events it cannot apply and keeps going', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 1 });
    const t = prompt(4, 2 * BS);
    const out = new Uint32Array(4);
    const batch = packr.pack([
      1.0,
      [
        ['BlockStored', [10n], 999n, [...t.subarray(0, BS)], BS, null, 'GPU'], // unknown parent
        ['BlockStored', [11n], null, [...t.subarray(0, BS)], BS, null, 'CPU_PINNED'], // host tier: ignored
        ['BlockStored', [12n], null, [...t], 2 * BS, null, null], // one hash, two blocks of tokens
        ['BlockStored', [13n, 14n], null, [...t], BS, null, 'GPU'],
        ['BlockRemoved', [77n], 'GPU'],
      ],
    ]);
    expect(router.applyEvents(5, 0, batch, out)).toBe(3);
    expect([...out]).toEqual([5, 1, 1, 3]);
    expect(router.stats()).toMatchObject({ pairs: 2, eventsApplied: 1, eventErrors: 3 });
    expect(router.applyStored(5, 0, 999n, t.subarray(0, BS), new BigInt64Array([1n]))).toBe('unknown-parent');
    expect(router.applyStored(5, 0, 14n, t.subarray(0, BS), new BigUint64Array([2n ** 64n - 1n]))).toBe('ok');
    expect(router.applyRemoved(5, 0, new BigInt64Array([-1n, 55n]))).toBe(1); // -1n is 2^64-1
    router.close();
  });
});

describe('KvRouter: routing', () => {
  it('routes to the worker holding the prefix and tracks the request until free', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 7 });
    for (let w = 0; w < 4; w++) router.addWorker(w);
    const tokens = prompt(5, 10 * BS + 3);
    router.applyEvents(2, 0, sglangStoredBatch(tokens.subarray(0, 8 * BS)));
    const out = new Uint32Array(3);
    expect(router.route(tokens, 1, out)).toBe(true);
    expect([...out]).toEqual([2, 0, 8]);
    const unit = router.units().find((u) => u.worker === 2)!;
    expect(unit).toEqual({
      worker: 2,
      rank: 0,
      candidate: true,
      activeBlocks: 11, // 10 full blocks + the partial one
      prefillTokens: 2 * BS + 3,
      activeRequests: 1,
      cachedBlocks: 8,
    });
    expect(codeOf(() => router.route(tokens, 1, out))).toBe('ERR_INVALID_ARG'); // still active
    expect(router.markPrefillDone(1)).toBe(true);
    expect(router.markPrefillDone(1)).toBe(false);
    expect(router.units().find((u) => u.worker === 2)!.prefillTokens).toBe(0);
    expect(router.free(1)).toBe(true);
    expect(router.free(1)).toBe(false);
    expect(router.stats().activeRequests).toBe(0);

    // score(): what route sees, per candidate in (worker, rank) order.
    const w = new Uint32Array(4), r = new Uint32Array(4), o = new Uint32Array(4), c = new Float64Array(4);
    expect(router.score(tokens, w, r, o, c)).toBe(4);
    expect([...w]).toEqual([0, 1, 2, 3]);
    expect([...o]).toEqual([0, 0, 8, 0]);
    const isl = tokens.length;
    expect(c[0]).toBe(isl / BS + Math.ceil(isl / BS));
    expect(c[2]).toBe((isl - 8 * BS) / BS + Math.ceil(isl / BS));
    // With the prefill weight at 0 only decode load counts: all four tie.
    router.score(tokens, w, r, o, c, 0);
    expect(new Set(c).size).toBe(1);
    router.close();
  });

  it('returns false without candidates and spreads load by policy', () => {
    const router = new addon.KvRouter({ blockSize: BS, policy: 'round-robin', seed: 1 });
    const out = new Uint32Array(3);
    const t = prompt(6, 40);
    expect(router.route(t, 1, out)).toBe(false);
    router.addWorker(9, 0);
    router.addWorker(9, 1);
    router.addWorker(2);
    const seen: string[] = [];
    for (let id = 1; id <= 6; id++) {
      expect(router.route(t, id, out)).toBe(true);
      seen.push(`${out[0]}:${out[1]}`);
    }
    expect(seen).toEqual(['2:0', '9:0', '9:1', '2:0', '9:0', '9:1']);
    router.removeWorker(9);
    expect(router.stats()).toMatchObject({ candidates: 1, activeRequests: 2 });
    expect(router.free(2)).toBe(false); // went with worker 9
    router.close();
  });

  it("a worker's load returns to exactly zero on every way a request ends", () => {
    // Shared prefixes (blocks held by several requests), prefill marked or not, double
    // frees, frees of requests whose worker left, and a worker re-added: no counter may
    // wrap (a wrapped load is ~2^64 and the worker is never picked again).
    const router = new addon.KvRouter({ blockSize: 2, seed: 5 });
    for (let w = 0; w < 3; w++) router.addWorker(w);
    const out = new Uint32Array(3);
    const base = prompt(11, 300);
    const ids: number[] = [];
    for (let id = 1; id <= 60; id++) {
      const t = base.subarray(0, 1 + ((id * 37) % 300)); // prefixes of one document, odd and even lengths
      expect(router.route(t, id, out)).toBe(true);
      ids.push(id);
      if (id % 3 === 0) router.markPrefillDone(id);
      if (id === 30) router.removeWorker(1); // its requests are forgotten with it
      if (id === 31) router.addWorker(1);
      if (id % 7 === 0) {
        router.free(id);
        expect(router.free(id)).toBe(false);
      }
      for (const u of router.units()) {
        expect(u.activeBlocks).toBeLessThanOrEqual(60 * 150);
        expect(u.prefillTokens).toBeLessThanOrEqual(60 * 300);
      }
    }
    router.clearWorker(0);
    for (const id of ids.reverse()) router.free(id);
    for (const id of ids) expect(router.free(id)).toBe(false);
    expect(router.stats().activeRequests).toBe(0);
    for (const u of router.units()) expect(u).toMatchObject({ activeBlocks: 0, prefillTokens: 0, activeRequests: 0 });
    router.close();
  });

  it('approximate mode predicts the cache from its own decisions until the TTL ends', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 3, approx: true, approxTtlMs: 1000 });
    router.addWorker(1);
    router.addWorker(2);
    const t = prompt(8, 6 * BS);
    const out = new Uint32Array(3);
    expect(router.route(t, 1, out, undefined, undefined, 0)).toBe(true);
    const first = out[0];
    router.free(1);
    expect(router.route(t, 2, out, undefined, undefined, 900)).toBe(true);
    expect([out[0], out[2]]).toEqual([first, 6]);
    router.free(2);
    router.expire(1899);
    expect(router.stats().approxBlocks).toBe(6);
    router.expire(1900);
    expect(router.stats()).toMatchObject({ approxBlocks: 0, blocks: 0 });
    router.close();
  });
});

describe('KvRouter: approximate mode memory', () => {
  it('stays bounded when one prompt is routed 100k times (refreshed in place, not queued again)', () => {
    const router = new addon.KvRouter({ blockSize: 4, seed: 9, approx: true, approxMaxBlocks: 1000 });
    router.addWorker(1);
    router.addWorker(2);
    const t = prompt(31, 64 * 4 + 2);
    const out = new Uint32Array(3);
    let bytes = 0;
    for (let id = 1; id <= 100_000; id++) {
      if (id === 100) bytes = router.stats().bytes;
      router.route(t, id, out, undefined, undefined, id);
      router.free(id);
    }
    expect(router.stats()).toMatchObject({ approxBlocks: 64, bytes });
    // Distinct prompts: never more than the cap plus one prompt.
    for (let id = 200_000; id < 202_000; id++) {
      router.route(prompt(id, 16 * 4), id, out, undefined, undefined, 200_000);
      router.free(id);
      expect(router.stats().approxBlocks).toBeLessThanOrEqual(1000 + 16);
    }
    router.close();
  });
});

describe('KvRouter: per-unit modes and ranks', () => {
  it('records predicted blocks only for approximate units; exact units follow their events', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 2, policy: 'round-robin' });
    router.addWorker(1, 0, true);
    router.addWorker(2, 0, false);
    const out = new Uint32Array(3);
    const t = prompt(21, 4 * BS);
    expect(router.route(t, 1, out, undefined, undefined, 0)).toBe(true);
    expect(router.route(t, 2, out, undefined, undefined, 0)).toBe(true);
    const cachedOf = (w: number) => router.units().find((u) => u.worker === w)!.cachedBlocks;
    expect([cachedOf(1), cachedOf(2)]).toEqual([4, 0]);
    expect(router.stats().approxBlocks).toBe(4);
    router.applyEvents(2, 0, sglangStoredBatch(t));
    expect(matches(router, t)).toEqual({ '1:0': 4, '2:0': 4 });
    // Re-adding in the other mode drops what the old mode cached.
    router.addWorker(1, 0, false);
    expect([cachedOf(1), router.stats().approxBlocks]).toEqual([0, 0]);
    expect(codeOf(() => router.addWorker(3, 0, 1 as unknown as boolean))).toBe('ERR_INVALID_ARG');
    router.close();
  });

  it('passes busy workers over while another is free, and routes among all when every one is busy', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 3 });
    router.addWorker(1, 0);
    router.addWorker(2, 0);
    const t = prompt(5, 4 * BS);
    router.applyEvents(2, 0, sglangStoredBatch(t));
    const out = new Uint32Array(3);
    router.setBusy(2, true);
    expect(router.stats().busy).toBe(1);
    for (let id = 0; id < 4; id++) {
      expect(router.route(t, id, out)).toBe(true);
      expect(out[0]).toBe(1);
    }
    router.setBusy(1, true);
    expect(router.route(t, 10, out)).toBe(true);
    expect([out[0], out[2]]).toEqual([2, 4]); // all busy: its cache wins again
    router.setBusy(1, false);
    router.setBusy(2, false);
    expect(router.stats().busy).toBe(0);
    expect(codeOf(() => router.setBusy(1, 1 as unknown as boolean))).toBe('ERR_INVALID_ARG');
    expect(codeOf(() => router.setBusy(-1, true))).toBe('ERR_INVALID_ARG');
    router.close();
    expect(codeOf(() => router.setBusy(1, true))).toBe('ERR_CLOSED');
  });

  it("reports the rank a batch went to (its own dp_rank wins over the caller's)", () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 2 });
    router.addWorker(4, 0);
    router.addWorker(4, 1);
    const counts = new Uint32Array(5);
    router.applyEvents(4, 0, sglangStoredBatch(prompt(1, 2 * BS), 1), counts);
    expect([...counts]).toEqual([2, 2, 0, 0, 1]);
    router.applyEvents(4, 1, sglangStoredBatch(prompt(2, 2 * BS)), counts);
    expect(counts[4]).toBe(1);
    router.applyEvents(4, 0, sglangStoredBatch(prompt(3, 2 * BS)), counts);
    expect(counts[4]).toBe(0);
    router.close();
  });
});

describe('KvRouter: bad input and lifetime', () => {
  it('rejects bad options with ERR_INVALID_ARG', () => {
    const bad: unknown[] = [
      undefined,
      {},
      { blockSize: 0 },
      { blockSize: 1025 },
      { blockSize: 1.5 },
      { blockSize: 16, policy: 'fastest' },
      { blockSize: 16, overlapWeight: -1 },
      { blockSize: 16, temperature: Number.NaN },
      { blockSize: 16, ownWeight: -1 },
      { blockSize: 16, ownWeight: Number.POSITIVE_INFINITY },
      { blockSize: 16, ownQueueWeight: -1 },
      { blockSize: 16, ownQueueWeight: Number.NaN },
      { blockSize: 16, seed: -1 },
      { blockSize: 16, approxTtlMs: 0 },
      { blockSize: 16, approxPruneRatio: 1.5 },
      { blockSize: 16, blockSzie: 16 },
    ];
    for (const o of bad) {
      expect(codeOf(() => new addon.KvRouter(o as never)), JSON.stringify(o)).toBe('ERR_INVALID_ARG');
    }
  });

  it('rejects bad arguments with ERR_INVALID_ARG and stays usable', () => {
    const router = new addon.KvRouter({ blockSize: 4, seed: 1 });
    router.addWorker(1);
    const t = new Uint32Array(8);
    const out = new Uint32Array(3);
    const calls: [string, () => unknown][] = [
      ['worker -1', () => router.addWorker(-1)],
      ['worker 2^32', () => router.addWorker(2 ** 32)],
      ['rank 0.5', () => router.addWorker(1, 0.5)],
      ['tokens as array', () => router.route([1, 2, 3] as never, 1, out)],
      ['tokens as Int32Array', () => router.route(new Int32Array(4) as never, 1, out)],
      ['request id -1', () => router.route(t, -1, out)],
      ['request id 2^53', () => router.route(t, 2 ** 53, out)],
      ['short out', () => router.route(t, 1, new Uint32Array(2))],
      ['weight', () => router.route(t, 1, out, -2)],
      ['nowMs', () => router.route(t, 1, out, 1, 0, Number.POSITIVE_INFINITY)],
      ['hashes as Uint32Array', () => router.applyRemoved(1, 0, new Uint32Array(2) as never)],
      ['parent as number', () => router.applyStored(1, 0, 5 as never, t, new BigInt64Array(2))],
      ['bytes as Buffer-less array', () => router.applyEvents(1, 0, [0x90] as never)],
      ['short outputs', () => router.findMatches(t, new Uint32Array(0), new Uint32Array(0), new Uint32Array(0))],
      ['query as Float64Array', () => router.findMatches(new Float64Array(2) as never, out, out, out)],
      ['score costs as Uint32Array', () => router.score(t, out, out, out, out as never)],
    ];
    for (const [what, call] of calls) expect(codeOf(call), what).toBe('ERR_INVALID_ARG');
    // Outputs with room for every unit in use work; the router still routes.
    router.applyStored(1, 0, null, t, new BigInt64Array([1n, 2n]));
    expect(router.findMatches(t, out, out, out)).toBe(1);
    expect(router.route(t, 1, out)).toBe(true);
    router.close();
  });

  it('throws ERR_CLOSED after close()', () => {
    const router = new addon.KvRouter({ blockSize: 4 });
    router.close();
    router.close();
    expect(codeOf(() => router.addWorker(1))).toBe('ERR_CLOSED');
    expect(codeOf(() => router.route(new Uint32Array(4), 1, new Uint32Array(3)))).toBe('ERR_CLOSED');
    expect(codeOf(() => router.stats())).toBe('ERR_CLOSED');
    expect(codeOf(() => router.blockSize)).toBe('ERR_CLOSED');
  });
});

describe('KvRouter: native errors reach the error registry', () => {
  it('throws KvgateErrors: ERR_LIMIT is a 503 service_unavailable, not an internal 500', () => {
    const router = new addon.KvRouter({ blockSize: BS, seed: 1 });
    router.addWorker(0);
    const out = new Uint32Array(3);
    const t = prompt(1, 3);
    for (let id = 0; id < 65_535; id++) router.route(t, id, out);
    let err: unknown;
    try {
      router.route(t, 70_000, out);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvgateError);
    const e = asKvgateError(err);
    expect([e.code, e.status, errorJson(e).error.type]).toEqual(['ERR_LIMIT', 503, 'service_unavailable']);
    expect(e.message).toMatch(/65535 active requests/);
    for (let id = 0; id < 65_535; id++) router.free(id);
    expect(router.route(t, 70_000, out)).toBe(true);
    router.close();
    expect(() => router.stats()).toThrow(KvgateError);
    expect(() => new addon.KvRouter({ blockSize: 0 })).toThrow(KvgateError);
    expect(codeOf(() => addon.setErrorClass(42 as never))).toBe('ERR_INVALID_ARG');
  });

  it('rejects an approxMaxBlocks that does not fit (converting it was undefined behaviour)', () => {
    for (const approxMaxBlocks of [1e300, Infinity, 2 ** 53, 1.5, 0, -1, NaN]) {
      expect(codeOf(() => new addon.KvRouter({ blockSize: BS, approx: true, approxMaxBlocks })), `${approxMaxBlocks}`).toBe('ERR_INVALID_ARG');
    }
    new addon.KvRouter({ blockSize: BS, approx: true, approxMaxBlocks: 2 ** 53 - 1 }).close();
  });

  it('turns running out of memory into a JS error instead of aborting the process', () => {
    // A child caps its own address space (prlimit) at 1 GiB above what it maps, then routes
    // a prompt whose hashing needs 2 GiB at once: the call throws, the process goes on. (The
    // headroom is wide so that node's own allocations meanwhile never fail: node and V8 are
    // built without exceptions, so a bad_alloc there aborts whatever the addon does.)
    const path = ADDON_PATHS.find((p) => existsSync(p))!;
    const script = `
      const { spawnSync } = require('node:child_process');
      const addon = require(${JSON.stringify(path)});
      const router = new addon.KvRouter({ blockSize: 1, seed: 1 });
      router.addWorker(0);
      const tokens = new Uint32Array(256 * 1024 * 1024); // 1 GiB mapped, never touched
      const vm = Number(/VmSize:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      if (spawnSync('prlimit', ['--pid=' + process.pid, '--as=' + (vm + 1024 * 1024 * 1024)]).status !== 0) throw new Error('prlimit failed');
      let message = null;
      try { router.route(tokens, 1, new Uint32Array(3)); } catch (e) { message = e.message; }
      console.log(JSON.stringify({ message, active: router.stats().activeRequests }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ message: 'std::bad_alloc', active: 0 });
  });
});
