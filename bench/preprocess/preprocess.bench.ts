// Pre/post-processing cost per request with the real Qwen3 files: chat template + tokenize
// of a ~4K-token prompt (p50/p99), for the tokenizer kvgate uses (HF `tokenizers`, Rust,
// async on the libuv pool) and the pure-JS `@huggingface/tokenizers`; plus one-time load
// costs, incremental detokenization and stop-string matching per token.
//
//   npm run bench:preprocess            (ITERS=200 by default; ITERS=50 for a quick run)

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { IncrementalDetokenizer } from '../../src/preprocess/detokenizer.js';
import { defaultModelDir } from '../../src/preprocess/model_files.js';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';
import { StopMatcher } from '../../src/preprocess/stop_matcher.js';

const ITERS = Number(process.env['ITERS'] ?? 200);
const TARGET_TOKENS = 4096;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(name: string, samples: number[], unit = 'ms'): void {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  console.log(`${name.padEnd(58)} p50 ${pct(s, 50).toFixed(3)} ${unit}  p99 ${pct(s, 99).toFixed(3)} ${unit}  mean ${mean.toFixed(3)} ${unit}  (n=${s.length})`);
}

// Deterministic prose-like text: words from a synthetic vocabulary (so the tokenizers'
// word caches do not make every request a cache hit), punctuation, some CJK and emoji.
function makeRng(seed: number) {
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

function prose(seed: number, words: number): string {
  const r = makeRng(seed);
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    out.push(r() < 0.03 ? EXTRA[Math.floor(r() * EXTRA.length)]! : VOCAB[Math.floor(r() * VOCAB.length)]!);
    if (r() < 0.08) out.push(r() < 0.5 ? '.' : ',');
  }
  return out.join(' ');
}

function messagesFor(seed: number, words: number) {
  return [
    { role: 'system', content: 'You are a helpful assistant. Answer precisely and cite the documents you use.' },
    { role: 'user', content: prose(seed, words) },
  ];
}

async function main(): Promise<void> {
  const dir = defaultModelDir();
  console.log(`node ${process.version}, ${ITERS} iterations, Qwen3 files from ${dir}\n`);

  // One-time costs.
  let t = performance.now();
  const pre = new Preprocessor();
  console.log(`load: kvgate Preprocessor (tokenizers Rust + template)    ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const js = new JsTokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), cfg);
  console.log(`load: @huggingface/tokenizers (pure JS)                  ${(performance.now() - t).toFixed(0)} ms`);
  const compiles: number[] = [];
  for (let i = 0; i < 50; i++) {
    t = performance.now();
    new Template(cfg.chat_template);
    compiles.push(performance.now() - t);
  }
  summary('compile the Qwen3 chat template (done once, cached)', compiles);

  // Size the user message so the rendered prompt is ~4K tokens.
  let words = 2000;
  for (let k = 0; k < 4; k++) {
    const n = (await pre.encodeChat(pre.renderChat({ messages: messagesFor(0, words), addGenerationPrompt: true }))).length;
    words = Math.round((words * TARGET_TOKENS) / n);
  }
  const sample = pre.renderChat({ messages: messagesFor(0, words), addGenerationPrompt: true });
  const sampleIds = await pre.encodeChat(sample);
  console.log(`prompt: ${words} words, ${sample.length} chars, ${sampleIds.length} tokens\n`);
  const jsIds = js.encode(sample, { add_special_tokens: false }).ids;
  if (JSON.stringify(jsIds) !== JSON.stringify(sampleIds)) throw new Error('the two tokenizers disagree on the prompt');

  const prompts = Array.from({ length: ITERS }, (_, i) => messagesFor(i + 1, words));
  const rendered = prompts.map((m) => pre.renderChat({ messages: m, addGenerationPrompt: true }));
  for (let i = 0; i < 10; i++) {
    await pre.encodeChat(rendered[i]!);
    js.encode(rendered[i]!, { add_special_tokens: false });
  }

  const render: number[] = [];
  for (const m of prompts) {
    t = performance.now();
    pre.renderChat({ messages: m, addGenerationPrompt: true });
    render.push(performance.now() - t);
  }
  summary('chat template render (4K-token prompt)', render);

  // The full per-request path kvgate runs: render + tokenize (Rust, async).
  const full: number[] = [];
  const blocked: number[] = [];
  for (const m of prompts) {
    t = performance.now();
    const p = pre.encodeChat(pre.renderChat({ messages: m, addGenerationPrompt: true }));
    blocked.push(performance.now() - t); // event-loop time: render + handing the text over
    await p;
    full.push(performance.now() - t);
  }
  summary('kvgate: render + tokenize, tokenizers (Rust), wall', full);
  summary('kvgate: ... of which the event loop is blocked', blocked);

  const jsFull: number[] = [];
  for (const text of rendered) {
    t = performance.now();
    js.encode(text, { add_special_tokens: false });
    jsFull.push(performance.now() - t);
  }
  summary('tokenize only, @huggingface/tokenizers (JS, all blocking)', jsFull);
  const rustOnly: number[] = [];
  for (const text of rendered) {
    t = performance.now();
    await pre.encodeChat(text);
    rustOnly.push(performance.now() - t);
  }
  summary('tokenize only, tokenizers (Rust, async)', rustOnly);

  // Same prompt every time (word caches warm): the best case.
  const same: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    t = performance.now();
    await pre.encodeChat(pre.renderChat({ messages: prompts[0]!, addGenerationPrompt: true }));
    same.push(performance.now() - t);
  }
  summary('kvgate: render + tokenize, one prompt repeated', same);

  // Four requests at once: Rust encodes run on the libuv pool in parallel.
  const batches = Math.max(1, Math.floor(ITERS / 4));
  t = performance.now();
  for (let b = 0; b < batches; b++) await Promise.all(rendered.slice(b * 4, b * 4 + 4).map((x) => pre.encodeChat(x)));
  const rustConc = (batches * 4) / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let b = 0; b < batches; b++) for (const x of rendered.slice(b * 4, b * 4 + 4)) js.encode(x, { add_special_tokens: false });
  const jsConc = (batches * 4) / ((performance.now() - t) / 1000);
  console.log(`throughput, 4 concurrent 4K-token encodes:  Rust ${rustConc.toFixed(0)} req/s, JS ${jsConc.toFixed(0)} req/s\n`);

  // Post-processing per generated token: incremental detokenization + 4 stop strings.
  const perToken: number[] = [];
  for (let round = 0; round < 20; round++) {
    const d = new IncrementalDetokenizer(pre.tokenizer);
    const s = new StopMatcher(['</answer>', '\n\nUser:', 'STOP', '<|im_start|>']);
    t = performance.now();
    for (const id of sampleIds) s.push(d.push([id]));
    s.push(d.flush());
    perToken.push(((performance.now() - t) * 1000) / sampleIds.length);
  }
  summary('detokenize + 4 stop strings, per token (4K-token stream)', perToken, 'µs');
}

void main();
