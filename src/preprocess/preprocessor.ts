// Everything the frontend needs to turn a request into token ids for one model, loaded
// once at start-up: the tokenizer, the parsed chat template, the model's context length.

import { KvgateError } from '../errors.js';
import { ChatTemplate, type RenderInput } from './chat_template.js';
import { readModelFiles } from './model_files.js';
import { Tokenizer } from './tokenizer.js';

export interface PreprocessorOptions {
  // A model directory (or tokenizer.json) with the tokenizer files; the packaged
  // Qwen3 tokenizer when absent.
  tokenizerPath?: string;
  // A Jinja file that replaces the model's chat template.
  chatTemplatePath?: string;
  // Bytes of cached prompt-segment token ids (0: no cache).
  segmentCacheBytes?: number;
}

export class Preprocessor {
  readonly tokenizer: Tokenizer;
  readonly modelDir: string;
  // tokenizer_config.json model_max_length or config.json max_position_embeddings.
  readonly maxModelLength: number | null;
  private readonly template: ChatTemplate | null;

  constructor(options: PreprocessorOptions = {}) {
    const files = readModelFiles(options.tokenizerPath, options.chatTemplatePath);
    this.modelDir = files.dir;
    this.tokenizer = new Tokenizer(files, { segmentCacheBytes: options.segmentCacheBytes });
    this.template = files.chatTemplate === null ? null : new ChatTemplate(files.chatTemplate, { bos_token: this.tokenizer.bosToken, eos_token: this.tokenizer.eosToken });
    const lengths = [files.tokenizerConfig['model_max_length'], files.modelConfig['max_position_embeddings']];
    // HF writes a huge sentinel (1e30) for "no limit".
    const len = lengths.find((v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e9);
    this.maxModelLength = len ?? null;
  }

  renderChat(input: RenderInput): string {
    if (this.template === null) {
      throw new KvgateError('invalid_request', `the model in ${this.modelDir} has no chat template; use /v1/completions`, 'messages');
    }
    return this.template.render(input);
  }

  // The chat template already contains the special tokens it wants. Its segments between
  // them (a system prompt, earlier turns) repeat across requests: cached.
  encodeChat(prompt: string, signal?: AbortSignal): Promise<number[]> {
    return this.tokenizer.encodeSegmented(prompt, signal);
  }

  // Plain completions get the tokenizer's own special tokens (e.g. Llama's BOS).
  encodeCompletion(prompt: string, signal?: AbortSignal): Promise<number[]> {
    return this.tokenizer.encode(prompt, true, signal);
  }
}
