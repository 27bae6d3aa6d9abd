// Reads the files of a Hugging Face model directory that pre/post-processing needs:
// tokenizer.json, tokenizer_config.json, and (when present) chat_template.jinja,
// generation_config.json and config.json. No weights.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvgateError } from '../errors.js';

type Json = Record<string, unknown>;

export interface ModelFiles {
  dir: string;
  tokenizerJson: string; // the raw text of tokenizer.json
  tokenizerConfig: Json;
  generationConfig: Json;
  modelConfig: Json;
  chatTemplate: string | null;
}

// The default for the embedded demo: Qwen3's tokenizer files, shipped in assets/ (see its
// NOTICE), two levels up from both src/preprocess and dist/preprocess.
export function defaultModelDir(): string {
  return fileURLToPath(new URL('../../assets/qwen3-tokenizer', import.meta.url));
}

// Qwen3's generation_config.json lists both end tokens as EOS; assets/ holds only the
// tokenizer files, so the default model gets that one fact supplied here.
const DEFAULT_GENERATION_CONFIG: Json = { eos_token_id: [151645, 151643] };

function readJson(path: string, required: boolean): Json {
  if (!existsSync(path)) {
    if (required) throw new KvgateError('invalid_config', `missing ${basename(path)} in ${dirname(path)}`);
    return {};
  }
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (err) {
    throw new KvgateError('invalid_config', `cannot read ${path}: ${(err as Error).message}`);
  }
}

// tokenizer_config.json's chat_template is a string, or a list of {name, template}
// where "default" is the chat template.
function templateFromConfig(cfg: Json): string | null {
  const t = cfg['chat_template'];
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const def = named.find((x) => x?.name === 'default') ?? named[0];
    if (typeof def?.template === 'string') return def.template;
  }
  return null;
}

// `path` is a model directory or a tokenizer.json file inside one.
export function readModelFiles(path: string = defaultModelDir(), chatTemplatePath?: string): ModelFiles {
  if (!existsSync(path)) throw new KvgateError('invalid_config', `model path ${path} does not exist`);
  const dir = statSync(path).isDirectory() ? path : dirname(path);
  const tokenizerPath = statSync(path).isDirectory() ? join(dir, 'tokenizer.json') : path;
  if (!existsSync(tokenizerPath)) throw new KvgateError('invalid_config', `no tokenizer.json in ${dir}`);
  const tokenizerConfig = readJson(join(dir, 'tokenizer_config.json'), false);
  let generationConfig = readJson(join(dir, 'generation_config.json'), false);
  if (dir === defaultModelDir() && Object.keys(generationConfig).length === 0) generationConfig = DEFAULT_GENERATION_CONFIG;
  let chatTemplate: string | null;
  if (chatTemplatePath !== undefined) {
    if (!existsSync(chatTemplatePath)) throw new KvgateError('invalid_config', `chat template ${chatTemplatePath} does not exist`);
    chatTemplate = readFileSync(chatTemplatePath, 'utf8');
  } else if (existsSync(join(dir, 'chat_template.jinja'))) {
    chatTemplate = readFileSync(join(dir, 'chat_template.jinja'), 'utf8');
  } else {
    chatTemplate = templateFromConfig(tokenizerConfig);
  }
  return {
    dir,
    tokenizerJson: readFileSync(tokenizerPath, 'utf8'),
    tokenizerConfig,
    generationConfig,
    modelConfig: readJson(join(dir, 'config.json'), false),
    chatTemplate,
  };
}
