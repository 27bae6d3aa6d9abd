// Raw token bytes with the real Qwen3 tokenizer (byte-level BPE): the bytes of a text's tokens
// join to its UTF-8, also where a token holds part of a character (its text reads U+FFFD).

import { beforeAll, describe, expect, it } from 'vitest';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';
import { byteLevelBytes } from '../../src/preprocess/token_bytes.js';

let pre: Preprocessor;
beforeAll(() => {
  pre = new Preprocessor();
});

describe('Tokenizer.tokenBytes', () => {
  it('gives the raw bytes of every token, partial characters included', async () => {
    const t = pre.tokenizer;
    for (const text of ['hello world', 'naïve café ünïcödé', '鹦鹉 🦜🦩 𝄞 ꙮ']) {
      const ids = await t.encode(text, false);
      expect(Buffer.from(ids.flatMap((id) => t.tokenBytes(id)))).toEqual(Buffer.from(text, 'utf8'));
    }
    // Some token of the rare characters is part of one: its text cannot show it, its bytes do.
    const ids = await t.encode('🦜🦩 𝄞 ꙮ', false);
    const partial = ids.filter((id) => t.decode([id], false).includes('\ufffd'));
    expect(partial.length).toBeGreaterThan(0);
    for (const id of partial) expect(t.tokenBytes(id).length).toBeGreaterThan(0);
  });

  it('gives an added (special) token its text\'s UTF-8', () => {
    expect(Buffer.from(pre.tokenizer.tokenBytes(151645)).toString()).toBe('<|im_end|>');
  });

  it('reads the byte-level alphabet: printable bytes as themselves, the rest from U+0100', () => {
    expect(byteLevelBytes('Ġthe')).toEqual([0x20, 0x74, 0x68, 0x65]);
    expect(byteLevelBytes('\u0100')).toEqual([0]);
    expect(byteLevelBytes('ä')).toEqual([0xe4]);
    expect(byteLevelBytes('€')).toBeNull();
  });
});
