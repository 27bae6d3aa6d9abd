// The serving core, independent of HTTP: a validated OpenAI request becomes token ids
// (chat template + tokenizer), goes to the engine the WorkerSet picks, and comes back as
// text deltas (incremental detokenization, stop strings) and a finish with usage.

import { randomUUID } from 'node:crypto';
import type { GenerateRequest, PromptLogprob, Usage } from '../engine/client.js';
import { KvgateError } from '../errors.js';
import type { FrontendMetrics } from '../observability/metrics.js';
import type { CompletionRequest, OpenAIFinishReason, OpenAIRequest } from '../openai/types.js';
import { IncrementalDetokenizer } from '../preprocess/detokenizer.js';
import type { Preprocessor } from '../preprocess/preprocessor.js';
import { StopMatcher } from '../preprocess/stop_matcher.js';
import { newTrace, type RequestTrace } from '../observability/request_log.js';
import type { WorkerSet } from '../router/worker_set.js';

export interface ServedModel {
  name: string;
  // Prompt plus generated tokens may not exceed this.
  contextLength: number;
  preprocessor: Preprocessor;
  created: number; // unix seconds, for /v1/models
}

export interface Prepared {
  requestId: string;
  model: ServedModel;
  request: OpenAIRequest;
  tokenIds: number[];
  maxNewTokens: number;
  receivedAt: number; // performance.now() when the request arrived
  trace: RequestTrace; // filled by generate() for the request log line
}

export type GenerationEvent =
  // `logprobs` (when asked for): the tokens of this text's engine chunk. A text held back
  // (a possible stop string, part of a character) comes later than its tokens' logprobs.
  | { type: 'text'; text: string; logprobs?: PromptLogprob[] }
  | { type: 'end'; finishReason: OpenAIFinishReason; usage: Usage };

// A prompt of `n` tokens (`atLeast`: at least n, bounded from its size) must leave room for
// one generated token, and for max_tokens when given.
function checkLength(model: ServedModel, request: OpenAIRequest, n: number, atLeast: boolean): void {
  const ctx = model.contextLength;
  const what = request.kind === 'chat' ? 'messages' : 'prompt';
  const has = `the ${what} ${atLeast ? 'cannot have fewer than' : 'has'} ${n} tokens`;
  if (n >= ctx) throw new KvgateError('context_length_exceeded', `the model's context length is ${ctx} tokens, but ${has}`, what);
  if (request.maxTokens !== null && n + request.maxTokens > ctx) {
    throw new KvgateError(
      'context_length_exceeded',
      `the model's context length is ${ctx} tokens; ${has} and ${request.maxTokensParam} asks for ${request.maxTokens} more`,
      request.maxTokensParam,
    );
  }
}

// Every id an engine sends must be one of the model's: anything else (null, a string, a
// negative or fractional number, an id past the vocabulary) would decode to nothing or
// garbage, so it ends the request with engine_error instead.
export function checkEngineTokenIds(ids: readonly unknown[], vocabSize: number): void {
  for (const id of ids) {
    if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < vocabSize) continue;
    throw new KvgateError('engine_error', `the engine sent token id ${JSON.stringify(id) ?? String(id)}, which is not in the model's vocabulary (ids 0 to ${vocabSize - 1})`);
  }
}

// Completions with echo: the answer begins with the prompt.
function echoed(r: OpenAIRequest): boolean {
  return r.kind === 'completion' && r.echo;
}

export class ServingCore {
  constructor(
    private readonly models: ReadonlyMap<string, ServedModel>,
    private readonly workers: WorkerSet,
    private readonly metrics: FrontendMetrics,
  ) {}

  model(name: string): ServedModel {
    const m = this.models.get(name);
    if (!m) throw new KvgateError('model_not_found', `the model '${name}' does not exist; see /v1/models`, 'model');
    return m;
  }

