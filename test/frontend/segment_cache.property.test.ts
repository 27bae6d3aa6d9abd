// The chat path's segment cache against the plain tokenizer (HF `tokenizers`, the real Qwen3
// files) on whole prompts: ids must be identical whether a segment is new, cached, or mixed
// with new ones, for segments that end in multi-byte characters (byte-level BPE cuts them
// into byte tokens), whitespace runs, lone surrogates, near-misses of added tokens, empty
// segments between adjacent added tokens, and with a cache small enough to evict. Also the
// token-count lower bound that lets the frontend refuse huge prompts untokenized.

import fc from 'fast-check';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { readModelFiles, type ModelFiles } from '../../src/preprocess/model_files.js';
import { SegmentCache } from '../../src/preprocess/segment_cache.js';
import { tokenBound } from '../../src/preprocess/token_bound.js';
import { Tokenizer } from '../../src/preprocess/tokenizer.js';

const require = createRequire(import.meta.url);

let files: ModelFiles;
let reference: { encode(text: string, pair: null, o: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }> };
let added: string[];

beforeAll(() => {
  files = readModelFiles();
  reference = require('tokenizers').Tokenizer.fromString(files.tokenizerJson);
  added = (JSON.parse(files.tokenizerJson) as { added_tokens: { content: string }[] }).added_tokens.map((t) => t.content);
});

const plain = async (text: string) => (await reference.encode(text, null, { addSpecialTokens: false })).getIds();

// Segment text: multi-byte characters, whitespace of every kind (runs at the end behave
// differently in Qwen's pre-tokenizer regex), lone surrogates, and pieces of added tokens.
const piece = fc.constantFrom(
  'é', '你好', '🙂', '👨‍👩‍👧', '🇫🇷', 'e\u0301', '\u1100\u1161\u11A8', 'ﬁ', '\uD83D', '\uDE42', '\uFFFD',
  ' ', '   ', '\n', '\n\n', '\t', '\r\n', ' \n ',
  'a', 'the', ' word', "'s", '123', '.', '<', '|', '>', '<|', '|>', '<|im_', 'im_end|>', '</think', 'system\n', 'user\n',
);
const segment = fc.string({ unit: fc.oneof({ weight: 3, arbitrary: piece }, fc.string({ unit: 'grapheme', maxLength: 1 })), maxLength: 40 });

describe('segment cache: encodeSegmented equals the plain tokenizer', () => {
  it('on random prompts built from a shared pool of segments and added tokens, cold, warm and mixed', async () => {
    // A cache of 8 KiB holds a few dozen segments: entries get evicted along the way.
    const tok = new Tokenizer(files, { segmentCacheBytes: 8 * 1024 });
    const addedToken = fc.constantFrom(...added);
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.option(fc.nat(), { nil: undefined }), addedToken), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
        async (pool, layout, reorder) => {
          // Prompt = pool segments (some repeated, some left out: empty) separated by added
          // tokens; the second prompt reuses part of the pool in another order.
          const build = (shift: number) => layout.map(([s, gap, t]) => (gap === undefined ? '' : pool[(s + shift) % pool.length]!) + t).join('') + pool[shift % pool.length]!;
          for (const shift of [0, 0, ...reorder]) {
            const text = build(shift);
            expect(await tok.encodeSegmented(text)).toEqual(await plain(text));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('on chat-shaped prompts whose system prompt repeats and whose user turn is new', async () => {
    const tok = new Tokenizer(files);
    await fc.assert(
      fc.asyncProperty(segment, fc.array(segment, { minLength: 2, maxLength: 4 }), async (system, users) => {
        for (const user of users) {
          const text = `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${user}<|im_end|>\n<|im_start|>assistant\n`;
          expect(await tok.encodeSegmented(text)).toEqual(await plain(text));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('handles the edges directly: no added token, only added tokens, adjacent ones, empty text', async () => {
    const tok = new Tokenizer(files);
    for (const text of ['', 'plain text, no added token 🙂 ', '<|im_start|><|im_end|><think></think>', '<|im_start|>\n\n<|im_start|>\n\n', 'ends in space   ', '\uD83D<|im_end|>\uDE42']) {
      expect(await tok.encodeSegmented(text)).toEqual(await plain(text));
      expect(await tok.encodeSegmented(text)).toEqual(await plain(text));
    }
  });
});

describe('SegmentCache', () => {
  it('stays within its byte bound, evicting the least recently used', () => {
    const c = new SegmentCache(4096);
    const ids = (n: number) => new Uint32Array(n);
    c.set('a', ids(100));
    c.set('b', ids(100));
    c.set('c', ids(100));
    expect(c.get('a')).toBeDefined(); // a is now the most recent
    for (let i = 0; i < 20; i++) c.set(`x${i}`, ids(100));
    expect(c.byteSize).toBeLessThanOrEqual(4096);
    expect(c.get('b')).toBeUndefined();
    c.set('huge', ids(1000)); // more than a quarter of the cache: not kept
    expect(c.get('huge')).toBeUndefined();
  });
});

describe('token-count lower bound', () => {
  it('is 384 bytes per token for Qwen3 (128-byte longest token, NFC shrinks at most 3x), 128 for ASCII, and never exceeds the real count', async () => {
    const tok = new Tokenizer(files);
    expect(tokenBound(JSON.parse(files.tokenizerJson))).toEqual({ maxTokenBytes: 128, maxBytesPerToken: 384, keepsAscii: true });
    // 128 spaces are one token: ASCII text is bounded by 128 bytes per token, not 384.
    expect(tok.minTokens(' '.repeat(128 * 50))).toBe(50);
    expect((await plain(' '.repeat(128 * 50))).length).toBe(50);
    const worst = [' '.repeat(128 * 50), ' '.repeat(128 * 20) + '你'.repeat(100), 'a'.repeat(3000), '\u1100\u1161\u11A8'.repeat(500), '\u212A'.repeat(1000), 'e\u0301'.repeat(500)];
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constantFrom(...worst), fc.string({ unit: fc.oneof(piece, fc.string({ unit: 'binary', maxLength: 1 })), maxLength: 400 })), async (text) => {
        expect(tok.minTokens(text)).toBeLessThanOrEqual((await plain(text)).length);
      }),
      { numRuns: 100 },
    );
  });

  it('is unknown for tokenizers that can drop or fuse text', () => {
    const bert = { model: { type: 'WordPiece', vocab: { '[UNK]': 0, hello: 1 } }, normalizer: { type: 'BertNormalizer' }, pre_tokenizer: { type: 'BertPreTokenizer' } };
    expect(tokenBound(bert).maxBytesPerToken).toBeNull();
    const stripping = { model: { type: 'BPE', vocab: { a: 0 }, byte_fallback: true }, added_tokens: [{ id: 1, content: '<mask>', lstrip: true }] };
    expect(tokenBound(stripping).maxBytesPerToken).toBeNull();
    const llama2 = {
      model: { type: 'BPE', vocab: { '▁the': 0, '<0x0A>': 1 }, byte_fallback: true },
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    };
    expect(tokenBound(llama2)).toEqual({ maxTokenBytes: 6, maxBytesPerToken: 6, keepsAscii: false });
  });
});
