// Tokenizer encode, side by side in one run on the real Qwen3 files: kvgate's native
// byte-level BPE (synchronous, src/preprocess/native_bpe.ts), HF `tokenizers` (Rust; it has
// no synchronous encode, so its async encode on libuv's pool as kvgate called it before),
// the pure-JS `@huggingface/tokenizers` (synchronous) and the naive reference
// (test/reference/bpe.ts). Per-call latency and throughput for a fresh 512-token and
// 4K-token prompt; then the whole preprocess (chat template + tokenize, segment cache on) of
// a 4K-token chat prompt, fresh and with a system prompt seen before, native vs HF; and the
// chat template render alone, @huggingface/jinja's interpreter vs the compiled template.
//
//   npm run bench:tokenizer                (ITERS=200 by default)
//   npm run bench:tokenizer -- template    (the chat template render only)

import { Template } from '@huggingface/jinja';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { createRequire } from 'node:module';
import { readModelFiles } from '../../src/preprocess/model_files.js';
import { ChatTemplate, type RenderInput } from '../../src/preprocess/chat_template.js';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';
import { Tokenizer } from '../../src/preprocess/tokenizer.js';
import { ReferenceBpe } from '../../test/reference/bpe.js';
import { makeRng, messagesFor, prose, withSystem } from './prose.js';

const ITERS = Number(process.env['ITERS'] ?? 200);
const require = createRequire(import.meta.url);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Row {
  name: string;
  p50: number;
  p99: number;
  tokPerS: number;
}

// Runs every encoder on every input in turn (rotating who goes first), so all see the same
// machine load.
async function compare(inputs: string[], encoders: [string, (s: string) => unknown][], tokens: number): Promise<Row[]> {
  const times = encoders.map(() => [] as number[]);
  for (const [i, text] of inputs.entries()) {
    for (let k = 0; k < encoders.length; k++) {
      const e = (i + k) % encoders.length;
      const t = performance.now();
      await encoders[e]![1](text);
      times[e]!.push(performance.now() - t);
    }
  }
  return encoders.map(([name], e) => {
    const s = [...times[e]!].sort((a, b) => a - b);
    const total = s.reduce((a, b) => a + b, 0);
    return { name, p50: pct(s, 50), p99: pct(s, 99), tokPerS: (tokens * s.length) / (total / 1000) };
  });
}

function print(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  const base = rows[0]!.p50;
  for (const r of rows) {
    console.log(
      `  ${r.name.padEnd(44)} p50 ${r.p50.toFixed(3).padStart(8)} ms  p99 ${r.p99.toFixed(3).padStart(8)} ms  ${(r.tokPerS / 1e6).toFixed(2).padStart(6)} M tok/s  p50 ${(r.p50 / base).toFixed(1)}x native`,
    );
  }
}

