// Pre/post-processing cost per request with the real Qwen3 files: chat template + tokenize
// of a ~4K-token prompt (p50/p99), for the tokenizer kvgate uses (HF `tokenizers`, Rust,
// async on the libuv pool) and the pure-JS `@huggingface/tokenizers`; plus one-time load
// costs, incremental detokenization and stop-string matching per token. Side by side in one
// run: a chat prompt tokenized whole (before the segment cache) and through the segment
// cache, fresh and with a system prompt seen before; and small requests' latency while four
// large prompts tokenize, with and without the tokenize limiter.
//
//   npm run bench:preprocess            (ITERS=200 by default; ITERS=50 for a quick run;
//                                        LARGE_BYTES=700000 per large prompt, LARGE=0 skips it)

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { IncrementalDetokenizer } from '../../src/preprocess/detokenizer.js';
import { defaultModelDir, readModelFiles } from '../../src/preprocess/model_files.js';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';
import { StopMatcher } from '../../src/preprocess/stop_matcher.js';
import { SegmentedEncoder, type AddedToken } from '../../src/preprocess/segmented_encoder.js';
import { TokenizeLimiter, tokenizeLimiter } from '../../src/preprocess/tokenize_limiter.js';
import { Tokenizer } from '../../src/preprocess/tokenizer.js';
import { messagesFor, prose, withSystem } from './prose.js';

const ITERS = Number(process.env['ITERS'] ?? 200);
const LARGE_BYTES = Number(process.env['LARGE_BYTES'] ?? 700_000);
const TARGET_TOKENS = 4096;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(name: string, samples: number[], unit = 'ms'): void {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  console.log(`${name.padEnd(58)} p50 ${pct(s, 50).toFixed(3)} ${unit}  p99 ${pct(s, 99).toFixed(3)} ${unit}  mean ${mean.toFixed(3)} ${unit}  (n=${s.length})`);
}

// Runs a and b alternately on the same inputs, so both see the same machine load, each
// first on every other input (the second finds the tokenizer's word cache warm).
async function sideBySide(inputs: readonly unknown[], a: (x: unknown) => Promise<unknown>, b: (x: unknown) => Promise<unknown>): Promise<[number[], number[]]> {
  const ta: number[] = [];
  const tb: number[] = [];
  const time = async (f: (x: unknown) => Promise<unknown>, x: unknown, into: number[]) => {
    const t = performance.now();
    await f(x);
    into.push(performance.now() - t);
  };
  for (const [i, x] of inputs.entries()) {
    if (i % 2 === 0) {
      await time(a, x, ta);
      await time(b, x, tb);
    } else {
      await time(b, x, tb);
      await time(a, x, ta);
    }
  }
  return [ta, tb];
}

