// The cluster token on the event plane (NATS): every frame a worker publishes, and every
// routing event a frontend publishes, carries an HMAC-SHA256 tag over the subject and the
// frame's bytes (which hold the worker's instance id, dp rank and sequence), appended as its
// last TAG_BYTES bytes. Frontends drop and count frames whose tag does not verify, so a
// process on the NATS server without the token cannot inject KV events, load or routing
// load. The key is derived from the token (not the token itself), so it is separate from the
// request plane's proofs. No token: frames go untagged, as before.
//
// A verified frame can be replayed by someone who records the subject: a replayed KV batch is
// out of sequence (a gap, so a resync), a replayed load report is overwritten by the next.

import { createHmac, timingSafeEqual } from 'node:crypto';

export const TAG_BYTES = 32;

export class EventAuth {
  private readonly key: Buffer;

  constructor(clusterToken: string) {
    this.key = createHmac('sha256', clusterToken).update('kvgate event plane v1').digest();
  }

  private tag(subject: string, bytes: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(subject).update(bytes).digest();
  }

  // The frame with its tag appended.
  seal(subject: string, bytes: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(bytes.length + TAG_BYTES);
    out.set(bytes, 0);
    this.tag(subject, bytes).copy(out, bytes.length);
    return out;
  }

  // The frame without its tag, or null when the tag is missing or wrong (constant time).
  open(subject: string, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < TAG_BYTES) return null;
    const bytes = sealed.subarray(0, sealed.length - TAG_BYTES);
    const given = sealed.subarray(sealed.length - TAG_BYTES);
    return timingSafeEqual(this.tag(subject, bytes), given) ? bytes : null;
  }
}
