// The event plane's frame tags (security/event_auth.ts): a tagged frame opens with the same
// token, and not with another token, on another subject, or with any byte changed.

import { describe, expect, it } from 'vitest';
import { EventAuth, TAG_BYTES } from '../../src/security/event_auth.js';
import { encodeFrame } from '../../src/transport/frames.js';

const subject = 'kvgate.events.00000000000000aa';
const frame = encodeFrame({ type: 'kv_batch', instanceId: 0xaan, dpRank: 1, seq: 7n, engineSeq: 9n, snapshot: false, payload: new Uint8Array([1, 2, 3]) });

describe('EventAuth', () => {
  it('opens its own frames and nothing else', () => {
    const auth = new EventAuth('token-a');
    const sealed = auth.seal(subject, frame);
    expect(sealed.length).toBe(frame.length + TAG_BYTES);
    expect(Buffer.from(auth.open(subject, sealed)!)).toEqual(Buffer.from(frame));
    expect(new EventAuth('token-a').open(subject, sealed)).not.toBeNull();
    expect(new EventAuth('token-b').open(subject, sealed)).toBeNull();
    expect(auth.open('kvgate.events.00000000000000bb', sealed)).toBeNull();
    expect(auth.open(subject, frame)).toBeNull(); // untagged
    expect(auth.open(subject, new Uint8Array(3))).toBeNull(); // shorter than a tag
    for (const i of [0, frame.length >> 1, frame.length - 1, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[i]! ^= 1;
      expect(auth.open(subject, bad), `byte ${i}`).toBeNull();
    }
  });
});
