// The request plane's token proof (HMAC both ways): what a worker accepts and refuses, and
// what a frontend accepts back.

import { describe, expect, it } from 'vitest';
import { FrontendVerifier, frontendCredential, PROOF_WINDOW_MS } from '../../src/security/cluster_auth.js';

describe('cluster token proof', () => {
  it('admits a fresh proof once, and the frontend accepts only the proof made with the same token', () => {
    const now = 1_700_000_000_000;
    const c = frontendCredential('tok', now);
    expect(c.authorization).not.toContain('tok,');
    const v = new FrontendVerifier('tok');
    const r = v.check(c.authorization, now + 5);
    expect(r.ok).toBe(true);
    expect(c.expectProof(r.ok ? r.proof : undefined)).toBe(true);
    const other = new FrontendVerifier('other').check(frontendCredential('other', now).authorization, now);
    expect(other.ok && c.expectProof(other.proof)).toBe(false);
    expect(c.expectProof('ab'.repeat(32))).toBe(false);
    expect(c.expectProof(undefined)).toBe(false);
    expect(c.expectProof('zz')).toBe(false);
    // The same upgrade again (a replay) is refused.
    expect(v.check(c.authorization, now + 10)).toEqual({ ok: false, why: 'replayed' });
  });

  it('refuses a missing, malformed, wrong-token or stale proof, saying which', () => {
    const now = 1_700_000_000_000;
    const v = new FrontendVerifier('tok');
    expect(v.check(undefined, now)).toEqual({ ok: false, why: 'no' });
    expect(v.check('Bearer tok', now)).toEqual({ ok: false, why: 'wrong' });
    expect(v.check(frontendCredential('other', now).authorization, now)).toEqual({ ok: false, why: 'wrong' });
    expect(v.check(frontendCredential('tok', now - PROOF_WINDOW_MS - 1000).authorization, now)).toEqual({ ok: false, why: 'stale', skewMs: PROOF_WINDOW_MS + 1000 });
    expect(v.check(frontendCredential('tok', now + PROOF_WINDOW_MS + 1000).authorization, now)).toMatchObject({ ok: false, why: 'stale' });
  });
});
