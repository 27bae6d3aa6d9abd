// The JS side of the rooms (src/router/pd_rooms.ts) over the native TransferCoordinator: a
// room that outlives its state's deadline is reported once to its request, with the state;
// rooms that end are freed once; the poll timer exists only while rooms are in flight.

import { describe, expect, it } from 'vitest';
import { RoomEvent, RoomWatch } from '../../src/router/pd_rooms.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('RoomWatch', () => {
  it('times a room out in the state it is in, once, and frees it', async () => {
    const w = new RoomWatch({ prefillMs: 40, transferMs: 40, decodeMs: 0 }, 5);
    const seen: string[] = [];
    const a = w.open(63, 1, 2, 100, (s) => seen.push(`a:${s}`));
    const b = w.open(63, 1, 2, 100, (s) => seen.push(`b:${s}`));
    const c = w.open(63, 1, 2, 100, (s) => seen.push(`c:${s}`));
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    b.advance(RoomEvent.PrefillDone);
    c.advance(RoomEvent.PrefillDone);
    c.advance(RoomEvent.FirstDecodeToken); // decode has no deadline
    await sleep(120);
    expect(seen.sort()).toEqual(['a:dispatched', 'b:prefill_done']);
    expect(w.inFlight).toBe(1);
    // Ending a timed-out room again is a no-op; the live one finishes.
    a.advance(RoomEvent.Failed);
    c.advance(RoomEvent.Finished);
    expect(w.inFlight).toBe(0);
    expect(w.counters.failed).toBe(0);
    expect(w.counters.timedOut.get('dispatched')).toBe(1);
    expect(w.pairStats(1, 2)?.handoffs).toBe(1);
    w.close();
  });

  it('polls only while rooms are in flight', async () => {
    const w = new RoomWatch({ prefillMs: 1000, transferMs: 1000, decodeMs: 0 }, 5);
    expect(w.polling).toBe(false);
    const r1 = w.open(31, 1, 2, 10, () => undefined);
    const r2 = w.open(31, 1, 2, 10, () => undefined);
    expect(r1.id).toBeLessThan(2n ** 31n);
    expect(w.polling).toBe(true);
    r1.advance(RoomEvent.Failed);
    r1.advance(RoomEvent.Failed);
    expect(w.polling).toBe(true);
    r2.advance(RoomEvent.Finished);
    expect(w.polling).toBe(false);
    expect(w.counters.failed).toBe(1);
    expect(w.inFlight).toBe(0);
  });
});
