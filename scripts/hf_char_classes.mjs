// The code point classes HF tokenizers' regex engine (Oniguruma, with its own Unicode tables,
// older than Node's ICU) gives \p{L}, \p{N} and \s, probed through the `tokenizers` package
// itself: a tokenizer whose pre-tokenizer removes every match of the class and splits the rest
// into single characters, over a vocabulary of every code point, returns the ids of the code
// points the class does not match. kvgate's tables must be these, not Node's: a code point
// Unicode assigned after Oniguruma's data (U+088F, U+A7D2) is a letter to Node and `other` to
// the engine's tokenizer, and the ids would differ.
import { createRequire } from 'node:module';

const { Tokenizer } = createRequire(import.meta.url)('tokenizers');

const CHUNK = 0x10000;
const isSurrogate = (cp) => cp >= 0xd800 && cp <= 0xdfff;

async function unmatched(regex, lo, hi) {
  const vocab = { '[UNK]': 0 };
  let text = '';
  for (let cp = lo; cp < hi; cp++) {
    if (isSurrogate(cp)) continue;
    const c = String.fromCodePoint(cp);
    vocab[c] = cp + 1;
    text += c;
  }
  const split = (pattern, behavior) => ({ type: 'Split', pattern: { Regex: pattern }, behavior, invert: false });
  const tokenizer = Tokenizer.fromString(
    JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split(regex, 'Removed'), split('[\\s\\S]', 'Isolated')] },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
    }),
  );
  const ids = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
  if (ids.includes(0)) throw new Error(`probe of ${regex}: a piece is not one code point`);
  return new Set(ids.map((id) => id - 1));
}

/** Sorted [first, last, class] ranges (1 letter, 2 number, 3 space; others left out). */
export async function hfCharRanges() {
  const cls = new Uint8Array(0x110000);
  // Later classes do not overwrite earlier ones: the order the pre-tokenizer patterns test them.
  for (const [regex, c] of [['\\p{L}', 1], ['\\p{N}', 2], ['\\s', 3]]) {
    for (let lo = 0; lo < 0x110000; lo += CHUNK) {
      const not = await unmatched(regex, lo, lo + CHUNK);
      for (let cp = lo; cp < lo + CHUNK; cp++) if (!isSurrogate(cp) && !not.has(cp) && cls[cp] === 0) cls[cp] = c;
    }
  }
  const ranges = [];
  for (let cp = 0; cp < 0x110000; ) {
    let end = cp;
    while (end + 1 < 0x110000 && cls[end + 1] === cls[cp]) end++;
    if (cls[cp] !== 0) ranges.push([cp, end, cls[cp]]);
    cp = end + 1;
  }
  return ranges;
}
