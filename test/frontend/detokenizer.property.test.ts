// Property tests of post-processing through the real Qwen3 tokenizer: random unicode text is
// tokenized, streamed back in random token chunks, and must come out exactly as the full
// decode, never with half a character; stop strings must cut exactly where the first one
// completes, however the text is chunked.

import fc from 'fast-check';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from '../../src/preprocess/detokenizer.js';
import { readModelFiles } from '../../src/preprocess/model_files.js';
import { StopMatcher } from '../../src/preprocess/stop_matcher.js';
import { Tokenizer } from '../../src/preprocess/tokenizer.js';

const require = createRequire(import.meta.url);

let tok: Tokenizer;
let reference: { decode(ids: number[], skip: boolean): Promise<string> };

beforeAll(() => {
  const files = readModelFiles();
  tok = new Tokenizer(files);
  reference = require('tokenizers').Tokenizer.fromString(files.tokenizerJson);
});

// Text with many multi-byte characters: accents, CJK, emoji (incl. ZWJ sequences), any code
// point, and whitespace.
const pieces = fc.constantFrom('é', 'ü', '你', '好', '🙂', '🫠', '𓀀', '龘', '👨‍👩‍👧', '🇫🇷', 'ﬁ', '\u0301', '\uFFFD', ' ', '  ', '\n', '\t', 'a', 'the', ' stop', '<', '|', '>', '<|im_end|>');
const unicodeText = fc.string({ unit: fc.oneof(pieces, fc.string({ unit: 'grapheme', maxLength: 1 }), fc.string({ unit: 'binary', maxLength: 1 })), maxLength: 60 });

// Cuts `items` into consecutive non-empty chunks at random positions.
function chunk<T>(items: readonly T[], cuts: number[]): T[][] {
  const at = [...new Set(cuts.map((c) => (items.length === 0 ? 0 : c % (items.length + 1))))].sort((a, b) => a - b);
  const out: T[][] = [];
  let prev = 0;
  for (const c of [...at, items.length]) {
    if (c > prev) out.push(items.slice(prev, c));
    prev = Math.max(prev, c);
  }
  return out;
}

function streamDecode(ids: number[], cuts: number[], skipSpecial = true): { pieces: string[]; tail: string } {
  const d = new IncrementalDetokenizer(tok, skipSpecial);
  return { pieces: chunk(ids, cuts).map((c) => d.push(c)), tail: d.flush() };
}

// The stop semantics, directly: the stop string that completes first (smallest end, then
// longest) cuts the text at its start.
function referenceCut(text: string, stops: string[]): { text: string; stop: string | null } {
  for (let end = 1; end <= text.length; end++) {
    const hits = stops.filter((s) => s.length > 0 && s.length <= end && text.slice(end - s.length, end) === s);
    if (hits.length > 0) {
      const s = hits.reduce((a, b) => (b.length > a.length ? b : a));
      return { text: text.slice(0, end - s.length), stop: s };
    }
  }
  return { text, stop: null };
}

function runStops(chunks: string[], stops: string[]): { text: string; stop: string | null } {
  const m = new StopMatcher(stops);
  let text = '';
  for (const c of chunks) {
    const r = m.push(c);
    text += r.text;
    if (r.stop !== null) return { text, stop: r.stop };
  }
  return { text: text + m.flush(), stop: null };
}

describe('tokenizer round trip', () => {
  it('decodes what it encodes (NFC), and its sync decode equals the library decode', async () => {
    await fc.assert(
      fc.asyncProperty(unicodeText, fc.boolean(), async (text, skip) => {
        const ids = await tok.encode(text, false);
        const ours = tok.decode(ids, skip);
        expect(ours).toBe(await reference.decode(ids, skip));
        if (!skip) expect(ours).toBe(text.normalize('NFC'));
      }),
      { numRuns: 300 },
    );
  });
});

