// The model's tokenizer, loaded once per process from a HF tokenizer.json through HF's
// Rust `tokenizers` binding: encode runs on libuv's thread pool, off the event loop that
// streams every other response (bench/README.md, "Preprocessing", has the numbers).
// Decode is synchronous (id -> token piece -> the tokenizer's own decoder), because the
// incremental detokenizer calls it for every chunk of every stream.

import { createRequire } from 'node:module';
import type { Decoder, Tokenizer as HfTokenizer } from 'tokenizers';
import { KvgateError } from '../errors.js';
import type { ModelFiles } from './model_files.js';

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizerClass } = require('tokenizers') as typeof import('tokenizers');

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
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
  private readonly hf: HfTokenizer;
  private readonly decoder: Decoder | null;
  private readonly pieces: (string | null | undefined)[] = [];

  constructor(files: ModelFiles) {
    try {
      this.hf = HfTokenizerClass.fromString(files.tokenizerJson);
    } catch (err) {
      throw new KvgateError('invalid_config', `cannot load tokenizer.json from ${files.dir}: ${(err as Error).message}`);
    }
    this.decoder = this.hf.getDecoder();
    this.vocabSize = this.hf.getVocabSize(true);
    const added = (JSON.parse(files.tokenizerJson) as { added_tokens?: AddedTokenJson[] }).added_tokens ?? [];
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
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

  async encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    const enc = await this.hf.encode(text, null, { addSpecialTokens });
    return enc.getIds();
  }

  tokenToId(token: string): number | null {
    return this.hf.tokenToId(token) ?? null;
  }

  // Same result as the library's (async) decode; pieces are cached per id.
  decode(ids: readonly number[], skipSpecialTokens = true): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (skipSpecialTokens && this.specialIds.has(id)) continue;
      let piece = this.pieces[id];
      if (piece === undefined) {
        piece = id >= 0 && id < this.vocabSize ? this.hf.idToToken(id) : null;
        this.pieces[id] = piece;
      }
      if (piece !== null) tokens.push(piece);
    }
    if (tokens.length === 0) return '';
    return this.decoder ? this.decoder.decode(tokens) : tokens.join(' ');
  }
}
