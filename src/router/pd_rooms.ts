// The rooms of disaggregated requests in flight, over the native TransferCoordinator
// (native/binding): the coordinator draws each room (unique among the rooms in flight),
// keeps its state (dispatched -> prefill done -> first decode token -> finished, or failed /
// timed out) with a deadline per state, and frees it exactly once. This side holds what JS
// must do when a room times out (fail and abort both legs of its request), and runs the one
// poll timer that drives the coordinator's timer wheel: an unref'd interval that exists only
// while rooms are in flight.

import { addon, RoomEvent, RoomState, type TransferCoordinator, type TransferPairStats } from '../native/addon.js';

export { RoomEvent };
export type PairStats = TransferPairStats;

const STATE_NAMES: Record<number, string> = {
  [RoomState.Dispatched]: 'dispatched',
  [RoomState.PrefillDone]: 'prefill_done',
  [RoomState.FirstDecodeToken]: 'first_decode_token',
};
export const roomStateName = (s: number): string => STATE_NAMES[s] ?? `state ${s}`;

// Each state's deadline, in ms (0: none).
export interface RoomDeadlines {
  // Dispatched -> prefill done: the prefill leg's answer (queueing, bootstrap, prefill, transfer).
  prefillMs: number;
  // Prefill done -> the decode leg's first token (the KV handoff).
  transferMs: number;
  // First decode token -> finished.
  decodeMs: number;
}

export interface RoomCounters {
  opened: number;
  timedOut: Map<string, number>; // by the state it timed out in
  failed: number;
  // Prefill answers that came after the decode leg's first token (SGLang's prefill answers
  // once its transfer is done, so the order is a race): no handoff gap is measured for them.
  latePrefill: number;
}

export class RoomWatch {
  // One coordinator per room width: gRPC engines carry the room as an int32.
  private readonly coordinators = new Map<number, TransferCoordinator>();
  // What to do when a room times out: its request fails both legs.
  private readonly onTimeout = new Map<bigint, (state: string) => void>();
  private timer: NodeJS.Timeout | null = null;
  readonly counters: RoomCounters = { opened: 0, timedOut: new Map(), failed: 0, latePrefill: 0 };

  constructor(
    private readonly deadlines: RoomDeadlines,
    private readonly pollMs = 50,
    private readonly seed?: number,
  ) {}

  private coordinator(bits: number): TransferCoordinator {
    let c = this.coordinators.get(bits);
    if (!c) {
      c = new addon.TransferCoordinator({
        dispatchedTimeoutMs: this.deadlines.prefillMs,
        prefillDoneTimeoutMs: this.deadlines.transferMs,
        decodeTimeoutMs: this.deadlines.decodeMs,
        roomBits: bits,
        tickMs: Math.max(1, Math.min(this.pollMs, 100)),
        ...(this.seed !== undefined ? { seed: this.seed } : {}),
      });
      this.coordinators.set(bits, c);
    }
    return c;
  }

  // Whether the poll timer runs (only while rooms are in flight).
  get polling(): boolean {
    return this.timer !== null;
  }

  get inFlight(): number {
    let n = 0;
    for (const c of this.coordinators.values()) n += c.inFlight;
    return n;
  }

  // A room for a request between worker ids `prefill` and `decode`; `timedOut` runs (once)
  // if the room outlives its state's deadline, after the coordinator freed it.
  open(bits: 31 | 63, prefill: number, decode: number, promptTokens: number, timedOut: (state: string) => void): Room {
    const c = this.coordinator(bits);
    const room = c.open(prefill, decode, promptTokens, performance.now());
    this.counters.opened++;
    const key = this.key(bits, room);
    this.onTimeout.set(key, timedOut);
    this.startPolling();
    return new Room(room, (ev) => {
      if (ev === RoomEvent.Finished || ev === RoomEvent.Failed) {
        if (!this.onTimeout.delete(key)) return; // already ended (or timed out)
        if (ev === RoomEvent.Failed) this.counters.failed++;
      } else if (!this.onTimeout.has(key)) return;
      if (ev === RoomEvent.PrefillDone && c.state(room) === RoomState.FirstDecodeToken) this.counters.latePrefill++;
      c.advance(room, ev, performance.now());
      this.stopPollingIfIdle();
    });
  }

  pairStats(prefill: number, decode: number): PairStats | null {
    // Pairs use one room width (their engines' protocol); the wider one first.
    for (const bits of [63, 31]) {
      const s = this.coordinators.get(bits)?.pairStats(prefill, decode);
      if (s) return s;
    }
    return null;
  }

  forgetWorker(id: number): void {
    for (const c of this.coordinators.values()) c.forgetWorker(id);
  }

  memoryBytes(): number {
    let n = 0;
    for (const c of this.coordinators.values()) n += c.memoryBytes();
    return n;
  }

  // Expires rooms past their deadline (the interval calls it; tests may too).
  poll(now = performance.now()): void {
    for (const [bits, c] of this.coordinators) {
      for (const [room, state] of c.poll(now)) {
        const key = this.key(bits, room);
        const cb = this.onTimeout.get(key);
        this.onTimeout.delete(key);
        const name = roomStateName(state);
        this.counters.timedOut.set(name, (this.counters.timedOut.get(name) ?? 0) + 1);
        cb?.(name);
      }
    }
    this.stopPollingIfIdle();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  // Rooms of both widths share one map: the 31-bit ones are keyed negative.
  private key(bits: number, room: bigint): bigint {
    return bits === 63 ? room : -room - 1n;
  }

  private startPolling(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref();
  }

  private stopPollingIfIdle(): void {
    if (this.timer && this.onTimeout.size === 0) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

// One request's room: advance() moves it on; finished/failed end it (later calls are no-ops).
export class Room {
  constructor(
    readonly id: bigint,
    readonly advance: (ev: RoomEvent) => void,
  ) {}
}
