// Encoding a chat prompt segment by segment. HF tokenizers split added tokens (<|im_start|>,
// <|im_end|>, ...) off the text before they normalize and pre-tokenize, so the ids of the text
// between two of them (a segment: a system prompt, an earlier turn) do not depend on what
// surrounds it. Segments seen before come from a SegmentCache; the others are encoded in one
// call and cut out of the result at the added tokens' ids, giving the same ids as encoding
// the whole prompt.

import { SegmentCache } from './segment_cache.js';

export interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
  normalized?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

export const DEFAULT_SEGMENT_CACHE_BYTES = 64 * 1024 * 1024;

// Splitting and hashing run on the event loop (~2 ms per MiB): longer prompts skip the cache.
const MAX_SEGMENTED_CHARS = 1024 * 1024;

type Encode = (text: string, signal?: AbortSignal) => Promise<number[]>;

// Splits text at the added tokens as HF tokenizers do (leftmost match, longest first):
// `text.split(splitter)` gives the texts between them at even indexes, the tokens at odd ones.
export function addedTokenSplitter(added: readonly AddedToken[]): { splitter: RegExp; idOf: Map<string, number> } {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const contents = added.map((t) => t.content).sort((a, b) => b.length - a.length);
  return { splitter: new RegExp(`(${contents.map(escape).join('|')})`), idOf: new Map(added.map((t) => [t.content, t.id])) };
}

function prependsFirstOnly(pre: unknown): boolean {
  const p = pre as { type?: unknown; prepend_scheme?: unknown; pretokenizers?: unknown[] } | null;
  if (p === null || typeof p !== 'object') return false;
  if (p.type === 'Metaspace') return p.prepend_scheme === 'first';
  return p.type === 'Sequence' && (p.pretokenizers ?? []).some(prependsFirstOnly);
}

function copy(ids: readonly number[], start: number, end: number): Uint32Array {
  const out = new Uint32Array(end - start);
  for (let i = start; i < end; i++) out[i - start] = ids[i]!;
  return out;
}

export class SegmentedEncoder {
  private constructor(
    // Splits at added tokens as the tokenizer does: leftmost match, longest first.
    private readonly splitter: RegExp,
    private readonly idOf: Map<string, number>,
    private readonly isAdded: Uint8Array, // by id
    // An added token that joins the new segments of a prompt into one encode.
    private readonly separator: string,
    private readonly cache: SegmentCache,
    // The tokenizer's encode without special tokens.
    private readonly encodeWhole: Encode,
  ) {}

  // Null when segments are not independent for this tokenizer: added tokens matched after
  // normalization, absorbing whitespace or bound to words, or a pre-tokenizer that treats the
  // first segment differently (Metaspace's prepend_scheme "first").
  static create(json: Record<string, unknown>, added: AddedToken[], vocabSize: number, cacheBytes: number, encodeWhole: Encode): SegmentedEncoder | null {
    if (cacheBytes <= 0 || added.length === 0) return null;
    if (added.some((t) => t.normalized !== false || t.lstrip || t.rstrip || t.single_word || t.content.length === 0)) return null;
    if (prependsFirstOnly(json['pre_tokenizer'])) return null;
    const isAdded = new Uint8Array(Math.max(vocabSize, ...added.map((t) => t.id + 1)));
    for (const t of added) isAdded[t.id] = 1;
    const { splitter, idOf } = addedTokenSplitter(added);
    return new SegmentedEncoder(
      splitter,
      idOf,
      isAdded,
      added[0]!.content,
      new SegmentCache(cacheBytes),
      encodeWhole,
    );
  }

  async encode(text: string, signal?: AbortSignal): Promise<number[]> {
    if (text.length > MAX_SEGMENTED_CHARS) return this.encodeWhole(text, signal);
    const parts = text.split(this.splitter); // even: segments, odd: added tokens
    const ids: (Uint32Array | undefined)[] = new Array(parts.length);
    const keys: string[] = new Array(parts.length);
    const missing: number[] = [];
    let nonEmpty = 0;
    for (let i = 0; i < parts.length; i += 2) {
      if (parts[i]!.length === 0) continue;
      nonEmpty++;
      keys[i] = SegmentCache.key(parts[i]!);
      ids[i] = this.cache.get(keys[i]!);
      if (ids[i] === undefined) missing.push(i);
    }
    if (missing.length > 0) {
      // Nothing cached: encode the prompt itself. Else the new segments, joined.
      const whole = missing.length === nonEmpty;
      const encoded = await this.encodeWhole(whole ? text : missing.map((i) => parts[i]!).join(this.separator), signal);
      const sepId = this.idOf.get(this.separator)!;
      const boundaries = whole ? parts.filter((_, i) => i % 2 === 1).map((t) => this.idOf.get(t)!) : missing.slice(1).map(() => sepId);
      const groups = this.splitIds(encoded, boundaries);
      // A segment that yields an added id (an unknown-token id that is also an added token)
      // cannot be cut out of the ids: no caching.
      if (groups === null) return whole ? encoded : this.encodeWhole(text, signal);
      const at = whole ? parts.map((_, i) => i).filter((i) => i % 2 === 0) : missing;
      at.forEach((i, g) => {
        if (parts[i]!.length === 0) return;
        ids[i] = groups[g]!;
        this.cache.set(keys[i]!, groups[g]!);
      });
      if (whole) return encoded;
    }
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 1) {
        out.push(this.idOf.get(parts[i]!)!);
        continue;
      }
      const s = ids[i];
      if (s !== undefined) for (let j = 0; j < s.length; j++) out.push(s[j]!);
    }
    return out;
  }

  // Splits encoded ids at the added-token ids `boundaries` (in order) into boundaries+1
  // groups; null when an added id shows up anywhere else (a segment produced one).
  private splitIds(ids: readonly number[], boundaries: readonly number[]): Uint32Array[] | null {
    const groups: Uint32Array[] = [];
    let start = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (this.isAdded[id] !== 1) continue;
      if (id !== boundaries[groups.length]) return null;
      groups.push(copy(ids, start, i));
      start = i + 1;
    }
    if (groups.length !== boundaries.length) return null;
    groups.push(copy(ids, start, ids.length));
    return groups;
  }
}