  // Template + tokenize + length checks. Throws KvgateError on bad input. `signal` (the
  // client left) takes a large prompt out of the tokenizer's queue.
  async prepare(request: OpenAIRequest, receivedAt = performance.now(), signal?: AbortSignal): Promise<Prepared> {
    const model = this.model(request.model);
    const pre = model.preprocessor;
    const t0 = performance.now();
    let tokenIds: number[];
    if (request.kind === 'completion' && !('text' in request.prompt)) {
      tokenIds = request.prompt.tokenIds;
      const vocab = pre.tokenizer.vocabSize;
      const bad = tokenIds.find((id) => id >= vocab);
      if (bad !== undefined) throw new KvgateError('invalid_request', `token id ${bad} is outside the vocabulary (size ${vocab})`, 'prompt');
    } else {
      const chat = request.kind === 'chat';
      const text = chat
        ? pre.renderChat({ messages: request.messages, tools: request.tools, addGenerationPrompt: request.addGenerationPrompt, kwargs: request.templateKwargs })
        : (request.prompt as { text: string }).text;
      // Tokenizing costs ~1 µs and ~150 bytes per token: text too long for the context by
      // its size alone is refused before paying that.
      checkLength(model, request, pre.tokenizer.minTokens(text), true);
      tokenIds = chat ? await pre.encodeChat(text, signal) : await pre.encodeCompletion(text, signal);
    }
    this.metrics.forModel(model.name).preprocess.observe((performance.now() - t0) / 1000);
    const n = tokenIds.length;
    if (n === 0) {
      const what = request.kind === 'chat' ? 'messages' : 'prompt';
      throw new KvgateError('invalid_request', `the ${what} produced no tokens`, what);
    }
    checkLength(model, request, n, false);
    return { requestId: randomUUID().replace(/-/g, ''), model, request, tokenIds, maxNewTokens: request.maxTokens ?? model.contextLength - n, receivedAt, trace: newTrace() };
  }

  private engineRequest(p: Prepared): GenerateRequest {
    const r = p.request;
    const eos = r.ignoreEos ? [] : p.model.preprocessor.tokenizer.eosTokenIds;
    const stopTokenIds = [...new Set([...eos, ...r.stopTokenIds])];
    return {
      requestId: p.requestId,
      tokenIds: p.tokenIds,
      sampling: {
        maxNewTokens: p.maxNewTokens,
        temperature: r.temperature,
        topP: r.topP,
        topK: r.topK,
        minP: r.minP,
        seed: r.seed,
        frequencyPenalty: r.frequencyPenalty,
        presencePenalty: r.presencePenalty,
        repetitionPenalty: r.repetitionPenalty,
        minNewTokens: r.minTokens,
        ignoreEos: r.ignoreEos || undefined,
        stopTokenIds,
      },
      ...(r.logprobs ? { logprobs: { top: r.logprobs.top, prompt: echoed(r) } } : {}),
    };
  }

  // The echoed prompt: its text, and its logprobs when asked (the engine's first chunk has them).
  private echo(p: Prepared, lps: PromptLogprob[] | undefined): GenerationEvent {
    const r = p.request as CompletionRequest;
    const text = 'text' in r.prompt ? r.prompt.text : p.model.preprocessor.tokenizer.decode(r.prompt.tokenIds, false);
    if (!r.logprobs) return { type: 'text', text };
    if (lps?.length !== p.tokenIds.length) throw new KvgateError('engine_error', `the engine sent ${lps?.length ?? 0} prompt logprobs for ${p.tokenIds.length} prompt tokens`);
    return { type: 'text', text, logprobs: lps };
  }

