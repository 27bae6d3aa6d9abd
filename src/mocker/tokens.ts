// What the mocker "generates": deterministic token ids that a Qwen3 tokenizer decodes to readable
// words, so a frontend detokenizing the mocker's output shows text, not noise.
//
// The mocker has no tokenizer. A `text` prompt is tokenized trivially (one id per UTF-8 byte);
// that is enough for prefix caching and token counts, and /model_info says so.

// Qwen3 ids of common words, each a single token with a leading space (checked against the real
// Qwen3 tokenizer in test/mocker/tokens.test.ts).
export const WORDS: ReadonlyArray<readonly [id: number, text: string]> = [
  [279, ' the'], [315, ' of'], [323, ' and'], [311, ' to'], [304, ' in'], [374, ' is'], [429, ' that'], [369, ' for'],
  [432, ' it'], [438, ' as'], [448, ' with'], [572, ' was'], [389, ' on'], [387, ' be'], [553, ' by'], [518, ' at'],
  [419, ' this'], [525, ' are'], [504, ' from'], [476, ' or'], [458, ' an'], [892, ' which'], [537, ' not'], [714, ' but'],
  [614, ' have'], [825, ' one'], [678, ' all'], [1033, ' were'], [807, ' they'], [862, ' their'], [582, ' we'], [646, ' can'],
  [803, ' more'], [702, ' has'], [1083, ' also'], [501, ' new'], [1008, ' other'], [1045, ' some'], [882, ' time'], [1119, ' into'],
  [1614, ' model'], [821, ' data'], [6500, ' cache'], [3950, ' token'], [9273, ' router'], [4712, ' engine'], [4937, ' fast'], [4285, ' simple'],
  [2613, ' small'], [3460, ' large'], [1849, ' system'], [1681, ' request'], [897, ' value'], [1156, ' first'], [1817, ' each'], [1657, ' many'],
  [916, ' over'], [1283, ' after'], [1429, ' most'], [1172, ' only'], [1741, ' such'], [1221, ' then'], [1493, ' these'], [979, ' when'],
];

const WORD_TEXT = new Map<number, string>(WORDS.map(([id, text]) => [id, text]));

// Text of an output token (the mocker only outputs WORDS and EOS).
export function tokenText(id: number, eosTokenId: number, skipSpecialTokens: boolean): string {
  if (id === eosTokenId) return skipSpecialTokens ? '' : '<|im_end|>';
  return WORD_TEXT.get(id) ?? '';
}

// `text` prompts without a tokenizer: one id per UTF-8 byte.
export function byteTokenize(text: string): number[] {
  return Array.from(Buffer.from(text, 'utf8'));
}

// FNV-1a over the seed and the prompt: the request's RNG seed, so one prompt always yields the same
// output (as a temperature-0 engine would), whatever its rid.
export function requestSeed(seed: number, inputIds: readonly number[], samplingSeed: number | null): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  const mix = (v: number) => {
    h ^= v & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (v >>> 8) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (v >>> 16) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= v >>> 24;
    h = Math.imul(h, 0x01000193);
  };
  for (const id of inputIds) mix(id);
  if (samplingSeed !== null) mix(samplingSeed | 0);
  return h >>> 0;
}

// mulberry32: small, fast, good enough for picking words.
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

// Where a request would emit EOS on its own (1-based position of the EOS token), so output
// length looks natural: between just over half of max_new_tokens and a quarter beyond it (beyond
// means the request runs into the length limit). Never before min_new_tokens.
export function naturalEosPosition(rng: Rng, maxNewTokens: number, minNewTokens: number): number {
  const lo = Math.max(Math.ceil(maxNewTokens / 2) + 1, minNewTokens + 1);
  const hi = Math.max(lo, maxNewTokens + Math.ceil(maxNewTokens / 4));
  return rng.int(lo, hi);
}

export function nextWord(rng: Rng): number {
  return WORDS[Math.floor(rng.next() * WORDS.length)]![0];
}
