// Synthetic prompts for the preprocessing benches: deterministic prose-like text from a
// synthetic vocabulary (so the tokenizers' word caches do not make every request a hit),
// punctuation, some CJK and emoji.

export function makeRng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rngVocab = makeRng(1);
const letters = 'etaoinshrdlucmfwypvbgkqjxz';
const VOCAB = Array.from({ length: 20000 }, () => Array.from({ length: 2 + Math.floor(rngVocab() * 9) }, () => letters[Math.floor(rngVocab() ** 1.5 * 26)]).join(''));
const EXTRA = ['的', '你好', '世界', 'Café', 'naïve', '🙂', '—', '123', '2026', 'API', 'JSON'];

export function prose(seed: number, words: number): string {
  const r = makeRng(seed);
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    out.push(r() < 0.03 ? EXTRA[Math.floor(r() * EXTRA.length)]! : VOCAB[Math.floor(r() * VOCAB.length)]!);
    if (r() < 0.08) out.push(r() < 0.5 ? '.' : ',');
  }
  return out.join(' ');
}

export function messagesFor(seed: number, words: number) {
  return [
    { role: 'system', content: 'You are a helpful assistant. Answer precisely and cite the documents you use.' },
    { role: 'user', content: prose(seed, words) },
  ];
}

// A long system prompt (95 % of the words) and a user turn of its own.
export function withSystem(systemSeed: number, userSeed: number, words: number) {
  const sys = Math.round(words * 0.95);
  return [
    { role: 'system', content: prose(systemSeed, sys) },
    { role: 'user', content: prose(userSeed, words - sys) },
  ];
}

