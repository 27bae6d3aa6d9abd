// The model's tokenizer, loaded once per process from a HF tokenizer.json. Encode runs the
// addon's byte-level BPE synchronously when it implements the tokenizer (native_bpe.ts) and the
// text is small; otherwise HF's Rust `tokenizers` binding on libuv's thread pool, off the
// event loop that streams every other response (bench/README.md, "Preprocessing").
// Decode is synchronous (id -> token piece -> the tokenizer's own decoder), because the
// incremental detokenizer calls it for every chunk of every stream. Every pool encode goes
// through the process's TokenizeLimiter (large inputs queue, small ones never wait behind
// them); chat prompts reuse the ids of segments seen before (SegmentedEncoder).

import { createRequire } from 'node:module';
import type { Decoder, Tokenizer as HfTokenizer } from 'tokenizers';
import { KvgateError } from '../errors.js';
import type { ModelFiles } from './model_files.js';
import { NativeBpe } from './native_bpe.js';
import { DEFAULT_SEGMENT_CACHE_BYTES, SegmentedEncoder, type AddedToken } from './segmented_encoder.js';
import { minTokens, tokenBound, type TokenBound } from './token_bound.js';
import { byteLevelBytes, isByteLevel } from './token_bytes.js';
import { tokenizeLimiter, type TokenizeLimiter } from './tokenize_limiter.js';

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizerClass } = require('tokenizers') as typeof import('tokenizers');

// Texts up to this many chars are encoded natively on the event loop (~1 ms at this size,
// bench/README.md); longer ones go to the pool through the limiter, so one huge prompt does
// not stall every stream.
export const NATIVE_SYNC_CHARS = 16 * 1024;

export interface TokenizerOptions {
  // Bytes of segment token ids kept for encodeSegmented (0: no cache).
  segmentCacheBytes?: number;
  limiter?: TokenizeLimiter;
  // false: always HF `tokenizers` (benchmarks and differential tests compare the two).
  native?: boolean;
}

// tokenizer_config.json writes special tokens as a string or as an AddedToken dict.
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

export class Tokenizer {
  // Ids are valid in [0, vocabSize).
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  // Token ids that end generation: the tokenizer's EOS plus generation_config/config
  // `eos_token_id` (Qwen3: <|im_end|> 151645 and <|endoftext|> 151643).
  readonly eosTokenIds: readonly number[];
  readonly specialIds: ReadonlySet<number>;
  // Most bytes of text one token stands for, or null when the tokenizer can drop or fuse
  // text (token_bound.ts): a text of B bytes has at least B / maxBytesPerToken tokens.
  readonly maxBytesPerToken: number | null;
  private readonly bound: TokenBound;
  private readonly hf: HfTokenizer;
  // The addon's encoder, when it implements this tokenizer.json exactly.
  readonly native: NativeBpe | null;
  private readonly limiter: TokenizeLimiter;
  private readonly segments: SegmentedEncoder | null;
  private readonly decoder: Decoder | null;
  private readonly pieces: (string | null | undefined)[] = [];
  private readonly byteLevel: boolean;
  private readonly addedIds: ReadonlySet<number>;

  constructor(files: ModelFiles, options: TokenizerOptions = {}) {
    try {
      this.hf = HfTokenizerClass.fromString(files.tokenizerJson);
    } catch (err) {
      throw new KvgateError('invalid_config', `cannot load tokenizer.json from ${files.dir}: ${(err as Error).message}`);
    }
    this.decoder = this.hf.getDecoder();
    this.vocabSize = this.hf.getVocabSize(true);
    const json = JSON.parse(files.tokenizerJson) as Record<string, unknown>;
    const added = (json['added_tokens'] as AddedToken[] | undefined) ?? [];
    this.bound = tokenBound(json);
    this.maxBytesPerToken = this.bound.maxBytesPerToken;
    this.limiter = options.limiter ?? tokenizeLimiter;
    this.native = options.native === false ? null : NativeBpe.create(json);
    this.segments = SegmentedEncoder.create(json, added, this.vocabSize, options.segmentCacheBytes ?? DEFAULT_SEGMENT_CACHE_BYTES, (text, signal) =>
      this.encode(text, false, signal),
    );
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    this.addedIds = new Set(added.map((t) => t.id));
    this.byteLevel = isByteLevel(json);
    this.bosToken = tokenContent(files.tokenizerConfig['bos_token']);
    this.eosToken = tokenContent(files.tokenizerConfig['eos_token']);
    const eos = new Set<number>([
      ...idList(files.generationConfig['eos_token_id']),
      ...idList(files.modelConfig['eos_token_id']),
    ]);
    const eosId = this.eosToken === null ? null : this.hf.tokenToId(this.eosToken);
    if (eosId !== null && eosId !== undefined) eos.add(eosId);
    this.eosTokenIds = [...eos];
  }

  // The fewest tokens `text` can have (0 when unknown), without tokenizing it.
  minTokens(text: string): number {
    return minTokens(this.bound, text);
  }

  // A signal that aborts while a large input waits for the tokenizer rejects the encode.
  async encode(text: string, addSpecialTokens: boolean, signal?: AbortSignal): Promise<number[]> {
    const n = this.native;
    if (n !== null && text.length <= NATIVE_SYNC_CHARS && (!addSpecialTokens || n.addsNothing)) return n.encode(text);
    return this.limiter.run(text.length, async () => (await this.hf.encode(text, null, { addSpecialTokens })).getIds(), signal);
  }

  // encode(text, false), with the ids of segments seen before taken from the cache.
  encodeSegmented(text: string, signal?: AbortSignal): Promise<number[]> {
    return this.segments === null ? this.encode(text, false, signal) : this.segments.encode(text, signal);
  }

  tokenToId(token: string): number | null {
    return this.hf.tokenToId(token) ?? null;
  }

  // The bytes token `id` stands for (token_bytes.ts): raw bytes, even part of a character.
  tokenBytes(id: number): number[] {
    if (this.byteLevel && !this.addedIds.has(id)) {
      const piece = this.piece(id);
      const bytes = piece === null ? null : byteLevelBytes(piece);
      if (bytes) return bytes;
    }
    return [...Buffer.from(this.decode([id], false), 'utf8')];
  }

  private piece(id: number): string | null {
    let piece = this.pieces[id];
    if (piece === undefined) {
      piece = id >= 0 && id < this.vocabSize ? this.hf.idToToken(id) : null;
      this.pieces[id] = piece;
    }
    return piece;
  }

  // Same result as the library's (async) decode; pieces are cached per id.
  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (skipSpecialTokens && this.specialIds.has(id)) continue;
      const piece = this.piece(id);
      if (piece !== null) tokens.push(piece);
    }
    if (tokens.length === 0) return '';
    return this.decoder ? this.decoder.decode(tokens) : tokens.join(' ');
  }
}
