// The TransferCoordinator binding as TypeScript sees it: rooms, the state machine, deadlines
// per state polled from JS, pair stats, and the errors (stable codes) for bad arguments.

import { describe, expect, it } from 'vitest';
import { KvgateError } from '../../src/errors.js';
import { addon, RoomEvent, RoomState } from '../../src/native/addon.js';

const opts = { dispatchedTimeoutMs: 100, prefillDoneTimeoutMs: 50, decodeTimeoutMs: 1000, seed: 7 };

describe('TransferCoordinator', () => {
  it('exports the state and event numbers', () => {
    expect(RoomState).toEqual({ Dispatched: 0, PrefillDone: 1, FirstDecodeToken: 2, Finished: 3, Failed: 4, TimedOut: 5 });
    expect(RoomEvent).toEqual({ PrefillDone: 0, FirstDecodeToken: 1, Finished: 2, Failed: 3 });
    expect(Object.isFrozen(RoomState)).toBe(true);
  });

  it('runs a room through the happy path and frees it exactly once', () => {
    const c = new addon.TransferCoordinator(opts);
    const room = c.open(1, 2, 4096, 0);
    expect(typeof room).toBe('bigint');
    expect(room > 0n && room < 1n << 63n).toBe(true);
    expect(c.inFlight).toBe(1);
    expect(c.state(room)).toBe(RoomState.Dispatched);
    expect(c.advance(room, RoomEvent.PrefillDone, 10)).toBe(0);
    expect(c.state(room)).toBe(RoomState.PrefillDone);
    expect(c.advance(room, RoomEvent.PrefillDone, 11)).toBe(-2);
    expect(c.advance(room, RoomEvent.FirstDecodeToken, 30)).toBe(0);
    expect(c.state(room)).toBe(RoomState.FirstDecodeToken);
    expect(c.advance(room, RoomEvent.FirstDecodeToken, 31)).toBe(-2);
    expect(c.advance(room, RoomEvent.PrefillDone, 32)).toBe(0); // a late prefill answer
    expect(c.state(room)).toBe(RoomState.FirstDecodeToken);
    expect(c.advance(room, RoomEvent.Finished, 40)).toBe(0);
    expect(c.inFlight).toBe(0);
    expect(c.state(room)).toBe(-1);
    expect(c.advance(room, RoomEvent.Finished, 41)).toBe(-1);
    expect(c.advance(room, RoomEvent.Failed, 41)).toBe(-1);
    expect(c.poll(1e6)).toEqual([]);
    expect(c.pairStats(1, 2)).toEqual({ handoffs: 1, gapMsMean: 20, gapMsEwma: 20, tokensPerMs: 4096 / 20 });
    expect(c.pairStats(2, 1)).toBeNull();
    c.forgetWorker(2);
    expect(c.pairStats(1, 2)).toBeNull();
  });

  it('times each state out at its own deadline, reporting the state it was in', () => {
    const c = new addon.TransferCoordinator(opts);
    const a = c.open(1, 2, 10, 0); // Dispatched, due at 100
    const b = c.open(1, 2, 10, 0);
    c.advance(b, RoomEvent.PrefillDone, 20); // PrefillDone, due at 70
    const d = c.open(1, 2, 10, 0);
    c.advance(d, RoomEvent.FirstDecodeToken, 5); // FirstDecodeToken, due at 1005
    expect(c.poll(69.5)).toEqual([]);
    expect(c.poll(70)).toEqual([[b, RoomState.PrefillDone]]);
    expect(c.poll(99.99)).toEqual([]);
    expect(c.poll(100)).toEqual([[a, RoomState.Dispatched]]);
    expect(c.poll(1004)).toEqual([]);
    expect(c.poll(5000)).toEqual([[d, RoomState.FirstDecodeToken]]);
    expect(c.inFlight).toBe(0);
    expect(c.advance(a, RoomEvent.Failed, 5001)).toBe(-1); // already freed by the timeout
  });

  it('sets no deadline for a timeout of 0', () => {
    const c = new addon.TransferCoordinator({ dispatchedTimeoutMs: 0, prefillDoneTimeoutMs: 0, decodeTimeoutMs: 0 });
    const room = c.open(0, 0, 0, 0);
    expect(c.poll(2 ** 52)).toEqual([]);
    expect(c.state(room)).toBe(RoomState.Dispatched);
  });

  it('draws the same rooms from the same seed and never two alike in flight (8-bit rooms)', () => {
    const a = new addon.TransferCoordinator({ ...opts, roomBits: 8 });
    const b = new addon.TransferCoordinator({ ...opts, roomBits: 8 });
    const rooms = new Set<bigint>();
    for (let i = 0; i < 255; i++) {
      const r = a.open(0, 1, 1, 0);
      expect(b.open(0, 1, 1, 0)).toBe(r);
      expect(r >= 1n && r < 256n).toBe(true);
      rooms.add(r);
    }
    expect(rooms.size).toBe(255);
    expect(() => a.open(0, 1, 1, 0)).toThrow(expect.objectContaining({ code: 'ERR_LIMIT' }));
    const [first] = rooms;
    a.advance(first!, RoomEvent.Finished, 1);
    expect(a.open(0, 1, 1, 2)).toBe(first); // the one free room
  });

  it('reports its memory', () => {
    const c = new addon.TransferCoordinator(opts);
    const empty = c.memoryBytes();
    for (let i = 0; i < 1000; i++) c.open(i, i + 1, 100, 0);
    expect(c.memoryBytes()).toBeGreaterThan(empty + 1000 * 48);
  });

  it('throws ERR_INVALID_ARG on bad arguments', () => {
    const bad = (f: () => unknown) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KvgateError);
      expect((err as KvgateError).code).toBe('ERR_INVALID_ARG');
    };
    const C = addon.TransferCoordinator;
    bad(() => new C(undefined as never));
    bad(() => new C({ ...opts, roomBits: 7 }));
    bad(() => new C({ ...opts, roomBits: 64 }));
    bad(() => new C({ ...opts, decodeTimeoutMs: -1 }));
    bad(() => new C({ ...opts, tickMs: 0 }));
    bad(() => new C({ ...opts, nope: 1 } as never));
    bad(() => new C({ prefillDoneTimeoutMs: 1, decodeTimeoutMs: 1 } as never));
    const c = new C(opts);
    bad(() => c.open(-1, 0, 0, 0));
    bad(() => c.open(0, 1.5, 0, 0));
    bad(() => c.open(0, 0, 0, -1));
    bad(() => c.open(0, 0, 0, NaN));
    bad(() => c.advance(1 as never, RoomEvent.Finished, 0));
    bad(() => c.advance(-1n, RoomEvent.Finished, 0));
    bad(() => c.advance(1n << 64n, RoomEvent.Finished, 0));
    bad(() => c.advance(1n, 4 as never, 0));
    bad(() => c.state('1' as never));
    bad(() => c.poll(-5));
    bad(() => c.pairStats(0, -1));
    bad(() => c.forgetWorker(2 ** 32));
    expect(c.state(0n)).toBe(-1);
    expect(c.state((1n << 64n) - 1n)).toBe(-1);
  });
});
