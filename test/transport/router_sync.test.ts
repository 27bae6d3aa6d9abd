// The router replica sync wire: events round-trip; malformed bytes are refused, never misread.

import { describe, expect, it } from 'vitest';
import { decodeRoutingEvent, encodeRoutingEvent, type RoutingEvent } from '../../src/transport/router_sync.js';

describe('routing events', () => {
  it('round-trip', () => {
    const events: RoutingEvent[] = [
      { kind: 'routed', frontend: 2n ** 64n - 1n, rid: 2 ** 53 - 1, model: 'Qwen/Qwen3-0.6B ✓', instanceId: 0x7fffffffffffffffn, rank: 3, prefillTokens: 4096, tokens: Uint32Array.from([0, 1, 151645, 2 ** 32 - 1]) },
      { kind: 'routed', frontend: 1n, rid: 0, model: '', instanceId: 0n, rank: 0, prefillTokens: 0, tokens: new Uint32Array(0) },
      { kind: 'prefill_done', frontend: 5n, rid: 9 },
      { kind: 'finished', frontend: 5n, rid: 9 },
    ];
    for (const ev of events) expect(decodeRoutingEvent(encodeRoutingEvent(ev))).toEqual(ev);
  });

  it('refuses malformed bytes', () => {
    const ok = encodeRoutingEvent({ kind: 'routed', frontend: 1n, rid: 1, model: 'm', instanceId: 1n, rank: 0, prefillTokens: 1, tokens: Uint32Array.from([1, 2]) });
    expect(() => decodeRoutingEvent(ok.subarray(0, 10))).toThrow(/malformed routing event/);
    expect(() => decodeRoutingEvent(ok.subarray(0, ok.length - 2))).toThrow(/malformed routing event: lengths/);
    const badKind = ok.slice();
    badKind[0] = 9;
    expect(() => decodeRoutingEvent(badKind)).toThrow(/kind 9/);
    const badRid = encodeRoutingEvent({ kind: 'finished', frontend: 1n, rid: 1 });
    new DataView(badRid.buffer).setFloat64(16, 0.5, true);
    expect(() => decodeRoutingEvent(badRid)).toThrow(/request id 0.5/);
    const longName = ok.slice();
    new DataView(longName.buffer).setUint32(40, 1000, true);
    expect(() => decodeRoutingEvent(longName)).toThrow(/lengths/);
  });
});