const p50 = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);

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

  // Tokenizing the whole prompt in one call; the segment cache comes later, side by side.
  const encodeWhole = (text: string) => pre.tokenizer.encode(text, false);

  // Size the user message so the rendered prompt is ~4K tokens.
  let words = 2000;
  for (let k = 0; k < 4; k++) {
    const n = (await encodeWhole(pre.renderChat({ messages: messagesFor(0, words), addGenerationPrompt: true }))).length;
    words = Math.round((words * TARGET_TOKENS) / n);
  }
  const sample = pre.renderChat({ messages: messagesFor(0, words), addGenerationPrompt: true });
  const sampleIds = await encodeWhole(sample);
  console.log(`prompt: ${words} words, ${sample.length} chars, ${sampleIds.length} tokens\n`);
  const jsIds = js.encode(sample, { add_special_tokens: false }).ids;
  if (JSON.stringify(jsIds) !== JSON.stringify(sampleIds)) throw new Error('the two tokenizers disagree on the prompt');

  const prompts = Array.from({ length: ITERS }, (_, i) => messagesFor(i + 1, words));
  const rendered = prompts.map((m) => pre.renderChat({ messages: m, addGenerationPrompt: true }));
  for (let i = 0; i < 10; i++) {
    await encodeWhole(rendered[i]!);
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
    const p = encodeWhole(pre.renderChat({ messages: m, addGenerationPrompt: true }));
    blocked.push(performance.now() - t); // event-loop time: render + handing the text over
    await p;
    full.push(performance.now() - t);
  }
  summary('render + tokenize whole, tokenizers (Rust), wall', full);
  summary('... of which the event loop is blocked', blocked);

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
    await encodeWhole(text);
    rustOnly.push(performance.now() - t);
  }
  summary('tokenize only, tokenizers (Rust, async)', rustOnly);

  // Same prompt every time (word caches warm): the best case.
  const same: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    t = performance.now();
    await encodeWhole(pre.renderChat({ messages: prompts[0]!, addGenerationPrompt: true }));
    same.push(performance.now() - t);
  }
  summary('render + tokenize whole, one prompt repeated', same);

  // Four requests at once: Rust encodes run on the libuv pool in parallel.
  const batches = Math.max(1, Math.floor(ITERS / 4));
  t = performance.now();
  for (let b = 0; b < batches; b++) await Promise.all(rendered.slice(b * 4, b * 4 + 4).map((x) => encodeWhole(x)));
  const rustConc = (batches * 4) / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let b = 0; b < batches; b++) for (const x of rendered.slice(b * 4, b * 4 + 4)) js.encode(x, { add_special_tokens: false });
  const jsConc = (batches * 4) / ((performance.now() - t) / 1000);
  console.log(`throughput, 4 concurrent 4K-token encodes:  Rust ${rustConc.toFixed(0)} req/s, JS ${jsConc.toFixed(0)} req/s\n`);

  // The segment cache, side by side with tokenizing the whole prompt (what kvgate did
  // before it; same tokenizer, same libuv pool). Render + tokenize, per request.
  type Msgs = ReturnType<typeof messagesFor>;
  const renderMsgs = (m: unknown) => pre.renderChat({ messages: m as Msgs, addGenerationPrompt: true });
  const whole = (m: unknown) => pre.tokenizer.encode(renderMsgs(m), false);
  const cached = (m: unknown) => pre.encodeChat(renderMsgs(m));
  const check = async (m: Msgs) => {
    if (JSON.stringify(await whole(m)) !== JSON.stringify(await cached(m))) throw new Error('the segment cache disagrees with the tokenizer');
  };
  const fresh = Array.from({ length: ITERS }, (_, i) => withSystem(10_000 + i, 20_000 + i, words));
  const [freshWhole, freshCached] = await sideBySide(fresh, whole, cached);
  summary('fresh 4K prompt: tokenize whole (before)', freshWhole);
  summary('fresh 4K prompt: segment cache (all segments new)', freshCached);
  const seen = Array.from({ length: ITERS }, (_, i) => withSystem(1, 30_000 + i, words));
  await cached(seen[0]);
  await check(seen[1]!);
  const [seenWhole, seenCached] = await sideBySide(seen, whole, cached);
  const userTokens = (await pre.encodeChat(renderMsgs(seen[0]))).length - (await pre.tokenizer.encode(renderMsgs([seen[0]![0]!]), false)).length;
  summary(`seen system prompt: tokenize whole (before)`, seenWhole);
  summary(`seen system prompt: segment cache (~${userTokens}-token user turn new)`, seenCached);
  // What the cache adds to a fresh prompt beside the encode itself (split at added tokens,
  // hash the segments, cut the ids, insert): an encoder over precomputed ids.
  const freshTexts = fresh.map(renderMsgs);
  const freshIds = await Promise.all(freshTexts.map((t) => pre.tokenizer.encode(t, false)));
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens: AddedToken[] };
  let cur = 0;
  const bookkeeping = SegmentedEncoder.create(tj, tj.added_tokens, pre.tokenizer.vocabSize, 64 << 20, async () => freshIds[cur]!)!;
  const overhead: number[] = [];
  for (cur = 0; cur < freshTexts.length; cur++) {
    t = performance.now();
    await bookkeeping.encode(freshTexts[cur]!);
    overhead.push(performance.now() - t);
  }
  summary('fresh 4K prompt: segment cache bookkeeping alone', overhead);
  console.log(
    `ratios (p50, cache / whole): fresh ${(p50(freshCached) / p50(freshWhole)).toFixed(2)}x, seen system prompt ${(p50(seenCached) / p50(seenWhole)).toFixed(3)}x\n`,
  );

  if (LARGE_BYTES > 0) await isolation(sampleIds.length);

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

// Small requests (fresh 4K-token prompts, one after another) while four large prompts of
// LARGE_BYTES tokenize, with kvgate's tokenize limiter and with none (every encode straight
// to the libuv pool, as before).
async function isolation(smallTokens: number): Promise<void> {
  const files = readModelFiles();
  const unlimited = new TokenizeLimiter({ smallChars: Infinity, budgetChars: Infinity, maxLarge: Infinity });
  const large = Array.from({ length: 4 }, (_, i) => prose(50_000 + i, Math.round(LARGE_BYTES / 6)));
  const smallText = (i: number) => prose(60_000 + i, 2000);
  const o = tokenizeLimiter.options;
  console.log(`isolation: 4 large prompts of ${(large[0]!.length / 1e6).toFixed(2)} MB (~${Math.round(large[0]!.length / 4.5 / 1000)}K tokens) in flight, small ${smallTokens}-token encodes one after another meanwhile`);
  console.log(`  limiter: inputs over ${o.smallChars} chars queue; ${o.maxLarge} at a time within ${o.budgetChars} chars; libuv pool ${process.env['UV_THREADPOOL_SIZE'] ?? 4} threads`);
  for (const [name, limiter] of [['no limiter (before)', unlimited], ['tokenize limiter', tokenizeLimiter]] as const) {
    const tok = new Tokenizer(files, { limiter, segmentCacheBytes: 0 });
    await tok.encode(smallText(0), false);
    const t0 = performance.now();
    let largeDone = 0;
    let firstLarge = 0;
    const bigs = large.map((text) =>
      tok.encode(text, false).then(() => {
        if (largeDone++ === 0) firstLarge = performance.now() - t0;
      }),
    );
    const lat: number[] = [];
    for (let i = 1; largeDone < 4; i++) {
      const t = performance.now();
      await tok.encode(smallText(i), false);
      lat.push(performance.now() - t);
    }
    await Promise.all(bigs);
    const all = performance.now() - t0;
    summary(`  ${name}: small encode latency`, lat);
    console.log(`  ${name}: ${lat.length} small encodes done while the large ran; first large done ${firstLarge.toFixed(0)} ms, all ${all.toFixed(0)} ms`);
  }
  console.log();
}

void main();
