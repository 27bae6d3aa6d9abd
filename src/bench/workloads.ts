// The simulator's workloads. Each produces arrivals lazily in time order (prompts are built when
// they arrive, so memory follows the requests in flight, not the whole workload), and a
// closed-loop workload (multi-turn) also answers a finished request with its next turn.
//
// - sharedPrefix: SGLang's generated shared prefix (bench_serving --dataset-name
//   generated-shared-prefix): groups x promptsPerGroup prompts, each a group's system prompt
//   then its own question, shuffled; Poisson arrivals (rate Infinity: one burst).
// - multiTurn: conversations that share one system prompt; each turn's prompt is the previous
//   prompt, the previous answer and a new question, sent a think time after the answer.
// - mooncake: the Mooncake FAST'25 conversation trace (hash ids of 512-token blocks), replayed
//   at its timestamps divided by a speed factor.

import { readFileSync } from 'node:fs';

export interface Arrival {
  at: number; // virtual ms
  tokens: number[];
  outputLen: number;
  session?: number; // multi-turn: the conversation, and which turn this is
  turn?: number;
}

export interface Workload {
  readonly name: string;
  // The next open-loop arrival, in time order, or null when there are no more.
  next(): Arrival | null;
  // Closed loop: the request that follows a finished one (its output ids included), if any.
  followUp?(done: Arrival, output: readonly number[], now: number): Arrival | null;
}

const VOCAB = 150_000;

