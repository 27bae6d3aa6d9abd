// Randomized differential test: the native TransferCoordinator against the naive TypeScript
// reference (test/reference/transfer_coordinator.ts) on seeded random sequences of open,
// advance, poll, state, pairStats and forgetWorker calls with a moving clock (fractional steps,
// long pauses, and now and then a reading from the past, polls included). Every return value,
// every thrown code, inFlight after every call, and each poll's set of expired rooms must agree.
//
// A failure names its seed; replay one with
//   KVGATE_DIFF_SEED=<seed> npx vitest run test/native/transfer_coordinator.diff.test.ts
// and run more with KVGATE_DIFF_SEEDS=<count>.

import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native/addon.js';
import { type CoordinatorMutation, Event, ReferenceCoordinator, State } from '../reference/transfer_coordinator.js';
import { rng } from './helpers.js';

type Native = InstanceType<typeof addon.TransferCoordinator>;

class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = rng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const byRoom = (a: [bigint, number], b: [bigint, number]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** The result of a call, or the code it threw, for comparing the two sides. */
function outcome<T>(f: () => T): T | { threw: unknown } {
  try {
    return f();
  } catch (err) {
    return { threw: (err as { code?: unknown }).code };
  }
}

interface CaseOptions {
  steps?: number;
  /** 8-bit rooms, long or no deadlines, and more opens: the coordinator fills up (ERR_LIMIT). */
  crowded?: boolean;
  mutation?: CoordinatorMutation;
}

/** How often the interesting paths ran (the suite checks each did). */
const coverage = { expired: 0, notAllowed: 0, unknown: 0, limit: 0, handoffs: 0, pastReadings: 0 };

/** One random sequence; throws (naming the seed and step) on the first disagreement. */
function runCase(seed: number, { steps = 200, crowded = false, mutation }: CaseOptions = {}): void {
  const g = new Gen(seed);
  const roomBits = crowded ? 8 : g.pick([8, 8, 9, 12, 31, 63]);
  const timeout = () => (crowded ? g.pick([0, 0, 5000]) : g.pick([0, 1, 5, 20, 50, 200, 1000]));
  const openShare = crowded ? 0.5 : 0.3;
  const opts = {
    dispatchedTimeoutMs: timeout(),
    prefillDoneTimeoutMs: timeout(),
    decodeTimeoutMs: timeout(),
    roomBits,
    seed: g.int(2 ** 31),
  };
  const native: Native = new addon.TransferCoordinator({ ...opts, tickMs: g.pick([1, 3, 10, 50, 1000]) });
  const ref = new ReferenceCoordinator({ ...opts, mutation });
  // An epoch clock (Date.now()-sized) or one from 0.
  let now = g.chance(0.3) ? 1.7e12 + g.int(1e6) : g.int(100);
  const rooms: bigint[] = [];
  const workers = 4;

  const agree = (step: number, what: string, a: unknown, b: unknown) => {
    if (!isDeepStrictEqual(a, b)) {
      throw new Error(
        `native and reference disagree: seed ${seed} step ${step} ${what}: native ${String(JSON.stringify(a, big))} reference ${String(JSON.stringify(b, big))}`,
      );
    }
  };

  for (let step = 0; step < steps; step++) {
    const dt = g.pick([0, 0, 1, 1, 2, 5, 0.25, g.int(30), g.int(300)]);
    now += dt;
    // Now and then a reading slightly in the past (another call's clock).
    const t = g.chance(0.05) ? Math.max(0, now - g.int(20)) : now;
    if (t < now) coverage.pastReadings++;
    const op = g.next();
    if (op < openShare) {
      const p = g.int(workers), d = g.int(workers), tokens = g.int(8192);
      const a = outcome(() => native.open(p, d, tokens, t));
      const b = outcome(() => ref.open(p, d, tokens, t));
      agree(step, `open(${p}, ${d}, ${tokens}, ${t})`, a, b);
      if (typeof a === 'bigint') rooms.push(a);
      else coverage.limit++;
    } else if (op < openShare + 0.35) {
      let room: bigint;
      if (rooms.length > 0 && g.chance(0.9)) {
        // Mostly a room in flight: the first of three draws that is one.
        room = g.pick(rooms);
        for (let k = 0; k < 2 && ref.state(room) < 0; k++) room = g.pick(rooms);
      }
      else room = g.chance(0.5) ? BigInt(g.int(2 ** Math.min(roomBits, 53))) : BigInt(g.int(2 ** 31)) * 2n ** 32n;
      const ev = g.chance(0.6) ? g.pick([Event.PrefillDone, Event.FirstDecodeToken]) : g.pick([Event.Finished, Event.Failed]);
      const r = native.advance(room, ev as never, t);
      agree(step, `advance(${room}, ${ev}, ${t})`, r, ref.advance(room, ev, t));
      if (r === -1) coverage.unknown++;
      if (r === -2) coverage.notAllowed++;
    } else if (op < openShare + 0.6) {
      const expired = native.poll(t).sort(byRoom);
      agree(step, `poll(${t})`, expired, ref.poll(t));
      coverage.expired += expired.length;
    } else if (op < openShare + 0.65) {
      const room = rooms.length > 0 ? g.pick(rooms) : 1n;
      agree(step, `state(${room})`, native.state(room), ref.state(room));
    } else if (op < openShare + 0.69) {
      const p = g.int(workers), d = g.int(workers);
      const stats = native.pairStats(p, d);
      agree(step, `pairStats(${p}, ${d})`, stats, ref.pairStats(p, d));
      if (stats !== null) coverage.handoffs++;
    } else {
      const w = g.int(workers);
      native.forgetWorker(w);
      ref.forgetWorker(w);
    }
    agree(step, 'inFlight', native.inFlight, ref.inFlight);
  }
  for (let p = 0; p < workers; p++) {
    for (let d = 0; d < workers; d++) agree(steps, `pairStats(${p}, ${d})`, native.pairStats(p, d), ref.pairStats(p, d));
  }
  // Everything with a deadline is freed by a poll far enough ahead; the rest by Finished.
  agree(steps, 'final poll', native.poll(now + 1e6).sort(byRoom), ref.poll(now + 1e6));
  for (const room of rooms) agree(steps, `finish ${room}`, native.advance(room, Event.Finished as never, now), ref.advance(room, Event.Finished, now));
  agree(steps, 'inFlight at the end', [native.inFlight, ref.inFlight], [0, 0]);
}

function big(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}

function seeds(): number[] {
  if (process.env.KVGATE_DIFF_SEED) return [Number(process.env.KVGATE_DIFF_SEED)];
  const count = Number(process.env.KVGATE_DIFF_SEEDS ?? 1000);
  return Array.from({ length: count }, (_, i) => i + 1);
}

describe('native TransferCoordinator vs the TypeScript reference', () => {
  it(`agrees on ${seeds().length} random open/advance/poll sequences`, () => {
    for (const seed of seeds()) runCase(seed);
  });

  it('agrees on long sequences (thousands of rooms, 8-bit rooms near full)', () => {
    for (let seed = 100_001; seed <= 100_020; seed++) runCase(seed, { steps: 3000, crowded: seed % 2 === 0 });
    // With the short sequences above: every path ran.
    for (const [path, count] of Object.entries(coverage)) expect(count, path).toBeGreaterThan(0);
  });

  it('holds 2,500 rooms in flight without a collision and frees every one', () => {
    for (const roomBits of [12, 63]) {
      const opts = { dispatchedTimeoutMs: 500, prefillDoneTimeoutMs: 200, decodeTimeoutMs: 0, roomBits, seed: 5 };
      const native = new addon.TransferCoordinator(opts);
      const ref = new ReferenceCoordinator(opts);
      const live = new Set<bigint>();
      for (let i = 0; i < 2500; i++) {
        const room = native.open(i % 7, i % 5, 1000 + i, i / 10);
        expect(ref.open(i % 7, i % 5, 1000 + i, i / 10)).toBe(room);
        expect(live.has(room)).toBe(false);
        expect(room >= 1n && room < 1n << BigInt(roomBits)).toBe(true);
        live.add(room);
      }
      expect(native.inFlight).toBe(2500);
      // A third finishes, a third fails over, a third stays in PrefillDone and times out.
      const all = [...live];
      all.forEach((room, i) => {
        const ev = i % 3 === 0 ? Event.Finished : i % 3 === 1 ? Event.Failed : Event.PrefillDone;
        expect(native.advance(room, ev as never, 250)).toBe(0);
        expect(ref.advance(room, ev, 250)).toBe(0);
      });
      expect(native.inFlight).toBe(all.filter((_, i) => i % 3 === 2).length);
      expect(native.poll(449).sort(byRoom)).toEqual(ref.poll(449));
      const expired = native.poll(450).sort(byRoom);
      expect(expired).toEqual(ref.poll(450));
      expect(expired.length).toBe(all.filter((_, i) => i % 3 === 2).length);
      expect(expired.every(([, s]) => s === State.PrefillDone)).toBe(true);
      expect([native.inFlight, ref.inFlight]).toEqual([0, 0]);
      for (const room of all) expect(native.state(room)).toBe(-1);
    }
  });

  // The suite must catch the bugs scripts/test-mutants.mjs plants natively; here they are
  // planted in the reference, which the native side then disagrees with.
  for (const mutation of ['free-on-prefill-done', 'deadline-off-by-one'] as const) {
    it(`catches a planted bug (${mutation})`, () => {
      let caught: Error | undefined;
      for (let seed = 1; seed <= 200 && !caught; seed++) {
        try {
          runCase(seed, { mutation });
        } catch (err) {
          caught = err as Error;
        }
      }
      expect(caught?.message).toMatch(/native and reference disagree: seed \d+/);
    });
  }
});