async function main(): Promise<void> {
  const files = readModelFiles();
  if (process.argv.includes('template')) return templateRender(files.chatTemplate!);
  const json = JSON.parse(files.tokenizerJson) as Record<string, unknown>;
  let t = performance.now();
  const native = new Tokenizer(files);
  console.log(`node ${process.version}, ${ITERS} iterations`);
  console.log(`load: Tokenizer with the native encoder   ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  const hfOnly = new Tokenizer(files, { native: false });
  console.log(`load: Tokenizer, HF tokenizers only       ${(performance.now() - t).toFixed(0)} ms`);
  const bpe = native.native!;
  const hf = require('tokenizers').Tokenizer.fromString(files.tokenizerJson);
  const js = new JsTokenizer(json, JSON.parse(JSON.stringify(files.tokenizerConfig)));
  const ref = new ReferenceBpe(json);

  // Words per prompt for a target token count (the synthetic words are ~3 tokens each).
  const wordsFor = (target: number) => {
    let words = 500;
    for (let k = 0; k < 3; k++) words = Math.round((words * target) / bpe.encode(prose(7, words)).length);
    return words;
  };
  for (const [label, target] of [
    ['512', 512],
    ['4K', 4096],
  ] as const) {
    const words = wordsFor(target);
    const iters = ITERS;
    const inputs = Array.from({ length: iters }, (_, i) => prose(1_000_000 + target * 1000 + i, words));
    const tokens = Math.round(inputs.slice(0, 10).reduce((a, s) => a + bpe.encode(s).length, 0) / 10);
    // The reference is slow: a tenth of the inputs.
    const rows = await compare(inputs, [
      ['kvgate native BPE (sync, on the event loop)', (s) => bpe.encode(s)],
      ['HF tokenizers (Rust, async on the pool)', async (s) => (await hf.encode(s, null, { addSpecialTokens: false })).getIds()],
      ['@huggingface/tokenizers (pure JS, sync)', (s) => js.encode(s, { add_special_tokens: false })],
    ], tokens);
    const refRows = await compare(inputs.slice(0, Math.max(5, iters / 10)), [['naive TS reference (sync)', (s) => ref.encode(s)]], tokens);
    print(`encode, fresh ${label}-token prompt (${tokens} tokens, ${inputs[0]!.length} chars):`, [...rows, ...refRows]);
  }

  // Where the native time goes, on one 4K-token prompt: a first encode (new words merged),
  // the same text again (every word from the word cache: UTF-8 transfer, pre-tokenizer, cache
  // lookups, the result array), a UTF-8 copy of the text alone, and the number[] copy.
  const words4k = wordsFor(4096);
  const texts = Array.from({ length: ITERS }, (_, i) => prose(9_000_000 + i, words4k));
  // The addon's object inside NativeBpe (a private field), to time the call without the copy.
  const enc = (bpe as unknown as { bpe: { encode(s: string): Uint32Array } }).bpe;
  const cold: number[] = [];
  const warm: number[] = [];
  const utf8: number[] = [];
  const copy: number[] = [];
  for (const text of texts) {
    let t0 = performance.now();
    const ids = enc.encode(text);
    cold.push(performance.now() - t0);
    t0 = performance.now();
    enc.encode(text);
    warm.push(performance.now() - t0);
    t0 = performance.now();
    Buffer.from(text, 'utf8');
    utf8.push(performance.now() - t0);
    t0 = performance.now();
    Array.from(ids);
    copy.push(performance.now() - t0);
  }
  const p = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50).toFixed(3);
  console.log(`\nnative breakdown, 4K-token prompt (p50): first encode ${p(cold)} ms; same text again (all words cached) ${p(warm)} ms;`);
  console.log(`  of which UTF-8 copy of the text ~${p(utf8)} ms; ids → number[] ${p(copy)} ms (after the call)`);

  // The whole preprocess: render the chat template + encodeSegmented, native vs HF.
  const preNative = new Preprocessor();
  const preHf = new Preprocessor();
  (preHf as { tokenizer: Tokenizer }).tokenizer = hfOnly;
  const words = wordsFor(4096 - 30); // the template adds ~30
  const cases: [string, (i: number) => { role: string; content: string }[]][] = [
    ['fresh prompt', (i) => messagesFor(50_000 + i, words)],
    ['system prompt seen before', (i) => withSystem(1, 60_000 + i, words)],
  ];
  for (const [label, messages] of cases) {
    const inputs = Array.from({ length: ITERS }, (_, i) => messages(i));
    const run = (pre: Preprocessor) => async (m: unknown) => pre.encodeChat(pre.renderChat({ messages: m as { role: string; content: string }[], addGenerationPrompt: true }));
    const rows = await compare(inputs as unknown as string[], [
      ['render + tokenize, native', run(preNative) as (s: string) => unknown],
      ['render + tokenize, HF tokenizers', run(preHf) as (s: string) => unknown],
    ], (await run(preNative)(inputs[0])).length);
    print(`preprocess, 4K-token chat, ${label}:`, rows);
  }

  templateRender(files.chatTemplate!);
}

// A 10-turn agent conversation: system, then user / assistant (reasoning, tool calls) / tool
// turns, with four tool definitions.
function agentConversation(seed: number): RenderInput {
  const r = makeRng(seed);
  const messages: RenderInput['messages'] = [{ role: 'system', content: prose(seed, 40) }];
  for (let turn = 0; turn < 10; turn++) {
    messages.push({ role: 'user', content: prose(seed + turn, 30) });
    const call = { type: 'function', id: `call_${turn}`, function: { name: `tool_${turn % 4}`, arguments: { query: prose(seed - turn, 6), limit: 5, exact: r() < 0.5 } } };
    messages.push({ role: 'assistant', content: r() < 0.5 ? '' : prose(seed * 3 + turn, 10), reasoning_content: prose(seed * 7 + turn, 20), tool_calls: [call] });
    messages.push({ role: 'tool', content: prose(seed * 11 + turn, 25), tool_call_id: `call_${turn}` });
  }
  const tools = Array.from({ length: 4 }, (_, i) => ({
    type: 'function',
    function: { name: `tool_${i}`, description: prose(seed + 100 + i, 15), parameters: { type: 'object', properties: { query: { type: 'string', description: prose(i, 5) }, limit: { type: 'integer' }, exact: { type: 'boolean' } }, required: ['query'] } },
  }));
  return { messages, tools, addGenerationPrompt: true, kwargs: { enable_thinking: true } };
}

// The chat template render alone (Qwen3's), p50 per render: @huggingface/jinja's interpreter
// (as ChatTemplate called it before) vs ChatTemplate's compiled template, interleaved on the
// same inputs. A sample is the mean of BATCH renders (one render is a few microseconds).
function templateRender(source: string): void {
  const BATCH = 20;
  const chat = new ChatTemplate(source, { bos_token: null, eos_token: '<|im_end|>' });
  if (!chat.compiled) throw new Error('the Qwen3 template does not compile');
  const interpreter = new Template(source);
  const varsOf = (input: RenderInput) => ({
    ...input.kwargs,
    messages: input.messages,
    add_generation_prompt: input.addGenerationPrompt,
    bos_token: '',
    eos_token: '<|im_end|>',
    ...(input.tools?.length ? { tools: input.tools } : {}),
  });
  const cases: [string, (i: number) => RenderInput][] = [
    ['500-word user message', (i) => ({ messages: [{ role: 'user', content: prose(70_000 + i, 500) }], addGenerationPrompt: true })],
    ['10-turn conversation with tools', (i) => agentConversation(80_000 + i)],
  ];
  console.log(`\nchat template render (Qwen3), p50 per render:`);
  for (const [label, make] of cases) {
    const inputs = Array.from({ length: ITERS }, (_, i) => make(i));
    if (inputs.some((x) => interpreter.render(varsOf(x)) !== chat.render(x))) throw new Error('the compiled template renders differently');
    const variants: [string, (x: RenderInput) => unknown][] = [
      ['@huggingface/jinja interpreter', (x) => interpreter.render(varsOf(x))],
      ['compiled (ChatTemplate.render)', (x) => chat.render(x)],
    ];
    for (const [, f] of variants) for (const x of inputs.slice(0, 50)) for (let k = 0; k < BATCH; k++) f(x); // warm-up
    const times = variants.map(() => [] as number[]);
    for (const [i, x] of inputs.entries()) {
      for (let k = 0; k < variants.length; k++) {
        const v = (i + k) % variants.length;
        const t0 = performance.now();
        for (let b = 0; b < BATCH; b++) variants[v]![1](x);
        times[v]!.push(((performance.now() - t0) * 1000) / BATCH);
      }
    }
    const p50s = times.map((t) => pct([...t].sort((a, b) => a - b), 50));
    const rendered = chat.render(inputs[0]!).length;
    console.log(`  ${label} (${rendered} chars rendered):`);
    for (const [k, [name]] of variants.entries()) console.log(`    ${name.padEnd(34)} p50 ${p50s[k]!.toFixed(1).padStart(7)} µs`);
    console.log(`    compiled is ${(p50s[0]! / p50s[1]!).toFixed(1)}x faster`);
  }
}

await main();
