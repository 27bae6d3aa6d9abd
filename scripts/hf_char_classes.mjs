// The code point classes HF tokenizers' regex engine (Oniguruma, with its own Unicode tables,
// older than Node's ICU) gives \p{L}, \p{N} and \s, probed through the `tokenizers` package
// itself: a tokenizer whose normalizer replaces each class's matches by a marker ('!', '#',
// '%', in the order the pre-tokenizer patterns test them) and whose pre-tokenizer splits the
// text into single characters, over a vocabulary of the markers, encodes every code point to
// its class. kvgate's tables must be these, not Node's: a code point Unicode assigned after
// Oniguruma's data (U+088F, U+A7D2) is a letter to Node and `other` to the engine's tokenizer,
// and the ids would differ.
import { createRequire } from 'node:module';

const { Tokenizer } = createRequire(import.meta.url)('tokenizers');

const MARKS = ['!', '#', '%']; // ASCII punctuation: class 0 themselves, and matched by no later class

/** Sorted [first, last, class] ranges (1 letter, 2 number, 3 space; others left out). */
export async function hfCharRanges() {
  const replace = (regex, mark) => ({ type: 'Replace', pattern: { Regex: regex }, content: mark });
  const tokenizer = Tokenizer.fromString(
    JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: { type: 'Sequence', normalizers: [replace('\\p{L}', MARKS[0]), replace('\\p{N}', MARKS[1]), replace('\\s', MARKS[2])] },
      pre_tokenizer: { type: 'Split', pattern: { Regex: '[\\s\\S]' }, behavior: 'Isolated', invert: false },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab: { other: 0, [MARKS[0]]: 1, [MARKS[1]]: 2, [MARKS[2]]: 3 }, unk_token: 'other' },
    }),
  );
  const cps = [];
  let text = '';
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue; // not characters: kOther
    cps.push(cp);
    text += String.fromCodePoint(cp);
  }
  const ids = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
  if (ids.length !== cps.length) throw new Error(`HF class probe: ${ids.length} tokens for ${cps.length} code points`);
  const cls = new Uint8Array(0x110000);
  cps.forEach((cp, i) => {
    if (!MARKS.includes(String.fromCodePoint(cp))) cls[cp] = ids[i];
  });
  const ranges = [];
  for (let cp = 0; cp < 0x110000; ) {
    let end = cp;
    while (end + 1 < 0x110000 && cls[end + 1] === cls[cp]) end++;
    if (cls[cp] !== 0) ranges.push([cp, end, cls[cp]]);
    cp = end + 1;
  }
  return ranges;
}
