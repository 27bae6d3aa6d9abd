// The transfer coordinator from JavaScript: the native TransferCoordinator (through
// src/native/addon.ts) side by side with the naive TypeScript reference
// (test/reference/transfer_coordinator.ts) on the same workload as
// native/bench/coordinator_bench.cc. `npm run bench:coordinator`; prints a markdown table
// (bench/README.md).
//
// Lifecycle: each step opens a room and moves three older ones on (PrefillDone for the room
// opened N/3 ago, FirstDecodeToken 2N/3 ago, Finished N ago), so N rooms stay in flight, a
// third in each state; one poll per 100 rooms, nothing due. Poll: one poll per 10 ms tick
// with N decoding rooms in flight, nothing due.
//
// Env: ROOMS (native lifecycle steps, 1,000,000), REF_ROOMS (reference, 100,000), POLLS (2,000).

import { performance } from 'node:perf_hooks';
import { addon, RoomEvent } from '../../src/native/addon.js';
import { Event, ReferenceCoordinator } from '../../test/reference/transfer_coordinator.js';

const ROOMS = Number(process.env.ROOMS ?? 1_000_000);
const REF_ROOMS = Number(process.env.REF_ROOMS ?? 100_000);
const POLLS = Number(process.env.POLLS ?? 2_000);
const OPTS = { dispatchedTimeoutMs: 30_000, prefillDoneTimeoutMs: 10_000, decodeTimeoutMs: 600_000, seed: 1 };

/** What both coordinators offer the bench. */
interface Coordinator {
  open(prefill: number, decode: number, promptTokens: number, nowMs: number): bigint;
  advance(room: bigint, ev: number, nowMs: number): number;
  poll(nowMs: number): unknown[];
  readonly inFlight: number;
}

function nativeCoordinator(): Coordinator {
  const c = new addon.TransferCoordinator(OPTS);
  return {
    open: (p, d, t, now) => c.open(p, d, t, now),
    advance: (room, ev, now) => c.advance(room, ev as RoomEvent, now),
    poll: (now) => c.poll(now),
    get inFlight() {
      return c.inFlight;
    },
  };
}

/** Room lifecycles per second with n in flight. */
function lifecycle(c: Coordinator, n: number, steps: number): number {
  const ring: bigint[] = [];
  let now = 0;
  let i = 0;
  for (; i < n; i++) {
    ring.push(c.open(i % 8, 8 + (i % 8), 4096, now));
    if (i >= n / 3) c.advance(ring[i - Math.floor(n / 3)]!, Event.PrefillDone, now);
    if (i >= (2 * n) / 3) c.advance(ring[i - Math.floor((2 * n) / 3)]!, Event.FirstDecodeToken, now);
  }
  const t0 = performance.now();
  for (const end = i + steps; i < end; i++) {
    now += 0.001;
    const k = i % n;
    c.advance(ring[k]!, Event.Finished, now);
    c.advance(ring[(i - Math.floor(n / 3)) % n]!, Event.PrefillDone, now);
    c.advance(ring[(i - Math.floor((2 * n) / 3)) % n]!, Event.FirstDecodeToken, now);
    ring[k] = c.open(i % 8, 8 + (i % 8), 4096, now);
    if (i % 100 === 0 && c.poll(now).length > 0) throw new Error('a room timed out');
  }
  const secs = (performance.now() - t0) / 1000;
  if (c.inFlight !== n) throw new Error(`expected ${n} rooms in flight, got ${c.inFlight}`);
  return steps / secs;
}

/** Microseconds per poll with n decoding rooms in flight, nothing due. */
function pollCost(c: Coordinator, n: number, polls: number): number {
  for (let i = 0; i < n; i++) c.advance(c.open(1, 2, 4096, i % 1000), Event.FirstDecodeToken, i % 1000);
  let now = 1000;
  const t0 = performance.now();
  for (let k = 0; k < polls; k++) {
    now += 10;
    if (c.poll(now).length > 0) throw new Error('a room timed out');
  }
  return ((performance.now() - t0) * 1000) / polls;
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
// Warm-up: both sides' code optimized by V8 before anything is timed.
for (const make of [nativeCoordinator, () => new ReferenceCoordinator(OPTS)]) {
  lifecycle(make(), 1_000, 50_000);
  pollCost(make(), 1_000, 200);
}
const rows: string[] = [];
for (const n of [1_000, 100_000]) {
  const nat = lifecycle(nativeCoordinator(), n, ROOMS);
  const ref = lifecycle(new ReferenceCoordinator(OPTS), n, Math.min(REF_ROOMS, ROOMS));
  rows.push(`| room lifecycles/s, ${fmt(n)} in flight | **${fmt(nat)}** | ${fmt(ref)} | ${(nat / ref).toFixed(1)}× |`);
}
for (const n of [1_000, 100_000]) {
  const nat = pollCost(nativeCoordinator(), n, POLLS);
  const ref = pollCost(new ReferenceCoordinator(OPTS), n, Math.min(POLLS, 200));
  rows.push(`| poll, ${fmt(n)} in flight, nothing due (µs) | **${nat.toFixed(2)}** | ${ref.toFixed(0)} | ${(ref / nat).toFixed(0)}× |`);
}
const c = new addon.TransferCoordinator(OPTS);
for (let i = 0; i < 100_000; i++) c.open(1, 2, 4096, 0);
console.log('| from JavaScript | native (addon) | TypeScript reference | native / reference |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(r);
console.log(`\nnative memory: ${(c.memoryBytes() / c.inFlight).toFixed(1)} bytes per room with 100,000 in flight`);
