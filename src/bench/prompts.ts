// Prompts as text, for targets that take no token ids (chat) or when asked (--prompt-format
// text). Each workload token id becomes one word from the packaged Qwen3 vocabulary that is a
// single token on its own: a space then 3-8 lowercase letters. A byte-level BPE splits text
// before every space, so such words re-tokenize to exactly one token each, and equal id runs
// give equal text: the workload's shared prefixes and lengths survive the trip through text
// (in Qwen3-family tokenizers exactly, in others about one token per word).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultModelDir } from '../preprocess/model_files.js';

let words: string[] | null = null;

function vocabularyWords(): string[] {
  if (words) return words;
  const tok = JSON.parse(readFileSync(join(defaultModelDir(), 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  // 'Ġ' is how byte-level BPE vocabularies spell a leading space.
  const found = Object.keys(tok.model.vocab)
    .filter((w) => /^Ġ[a-z]{3,8}$/.test(w))
    .sort()
    .map((w) => ' ' + w.slice(1));
  if (found.length < 1000) throw new Error(`the packaged tokenizer has only ${found.length} plain words`);
  words = found;
  return words;
}

export function idsToText(ids: readonly number[]): string {
  const w = vocabularyWords();
  let s = '';
  for (const id of ids) s += w[id % w.length];
  return s;
}