describe('incremental detokenizer', () => {
  it('streams exactly the full decode, chunked at any token boundaries', async () => {
    await fc.assert(
      fc.asyncProperty(unicodeText, fc.array(fc.nat(), { maxLength: 20 }), fc.boolean(), async (text, cuts, skip) => {
        const ids = await tok.encode(text, false);
        const full = tok.decode(ids, skip);
        const { pieces, tail } = streamDecode(ids, cuts, skip);
        expect(pieces.join('') + tail).toBe(full);
        // Never half a character: no replacement character the full text does not have.
        if (!full.includes('\uFFFD')) for (const p of pieces) expect(p).not.toContain('\uFFFD');
      }),
      { numRuns: 300 },
    );
  });

  it('holds back a character split over byte-level tokens until it is complete', async () => {
    // 🫠 is four UTF-8 bytes that Qwen3 encodes as three byte-level tokens.
    const ids = await tok.encode('🫠', false);
    expect(ids.length).toBeGreaterThan(1);
    const d = new IncrementalDetokenizer(tok);
    const out = ids.map((id) => d.push([id]));
    expect(out.slice(0, -1).every((s) => s === '')).toBe(true);
    expect(out.at(-1)).toBe('🫠');
    expect(d.flush()).toBe('');
  });

  it('skips special tokens unless asked not to', async () => {
    const ids = [...(await tok.encode('Hi', false)), 151645];
    expect(streamDecode(ids, [1]).pieces.join('')).toBe('Hi');
    expect(streamDecode(ids, [1], false).pieces.join('')).toBe('Hi<|im_end|>');
  });
});

describe('stop matcher', () => {
  const small = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '🙂'), maxLength: 40 });
  it('cuts at the first completed stop string, however the text is chunked', () => {
    fc.assert(
      fc.property(small, fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '🙂'), minLength: 1, maxLength: 4 }), { maxLength: 3 }), fc.array(fc.nat(), { maxLength: 15 }), (text, stops, cuts) => {
        const expected = referenceCut(text, stops);
        const chunks = chunk([...text], cuts).map((c) => c.join(''));
        expect(runStops(chunks, stops)).toEqual(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('with no stop strings passes text straight through', () => {
    const m = new StopMatcher([]);
    expect(m.push('abc')).toEqual({ text: 'abc', stop: null });
    expect(m.flush()).toBe('');
  });

  it('holds back a possible start of a stop string and releases it when it is not one', () => {
    const m = new StopMatcher(['STOP']);
    expect(m.push('go ST')).toEqual({ text: 'go ', stop: null });
    expect(m.push('OP')).toEqual({ text: '', stop: 'STOP' });
    const n = new StopMatcher(['STOP']);
    expect(n.push('go ST')).toEqual({ text: 'go ', stop: null });
    expect(n.push('AR')).toEqual({ text: 'STAR', stop: null });
    expect(n.push('S')).toEqual({ text: '', stop: null });
    expect(n.flush()).toBe('S');
  });
});

describe('detokenizer + stop strings through the real tokenizer', () => {
  it('emits the full decode cut before the first stop string, whatever the token chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        unicodeText,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 6 })), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        async (text, picks, cuts) => {
          const ids = await tok.encode(text, false);
          const full = tok.decode(ids, true);
          // Stop strings taken from the decoded text (so they occur), cut at code points.
          const cps = [...full];
          const stops = picks.map(([at, len]) => cps.slice(at % Math.max(cps.length, 1), (at % Math.max(cps.length, 1)) + len).join('')).filter((s) => s.length > 0);
          const d = new IncrementalDetokenizer(tok);
          const m = new StopMatcher(stops);
          let out = '';
          let stop: string | null = null;
          for (const c of chunk(ids, cuts)) {
            const r = m.push(d.push(c));
            out += r.text;
            if (r.stop !== null) {
              stop = r.stop;
              break;
            }
          }
          if (stop === null) {
            const r = m.push(d.flush());
            out += r.text;
            stop = r.stop;
            if (stop === null) out += m.flush();
          }
          expect({ text: out, stop }).toEqual(referenceCut(full, stops));
        },
      ),
      { numRuns: 300 },
    );
  });
});
