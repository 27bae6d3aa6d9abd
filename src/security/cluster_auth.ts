// The cluster token on the request plane, proven both ways without sending it: the frontend's
// upgrade request carries an HMAC of a fresh nonce and the time (`Authorization: KvgateHmac
// ts=..,nonce=..,mac=..`), and the worker's 101 response an HMAC of that nonce
// (`x-kvgate-proof`). So a worker admits only frontends that hold the token, a frontend routes
// only to workers that hold it, and neither tells the token to a stray process on the other end.
// A proof is good for PROOF_WINDOW_MS either side of the worker's clock (clocks must roughly
// agree, e.g. NTP), once: the worker remembers the nonces it saw within that window.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const PROOF_WINDOW_MS = 60_000;
export const PROOF_HEADER = 'x-kvgate-proof';

const mac = (token: string, text: string) => createHmac('sha256', token).update(text).digest('hex');

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && a.length === 64 && timingSafeEqual(x, y);
}

// The frontend's side: the Authorization header of one upgrade, and the proof to expect back.
export function frontendCredential(token: string, now = Date.now()): { authorization: string; expectProof: (header: string | undefined) => boolean } {
  const nonce = randomBytes(16).toString('hex');
  const authorization = `KvgateHmac ts=${now},nonce=${nonce},mac=${mac(token, `frontend|${now}|${nonce}`)}`;
  const proof = mac(token, `worker|${nonce}`);
  return { authorization, expectProof: (header) => typeof header === 'string' && sameHex(header, proof) };
}

export type FrontendCheck = { ok: true; proof: string } | { ok: false; why: 'no' | 'wrong' | 'stale' | 'replayed'; skewMs?: number };

// The worker's side: one verifier per request plane (it remembers recent nonces).
export class FrontendVerifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly token: string) {}

  check(header: string | undefined, now = Date.now()): FrontendCheck {
    const m = /^KvgateHmac ts=(\d{1,16}),nonce=([0-9a-f]{32}),mac=([0-9a-f]{64})$/.exec(header ?? '');
    if (!m) return { ok: false, why: header ? 'wrong' : 'no' };
    const [, ts, nonce, given] = m as unknown as [string, string, string, string];
    if (!sameHex(given, mac(this.token, `frontend|${ts}|${nonce}`))) return { ok: false, why: 'wrong' };
    const skewMs = now - Number(ts);
    if (Math.abs(skewMs) > PROOF_WINDOW_MS) return { ok: false, why: 'stale', skewMs };
    for (const [n, at] of this.seen) {
      if (now - at <= 2 * PROOF_WINDOW_MS) break;
      this.seen.delete(n);
    }
    if (this.seen.has(nonce)) return { ok: false, why: 'replayed' };
    this.seen.set(nonce, now);
    return { ok: true, proof: mac(this.token, `worker|${nonce}`) };
  }
}
