// The per-frame cost of the event plane's cluster-token tag (security/event_auth.ts): seal
// (worker) and open (frontend) next to encodeFrame, the work a frame costs anyway, for SGLang
// KV-event batches of 1, 16 and 256 stored 16-token blocks (a decode step, a 256-token
// prefill, a 4K-token prefill). Run: `npm run bench:event-auth` (ITERS per size, default 20000).

import { encodeBatch } from '../../src/mocker/kv_events.js';
import { EventAuth } from '../../src/security/event_auth.js';
import { encodeFrame, type Frame } from '../../src/transport/frames.js';

const ITERS = Number(process.env.ITERS ?? 20_000);
const subject = 'kvgate.events.0123456789abcdef';
const auth = new EventAuth('a cluster token of ordinary length, 40 ch');

function batch(blocks: number): Frame {
  const events = Array.from({ length: blocks }, (_, i) => ({
    type: 'BlockStored' as const,
    hash: BigInt.asIntN(64, BigInt(i + 1) * 0x9e3779b97f4a7c15n),
    parent: i ? BigInt.asIntN(64, BigInt(i) * 0x9e3779b97f4a7c15n) : null,
    tokens: Array.from({ length: 16 }, (_, t) => 1000 + ((i * 16 + t) * 7919) % 150_000),
  }));
  return { type: 'kv_batch', instanceId: 0x0123456789abcdefn, dpRank: 0, seq: 42n, engineSeq: 42n, snapshot: false, payload: encodeBatch(events, 0, 'array') };
}

// ns per call, the best of 5 rounds (the machine is shared).
function time(fn: () => unknown): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERS; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / ITERS);
  }
  return best;
}

console.log('| batch | frame bytes | encodeFrame | seal (HMAC + copy) | open (HMAC + compare) | seal / encodeFrame |');
console.log('|---|---|---|---|---|---|');
for (const blocks of [1, 16, 256]) {
  const frame = batch(blocks);
  const bytes = encodeFrame(frame);
  const sealed = auth.seal(subject, bytes);
  if (!auth.open(subject, sealed)) throw new Error('a sealed frame did not open');
  const enc = time(() => encodeFrame(frame));
  const seal = time(() => auth.seal(subject, bytes));
  const open = time(() => auth.open(subject, sealed));
  const f = (ns: number) => (ns < 10_000 ? `${Math.round(ns)} ns` : `${(ns / 1000).toFixed(1)} µs`);
  console.log(`| ${blocks} block${blocks > 1 ? 's' : ''} | ${bytes.length} | ${f(enc)} | ${f(seal)} | ${f(open)} | ${(seal / enc).toFixed(2)} |`);
}
