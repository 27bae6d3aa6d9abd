// Router replica sync: what one frontend routed counts as load on that worker in every other
// frontend until it finishes (as Dynamo's router replicas share their active requests). Each
// frontend publishes its decisions (the prompt's token ids, the worker's instance id and dp
// rank, the uncached prompt tokens), their first token and their end; the others record them
// in their own native router (KvRouter.addRouted) and release them the same way.
//
// Wire (little-endian), one message per event on the subject kvgate.routing:
//   u8 kind (1 routed, 2 prefill done, 3 finished), 7 bytes zero, u64 frontend id, f64 request
//   id (the frontend's own); routed adds: u64 worker instance id, u32 dp rank, u32 prefill
//   tokens, u32 model name bytes, u32 zero, the name (UTF-8, zero-padded to 4), u32 token ids.

import { KvgateError } from '../errors.js';

export const ROUTING_SUBJECT = 'kvgate.routing';

export type RoutingEvent =
  | { kind: 'routed'; frontend: bigint; rid: number; model: string; instanceId: bigint; rank: number; prefillTokens: number; tokens: Uint32Array }
  | { kind: 'prefill_done' | 'finished'; frontend: bigint; rid: number };

const KINDS = ['routed', 'prefill_done', 'finished'] as const;

export function encodeRoutingEvent(ev: RoutingEvent): Uint8Array {
  const name = ev.kind === 'routed' ? new TextEncoder().encode(ev.model) : new Uint8Array(0);
  const padded = (name.length + 3) & ~3;
  const size = 24 + (ev.kind === 'routed' ? 24 + padded + ev.tokens.length * 4 : 0);
  const buf = new Uint8Array(size);
  const v = new DataView(buf.buffer);
  v.setUint8(0, KINDS.indexOf(ev.kind) + 1);
  v.setBigUint64(8, ev.frontend, true);
  v.setFloat64(16, ev.rid, true);
  if (ev.kind === 'routed') {
    v.setBigUint64(24, ev.instanceId, true);
    v.setUint32(32, ev.rank, true);
    v.setUint32(36, ev.prefillTokens, true);
    v.setUint32(40, name.length, true);
    buf.set(name, 48);
    for (let i = 0, o = 48 + padded; i < ev.tokens.length; i++, o += 4) v.setUint32(o, ev.tokens[i]!, true);
  }
  return buf;
}

export function decodeRoutingEvent(buf: Uint8Array): RoutingEvent {
  const bad = (what: string): never => {
    throw new KvgateError('invalid_request', `malformed routing event: ${what}`);
  };
  if (buf.length < 24) bad(`${buf.length} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const kind = KINDS[v.getUint8(0) - 1] ?? bad(`kind ${v.getUint8(0)}`);
  const frontend = v.getBigUint64(8, true);
  const rid = v.getFloat64(16, true);
  if (!Number.isSafeInteger(rid) || rid < 0) bad(`request id ${rid}`);
  if (kind !== 'routed') return { kind, frontend, rid };
  if (buf.length < 48) bad('short routed event');
  const nameLen = v.getUint32(40, true);
  const padded = (nameLen + 3) & ~3;
  if (48 + padded > buf.length || (buf.length - 48 - padded) % 4 !== 0) bad('lengths');
  const model = new TextDecoder().decode(buf.subarray(48, 48 + nameLen));
  const n = (buf.length - 48 - padded) / 4;
  const tokens = new Uint32Array(n);
  for (let i = 0, o = 48 + padded; i < n; i++, o += 4) tokens[i] = v.getUint32(o, true);
  return { kind, frontend, rid, model, instanceId: v.getBigUint64(24, true), rank: v.getUint32(32, true), prefillTokens: v.getUint32(36, true), tokens };
}