  // Streams text deltas and ends with one 'end' event. Returns without 'end' when
  // `signal` aborts (the client left); throws KvgateError on engine failures.
  async *generate(p: Prepared, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const name = p.model.name;
    const m = this.metrics.forModel(name);
    const dispatch = this.workers.dispatch({ model: name, requestId: p.requestId, tokenIds: p.tokenIds });
    const vocabSize = p.model.preprocessor.tokenizer.vocabSize;
    const detok = new IncrementalDetokenizer(p.model.preprocessor.tokenizer, p.request.skipSpecialTokens);
    const stops = new StopMatcher(p.request.stop);
    const wantLogprobs = p.request.logprobs !== undefined;
    let completionTokens = 0;
    let cachedTokens = 0;
    let lastTokenAt = 0;
    let outcome: 'ok' | 'cancelled' | 'error' = 'cancelled';
    let failure: unknown;
    // The first token's bookkeeping (the router's prefill-done mark, the TTFT histogram) runs
    // once its text went to the client, not before.
    let firstTokenAt = 0; // until booked
    const bookFirstToken = () => {
      if (firstTokenAt === 0) return;
      dispatch.firstToken();
      m.ttft.observe((firstTokenAt - p.receivedAt) / 1000);
      firstTokenAt = 0;
    };
    try {
      let end: { finishReason: OpenAIFinishReason; usage: Usage } | null = null;
      let first = true;
      for await (const chunk of dispatch.engine.generate(this.engineRequest(p), signal)) {
        checkEngineTokenIds(chunk.tokenIds, vocabSize);
        if (first && echoed(p.request)) yield this.echo(p, chunk.promptLogprobs);
        first = false;
        const n = chunk.tokenIds.length;
        if (n > 0) {
          const now = performance.now();
          if (completionTokens === 0) {
            p.trace.firstTokenAt = firstTokenAt = now;
          } else {
            m.itl.observe((now - lastTokenAt) / 1000);
          }
          for (let i = 1; i < n; i++) m.itl.observe(0);
          lastTokenAt = now;
          completionTokens += n;
          p.trace.completionTokens = completionTokens;
        }
        if (chunk.cachedTokens !== undefined) cachedTokens = chunk.cachedTokens;
        let text = detok.push(chunk.tokenIds);
        const reason = chunk.finishReason;
        if (reason?.type === 'abort') {
          const status = reason.statusCode ?? 0;
          const code = status >= 400 && status < 500 ? 'invalid_request' : 'engine_error';
          throw new KvgateError(code, `the engine aborted the request${reason.message ? `: ${reason.message}` : ''}`);
        }
        if (reason) text += detok.flush();
        const cut = stops.push(text);
        if (wantLogprobs && n > 0) {
          if (chunk.logprobs?.length !== n) throw new KvgateError('engine_error', `the engine sent ${n} tokens without their logprobs`);
          yield { type: 'text', text: cut.text, logprobs: chunk.logprobs };
        } else if (cut.text) yield { type: 'text', text: cut.text };
        bookFirstToken();
        if (cut.stop !== null) {
          // Leaving the loop aborts the engine's request: the tokens after it are not wanted.
          end = { finishReason: 'stop', usage: { promptTokens: p.tokenIds.length, completionTokens, cachedTokens } };
          break;
        }
        if (reason) {
          const rest = stops.flush();
          if (rest) yield { type: 'text', text: rest };
          const u = chunk.usage;
          end = {
            finishReason: reason.type === 'length' ? 'length' : 'stop',
            usage: {
              promptTokens: u?.promptTokens || p.tokenIds.length,
              completionTokens: u?.completionTokens ?? completionTokens,
              cachedTokens: u?.cachedTokens ?? cachedTokens,
            },
          };
          // The engine client reads what follows the last chunk ([DONE]) on its own.
          break;
        }
      }
      if (end === null) {
        if (signal.aborted) return;
        throw new KvgateError('engine_error', `the engine stream for ${p.requestId} ended without a finish reason`);
      }
      outcome = 'ok';
      m.inputTokens.observe(end.usage.promptTokens);
      m.outputTokens.observe(end.usage.completionTokens);
      m.cachedTokens.observe(end.usage.cachedTokens);
      yield { type: 'end', ...end };
    } catch (err) {
      outcome = signal.aborted ? 'cancelled' : 'error';
      failure = err;
      if (signal.aborted) return;
      throw err;
    } finally {
      bookFirstToken();
      // Where it ended (it may have waited for a worker, been retried or migrated).
      p.trace.worker = dispatch.worker;
      p.trace.migrations = dispatch.migrations ?? 0;
      this.metrics.workerRequests.inc({ model: name, worker: dispatch.worker });
      dispatch.finish(outcome, failure);
    }
  }
}
