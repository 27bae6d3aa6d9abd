// PD with return_logprob: the prompt's logprobs come from the prefill leg (a decode engine sends
// empty input lists), so the client's answer gets prefill's meta_info.input_token_logprobs put in
// front of decode's, as SGLang's PD router does (reference/sglang.md §4, PD): in the JSON answer,
// or in every SSE event of a streamed one. Batch items are matched by position (JSON) or by their
// "index" (SSE); SGLang's router takes the first prefill event for every decode event, which is
// the same for a single request.

import { isJsonObject } from '../json.js';

const SINGLE = -1;

// Does the body ask for logprobs (a batch may ask per item)?
export function wantsLogprobs(v: unknown): boolean {
  return v === true || (Array.isArray(v) && v.includes(true));
}

// Prefill's input_token_logprobs by batch index (SINGLE for a single request), from its JSON or
// SSE answer; the first event of each item carries the whole list.
export function prefillInputLogprobs(text: string): Map<number, unknown[]> {
  const out = new Map<number, unknown[]>();
  const take = (v: unknown, index: number): void => {
    if (!isJsonObject(v) || !isJsonObject(v['meta_info'])) return;
    const lp = v['meta_info']['input_token_logprobs'];
    const key = typeof v['index'] === 'number' ? v['index'] : index;
    if (Array.isArray(lp) && !out.has(key)) out.set(key, lp);
  };
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('data:')) {
    try {
      const v: unknown = JSON.parse(text);
      if (Array.isArray(v)) v.forEach(take);
      else take(v, SINGLE);
    } catch {
      /* not JSON: nothing to merge */
    }
    return out;
  }
  for (const event of text.split('\n\n')) {
    const data = eventData(event);
    if (data === null) continue;
    try {
      take(JSON.parse(data), SINGLE);
    } catch {
      /* an event that is not JSON */
    }
  }
  return out;
}

function eventData(event: string): string | null {
  const e = event.trim();
  if (!e.startsWith('data:')) return null;
  const data = e.slice(5).trim();
  return data === '[DONE]' ? null : data;
}

function mergeOne(v: unknown, pre: Map<number, unknown[]>, index: number): void {
  if (!isJsonObject(v) || !isJsonObject(v['meta_info'])) return;
  const meta = v['meta_info'];
  const p = pre.get(typeof v['index'] === 'number' ? v['index'] : index);
  if (!p || !('input_token_logprobs' in meta)) return;
  const own = meta['input_token_logprobs'];
  meta['input_token_logprobs'] = [...p, ...(Array.isArray(own) ? own : [])];
}

// Decode's JSON answer with prefill's lists merged in (unchanged when it is not JSON).
export function mergeJson(decodeText: string, pre: Map<number, unknown[]>): string {
  let decoded: unknown;
  try {
    decoded = JSON.parse(decodeText);
  } catch {
    return decodeText;
  }
  if (Array.isArray(decoded)) decoded.forEach((d, i) => mergeOne(d, pre, i));
  else mergeOne(decoded, pre, SINGLE);
  return JSON.stringify(decoded);
}

// Rewrites decode's SSE stream event by event as its chunks arrive (an event may span chunks).
export class SseLogprobMerger {
  private pending = '';

  constructor(private readonly pre: Map<number, unknown[]>) {}

  // The complete events in what has arrived so far, rewritten; the rest waits.
  push(text: string): string {
    this.pending += text;
    const end = this.pending.lastIndexOf('\n\n');
    if (end < 0) return '';
    const complete = this.pending.slice(0, end + 2);
    this.pending = this.pending.slice(end + 2);
    let out = '';
    for (const event of complete.split('\n\n')) {
      if (event !== '') out += this.rewrite(event) + '\n\n';
    }
    return out;
  }

  // Whatever is left at the end of the stream, as it came.
  end(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  private rewrite(event: string): string {
    const data = eventData(event);
    if (data === null) return event;
    try {
      const v: unknown = JSON.parse(data);
      mergeOne(v, this.pre, SINGLE);
      return `data: ${JSON.stringify(v)}`;
    } catch {
      return event;
    }
  }
}
