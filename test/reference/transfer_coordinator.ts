// The naive transfer coordinator: the same semantics as the native TransferCoordinator
// (native/binding/index.d.ts, native/core/transfer_coordinator.h), written to be obviously
// correct rather than fast. Rooms live in a Map; poll scans every room for a due deadline; the
// room draws use the native generator (SplitMix64), so from the same seed both hand out the
// same rooms. test/native/transfer_coordinator.diff.test.ts holds the native one to it, and
// bench/README.md compares their speed.

import { SplitMix64 } from './rng.js';

export const State = { Dispatched: 0, PrefillDone: 1, FirstDecodeToken: 2, Finished: 3, Failed: 4, TimedOut: 5 } as const;
export const Event = { PrefillDone: 0, FirstDecodeToken: 1, Finished: 2, Failed: 3 } as const;

/** A deliberate defect, for the mutation check (scripts/test-mutants.mjs plants the same ones natively). */
export type CoordinatorMutation = 'free-on-prefill-done' | 'deadline-off-by-one';

export interface ReferenceCoordinatorOptions {
  dispatchedTimeoutMs: number;
  prefillDoneTimeoutMs: number;
  decodeTimeoutMs: number;
  roomBits?: number;
  seed: number;
  mutation?: CoordinatorMutation;
}

interface Room {
  state: number;
  deadline: number; // Infinity: none
  prefill: number;
  decode: number;
  promptTokens: number;
  prefillDoneMs: number;
}

export interface ReferencePairStats {
  handoffs: number;
  gapMsMean: number;
  gapMsEwma: number;
  tokensPerMs: number;
}

const ALPHA = 0.2;

export class ReferenceCoordinator {
  private readonly rooms = new Map<bigint, Room>();
  private readonly pairs = new Map<string, ReferencePairStats & { gapSum: number }>();
  private readonly rng: SplitMix64;
  private readonly shift: bigint;
  private readonly capacity: number;
  private readonly timeouts: readonly number[];
  private readonly mutation: CoordinatorMutation | undefined;

  constructor(opts: ReferenceCoordinatorOptions) {
    this.rng = new SplitMix64(BigInt(opts.seed));
    this.shift = BigInt(64 - (opts.roomBits ?? 63));
    this.capacity = 2 ** (opts.roomBits ?? 63) - 1;
    this.timeouts = [opts.dispatchedTimeoutMs, opts.prefillDoneTimeoutMs, opts.decodeTimeoutMs];
    this.mutation = opts.mutation;
  }

  get inFlight(): number {
    return this.rooms.size;
  }

  /** Throws (code ERR_LIMIT) when every room is in flight. */
  open(prefill: number, decode: number, promptTokens: number, nowMs: number): bigint {
    if (this.rooms.size >= this.capacity) throw Object.assign(new Error('every room is in flight'), { code: 'ERR_LIMIT' });
    for (;;) {
      const room = this.rng.next() >> this.shift;
      if (room === 0n || this.rooms.has(room)) continue;
      const r: Room = { state: State.Dispatched, deadline: Infinity, prefill, decode, promptTokens, prefillDoneMs: 0 };
      this.enter(r, State.Dispatched, nowMs);
      this.rooms.set(room, r);
      return room;
    }
  }

  advance(room: bigint, ev: number, nowMs: number): number {
    const r = this.rooms.get(room);
    if (r === undefined) return -1;
    if (ev === Event.Finished || ev === Event.Failed) {
      this.rooms.delete(room);
      return 0;
    }
    if (ev === Event.PrefillDone) {
      if (r.state === State.FirstDecodeToken) return 0;
      if (r.state !== State.Dispatched) return -2;
      r.prefillDoneMs = nowMs;
      this.enter(r, State.PrefillDone, nowMs);
      if (this.mutation === 'free-on-prefill-done') this.rooms.delete(room);
      return 0;
    }
    // FirstDecodeToken
    if (r.state === State.FirstDecodeToken) return -2;
    if (r.state === State.PrefillDone) this.recordHandoff(r, nowMs);
    this.enter(r, State.FirstDecodeToken, nowMs);
    return 0;
  }

  /** The rooms due by nowMs, freed, sorted by room. */
  poll(nowMs: number): [bigint, number][] {
    const out: [bigint, number][] = [];
    for (const [room, r] of this.rooms) {
      const due = this.mutation === 'deadline-off-by-one' ? r.deadline < nowMs : r.deadline <= nowMs;
      if (due) out.push([room, r.state]);
    }
    for (const [room] of out) this.rooms.delete(room);
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  state(room: bigint): number {
    return this.rooms.get(room)?.state ?? -1;
  }

  pairStats(prefill: number, decode: number): ReferencePairStats | null {
    const s = this.pairs.get(`${prefill}:${decode}`);
    if (s === undefined) return null;
    return { handoffs: s.handoffs, gapMsMean: s.gapSum / s.handoffs, gapMsEwma: s.gapMsEwma, tokensPerMs: s.tokensPerMs };
  }

  forgetWorker(id: number): void {
    for (const key of [...this.pairs.keys()]) {
      const [p, d] = key.split(':').map(Number);
      if (p === id || d === id) this.pairs.delete(key);
    }
  }

  private enter(r: Room, state: number, nowMs: number): void {
    const timeout = this.timeouts[state]!;
    r.state = state;
    r.deadline = timeout > 0 ? nowMs + timeout : Infinity;
  }

  private recordHandoff(r: Room, nowMs: number): void {
    const gap = Math.max(0, nowMs - r.prefillDoneMs);
    const rate = r.promptTokens / Math.max(gap, 1);
    const key = `${r.prefill}:${r.decode}`;
    const s = this.pairs.get(key);
    if (s === undefined) {
      this.pairs.set(key, { handoffs: 1, gapSum: gap, gapMsMean: gap, gapMsEwma: gap, tokensPerMs: rate });
      return;
    }
    s.gapMsEwma += ALPHA * (gap - s.gapMsEwma);
    s.tokensPerMs += ALPHA * (rate - s.tokensPerMs);
    s.handoffs++;
    s.gapSum += gap;
  }
}
