// Tokenizing in the request path with the addon's byte-level BPE (native/core/bpe.h), for the
// tokenizer.json files it implements exactly: GPT-2 / Llama-3 / Qwen2-style BPE with their
// pre-tokenizer regexes and an NFC normalizer or none. It runs synchronously on the event loop
// (a 4K-token prompt costs less than a hop to libuv's pool; bench/README.md, "Preprocessing")
// and gives the ids of HF `tokenizers`' encode without special tokens, which
// test/native/bpe.diff.test.ts checks on random and real text.

import { addon, type BpeEncoder } from '../native/addon.js';
import { addedTokenSplitter, type AddedToken } from './segmented_encoder.js';

// NFC leaves a string unchanged when all its code units are below U+0300: no character
// there decomposes or composes with another one (test/native/bpe.diff.test.ts checks every
// pair). So most prompts skip normalize().
const MAY_CHANGE_UNDER_NFC = /[\u0300-\uffff]/;

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
}

// The pre-tokenizer regex tokenizer.json asks for, or null if it is not a Split(Isolated) +
// ByteLevel(use_regex: false) sequence or a lone ByteLevel(use_regex: true).
function preTokenizerPattern(pre: Json | null, gpt2Regex: string): string | null {
  if (pre === null) return null;
  const byteLevel = (p: Json | null, useRegex: boolean) =>
    p !== null && p['type'] === 'ByteLevel' && p['add_prefix_space'] === false && (p['use_regex'] ?? true) === useRegex;
  if (byteLevel(pre, true)) return gpt2Regex;
  const steps = pre['type'] === 'Sequence' && Array.isArray(pre['pretokenizers']) ? (pre['pretokenizers'] as unknown[]).map(obj) : [];
  const [split, bytes] = steps;
  if (steps.length !== 2 || split == null || !byteLevel(bytes ?? null, false)) return null;
  const regex = obj(split['pattern'])?.['Regex'];
  const isolated = split['type'] === 'Split' && split['behavior'] === 'Isolated' && split['invert'] === false;
  return isolated && typeof regex === 'string' ? regex : null;
}

export const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export class NativeBpe {
  private constructor(
    private readonly bpe: BpeEncoder,
    private readonly nfc: boolean,
    // Splits at added tokens as the tokenizer does (leftmost, longest first); null if none.
    private readonly splitter: RegExp | null,
    private readonly idOf: ReadonlyMap<string, number>,
    // The post-processor adds no tokens, so encode(text, true) is encode(text, false) too.
    readonly addsNothing: boolean,
  ) {}

  // Null when tokenizer.json is anything this encoder does not implement exactly (the
  // caller keeps HF `tokenizers`).
  static create(json: Json): NativeBpe | null {
    const model = obj(json['model']);
    const norm = obj(json['normalizer']);
    const post = obj(json['post_processor']);
    const added = (json['added_tokens'] as AddedToken[] | undefined) ?? [];
    if (model === null || model['type'] !== 'BPE' || model['dropout'] != null || model['byte_fallback'] === true) return null;
    if ((model['continuing_subword_prefix'] ?? '') !== '' || (model['end_of_word_suffix'] ?? '') !== '') return null;
    if (json['normalizer'] != null && norm?.['type'] !== 'NFC') return null;
    // Added tokens matched in the raw text, as whole strings.
    if (added.some((t) => (t.normalized !== false && norm !== null) || t.lstrip || t.rstrip || t.single_word || t.content.length === 0)) return null;
    const pattern = preTokenizerPattern(obj(json['pre_tokenizer']), GPT2_REGEX);
    const vocabMap = obj(model['vocab']);
    const merges = model['merges'];
    if (pattern === null || vocabMap === null || !Array.isArray(merges)) return null;

    const vocab: string[] = [];
    for (const [token, id] of Object.entries(vocabMap)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 1 << 24 || token.includes('\n')) return null;
      vocab[id] = token;
    }
    for (let i = 0; i < vocab.length; i++) vocab[i] ??= '';
    const mergeLines = (merges as unknown[]).map((m) => (Array.isArray(m) ? m.join(' ') : String(m)));
    let bpe: BpeEncoder;
    try {
      bpe = new addon.BpeEncoder({
        vocab: vocab.join('\n'),
        merges: mergeLines.join('\n'),
        added: added.map((t) => ({ content: t.content, id: t.id })),
        pattern,
        ignoreMerges: model['ignore_merges'] === true,
      });
    } catch {
      return null; // an unsupported pattern, or a vocabulary that is not byte-level
    }
    const split = added.length === 0 ? null : addedTokenSplitter(added);
    return new NativeBpe(bpe, norm !== null, split?.splitter ?? null, split?.idOf ?? new Map(), json['post_processor'] == null || post?.['type'] === 'ByteLevel');
  }

  // HF's encode(text, addSpecialTokens: false): added tokens split off, each text between
  // them NFC-normalized (when the tokenizer says so) and encoded.
  encode(text: string): number[] {
    if (!this.nfc || !MAY_CHANGE_UNDER_NFC.test(text)) return toArray(this.bpe.encode(text));
    const parts = this.splitter === null ? [text] : text.split(this.splitter); // odd: added tokens
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i % 2 === 1) out.push(this.idOf.get(part)!);
      else if (part.length > 0) for (const id of this.bpe.encode(part.normalize('NFC'), false)) out.push(id);
    }
    return out;
  }
}

function toArray(ids: Uint32Array): number[] {
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i]!;
  return out;
}