// A token id that depends only on (seed, a, b): prompts are functions, not stored arrays.
export function tokenAt(seed: number, a: number, b: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(a + 0x27d4eb2f, 0xc2b2ae35) ^ Math.imul(b + 0x165667b1, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return 1 + ((h >>> 0) % (VOCAB - 1));
}

// mulberry32: a small seeded generator for orders and arrival gaps.
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Exponential gap of a Poisson process of `ratePerSec` (0 gap for Infinity: a burst).
function gapMs(rand: () => number, ratePerSec: number): number {
  return Number.isFinite(ratePerSec) ? (-Math.log(1 - rand()) * 1000) / ratePerSec : 0;
}

export interface SharedPrefixOptions {
  groups: number; // SGLang --gsp-num-groups (64)
  promptsPerGroup: number; // --gsp-prompts-per-group (16)
  systemPromptLen: number; // --gsp-system-prompt-len (2048)
  questionLen: number; // --gsp-question-len (128)
  outputLen: number; // --gsp-output-len (256)
  ratePerSec: number; // Poisson arrivals; Infinity = all at once
  seed: number;
}

export const GSP_DEFAULTS: SharedPrefixOptions = {
  groups: 64,
  promptsPerGroup: 16,
  systemPromptLen: 2048,
  questionLen: 128,
  outputLen: 256,
  ratePerSec: Infinity,
  seed: 1,
};

export function sharedPrefix(o: SharedPrefixOptions): Workload {
  const rand = rng(o.seed);
  const n = o.groups * o.promptsPerGroup;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  let i = 0;
  let t = 0;
  return {
    name: 'shared-prefix',
    next() {
      if (i >= n) return null;
      const k = order[i++]!;
      const g = Math.floor(k / o.promptsPerGroup);
      const tokens = new Array<number>(o.systemPromptLen + o.questionLen);
      for (let p = 0; p < o.systemPromptLen; p++) tokens[p] = tokenAt(o.seed, g, p);
      for (let q = 0; q < o.questionLen; q++) tokens[o.systemPromptLen + q] = tokenAt(o.seed, n + k, q);
      t += gapMs(rand, o.ratePerSec);
      return { at: t, tokens, outputLen: o.outputLen };
    },
  };
}

export interface MultiTurnOptions {
  sessions: number;
  turns: number;
  systemPromptLen: number; // shared by every conversation
  historyLen: number; // each conversation's own context before its first question
  questionLen: number;
  outputLen: number;
  ratePerSec: number; // conversations starting per second (Poisson)
  thinkMs: number; // mean think time between an answer and the next question (exponential)
  seed: number;
}

export const MULTI_TURN_DEFAULTS: MultiTurnOptions = {
  sessions: 64,
  turns: 6,
  systemPromptLen: 1000,
  historyLen: 2000,
  questionLen: 64,
  outputLen: 100,
  ratePerSec: 16,
  thinkMs: 2000,
  seed: 1,
};

export function multiTurn(o: MultiTurnOptions): Workload {
  const rand = rng(o.seed);
  let s = 0;
  let t = 0;
  const question = (session: number, turn: number) => Array.from({ length: o.questionLen }, (_, q) => tokenAt(o.seed, 1_000_000 + session * 1000 + turn, q));
  return {
    name: 'multi-turn',
    next() {
      if (s >= o.sessions) return null;
      const session = s++;
      const tokens: number[] = [];
      for (let p = 0; p < o.systemPromptLen; p++) tokens.push(tokenAt(o.seed, 0, p));
      for (let p = 0; p < o.historyLen; p++) tokens.push(tokenAt(o.seed, 1 + session, p));
      tokens.push(...question(session, 0));
      t += gapMs(rand, o.ratePerSec);
      return { at: t, tokens, outputLen: o.outputLen, session, turn: 0 };
    },
    followUp(done, output, now) {
      const turn = (done.turn ?? 0) + 1;
      if (turn >= o.turns) return null;
      const tokens = done.tokens.concat(output, question(done.session!, turn));
      return { at: now + -Math.log(1 - rand()) * o.thinkMs, tokens, outputLen: o.outputLen, session: done.session, turn };
    },
  };
}

export interface MooncakeOptions {
  path: string | URL;
  limit: number; // the first `limit` requests of the trace (after the filters below)
  speed: number; // timestamps are divided by this
  seed: number;
  maxInput?: number; // skip requests with a longer input
  maxOutput?: number; // cap output lengths
}

export const MOONCAKE_PATH = new URL('../../../shared/data/mooncake/conversation_trace.jsonl', import.meta.url);
export const MOONCAKE_BLOCK = 512;

interface TraceLine {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

export function mooncake(o: MooncakeOptions): Workload {
  const lines = readFileSync(o.path, 'utf8').split('\n');
  let i = 0;
  let sent = 0;
  return {
    name: 'mooncake',
    next() {
      while (sent < o.limit && i < lines.length) {
        const line = lines[i++]!;
        if (line.trim() === '') continue;
        const r = JSON.parse(line) as TraceLine;
        if (o.maxInput !== undefined && r.input_length > o.maxInput) continue;
        sent++;
        // Each hash id is a fixed 512-token block; the last block is trimmed to input_length.
        const tokens = new Array<number>(r.input_length);
        for (let p = 0; p < r.input_length; p++) tokens[p] = tokenAt(o.seed, r.hash_ids[Math.floor(p / MOONCAKE_BLOCK)] ?? -1 - i, p % MOONCAKE_BLOCK);
        const outputLen = Math.max(1, Math.min(r.output_length, o.maxOutput ?? Infinity));
        return { at: r.timestamp / o.speed, tokens, outputLen };
      }
      return null;
    },
  };
}

export interface SingleTurnOptions {
  requests: number;
  headerLen: number; // one header every prompt starts with (a universal system prompt)
  bodyLen: number; // then the request's own tokens
  outputLen: number;
  ratePerSec: number;
  seed: number;
}

// Single-turn traffic with nothing shared but a short common header: what Dynamo's router
// starved decode workers on (reference/dynamo.md, known issues).
export function singleTurn(o: SingleTurnOptions): Workload {
  const rand = rng(o.seed);
  let i = 0;
  let t = 0;
  return {
    name: 'single-turn',
    next() {
      if (i >= o.requests) return null;
      const k = i++;
      const tokens = new Array<number>(o.headerLen + o.bodyLen);
      for (let p = 0; p < o.headerLen; p++) tokens[p] = tokenAt(o.seed, -1, p);
      for (let p = 0; p < o.bodyLen; p++) tokens[o.headerLen + p] = tokenAt(o.seed, 2_000_000 + k, p);
      t += gapMs(rand, o.ratePerSec);
      return { at: t, tokens, outputLen: o.outputLen };
    },
  };
}
