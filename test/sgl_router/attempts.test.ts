// The router's per-attempt abort signals (src/sgl_router/attempts.ts): the client's disconnect,
// the request timeout (a TimeoutError, as AbortSignal.timeout gives), and nothing after done().

import { describe, expect, it } from 'vitest';
import { AttemptSignals } from '../../src/sgl_router/attempts.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('AttemptSignals', () => {
  it('aborts an attempt when its client goes away, with the client’s reason', () => {
    const signals = new AttemptSignals(60_000);
    const client = new AbortController();
    const a = signals.open(client.signal);
    expect(a.signal.aborted).toBe(false);
    client.abort(new Error('gone'));
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as Error).message).toBe('gone');
    a.done();
    // Already gone before the attempt: aborted from the start.
    expect(signals.open(client.signal).signal.aborted).toBe(true);
  });

  it('times out attempts past the deadline with a TimeoutError, and spares finished ones', async () => {
    const signals = new AttemptSignals(40);
    const client = new AbortController();
    const finished = signals.open(client.signal);
    const slow = signals.open(client.signal);
    finished.done();
    await sleep(120);
    expect(slow.signal.aborted).toBe(true);
    expect((slow.signal.reason as DOMException).name).toBe('TimeoutError');
    expect(finished.signal.aborted).toBe(false);
    slow.done();
    // A later attempt gets its own full timeout.
    const next = signals.open(client.signal);
    await sleep(15);
    expect(next.signal.aborted).toBe(false);
    next.done();
    // The client aborting after done() no longer reaches the attempt.
    const last = signals.open(client.signal);
    last.done();
    client.abort();
    expect(last.signal.aborted).toBe(false);
  });
});
