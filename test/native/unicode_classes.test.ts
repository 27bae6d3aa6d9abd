// native/core/unicode_classes.h is HF tokenizers' own \p{L}, \p{N} and \s on every code point
// (scripts/hf_char_classes.mjs probes them through the package), and the BPE pre-tokenizer
// agrees with HF on each code point whose class Node's newer Unicode data (ICU) would change:
// a CI run found U+088F and U+A7D2 (letters in Node's Unicode 17, unassigned to HF) split `'s`.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script, no types
import { hfCharRanges } from '../../scripts/hf_char_classes.mjs';
import { readModelFiles } from '../../src/preprocess/model_files.js';
import { NativeBpe } from '../../src/preprocess/native_bpe.js';
import { headerCharRanges } from '../reference/bpe.js';

type Range = [number, number, number];

function classes(ranges: Range[]): Uint8Array {
  const out = new Uint8Array(0x110000);
  for (const [first, last, cls] of ranges) out.fill(cls, first, last + 1);
  return out;
}

const table: Range[] = headerCharRanges();

describe('the BPE pre-tokenizer classes are HF tokenizers\' own', () => {
  it('unicode_classes.h equals HF\'s \\p{L}, \\p{N} and \\s on every code point', async () => {
    const hf: Range[] = await hfCharRanges();
    expect(table.length).toBeGreaterThan(500);
    expect(table).toEqual(hf);
  }, 120_000);

  it('native BPE gives HF\'s ids around every code point whose class Node\'s Unicode data changes', async () => {
    const L = /\p{L}/u, N = /\p{N}/u, S = /\p{White_Space}/u;
    const hfClass = classes(table);
    const changed: string[] = [];
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      const node = L.test(c) ? 1 : N.test(c) ? 2 : S.test(c) ? 3 : 0;
      if (node !== hfClass[cp]) changed.push(c);
    }
    expect(changed.length).toBeGreaterThan(0);
    const json = readModelFiles().tokenizerJson;
    const bpe = NativeBpe.create(JSON.parse(json))!;
    const hf = createRequire(import.meta.url)('tokenizers').Tokenizer.fromString(json);
    // Each in the contexts its class decides: before a contraction, after a letter, a digit, a space.
    const text = changed.map((c) => `${c}'s a${c}1${c} ${c}x\n`).join('');
    expect(bpe.encode(text)).toEqual((await hf.encode(text, null, { addSpecialTokens: false })).getIds());
  });
});
