// Log probabilities in SGLang's meta_info shapes (reference/sglang.md §1.4), with synthetic values:
// a deterministic function of (token id, position), so the same request always reports the same
// numbers and a PD router's merge of prefill's and decode's lists can be checked exactly.

import type { LogprobOptions } from './protocol.js';
import type { EngineRequest } from './request.js';
import { tokenText, WORDS } from './tokens.js';

type Entry = [logprob: number | null, tokenId: number, text: string | null];

// In [-4.01, -0.01], from a hash of the id and the position.
export function syntheticLogprob(id: number, pos: number): number {
  let h = Math.imul(id ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(pos + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  return -(10 + ((h >>> 0) % 4000)) / 1000;
}

export interface LogprobView {
  opts: LogprobOptions;
  eosTokenId: number;
  // A PD decode engine has no prompt logits: its input lists are empty (prefill's carry them).
  inputs: boolean;
}

// Adds the logprob lists to meta_info: prompt positions from logprob_start_len, and the output
// tokens from `outFrom` (0, or the first unsent one when streaming incrementally).
export function addLogprobs(meta: Record<string, unknown>, req: EngineRequest, v: LogprobView, outFrom: number, withInputs: boolean): void {
  const { opts } = v;
  const text = (id: number) => (opts.withText ? tokenText(id, v.eosTokenId, false) : null);
  const entry = (id: number, pos: number, first: boolean): Entry => [first ? null : syntheticLogprob(id, pos), id, text(id)];
  const isl = req.isl;
  const inFrom = withInputs && v.inputs && opts.startLen >= 0 ? opts.startLen : isl;
  const inPos: number[] = [];
  for (let p = inFrom; p < isl; p++) inPos.push(p);
  const outPos: number[] = [];
  for (let k = outFrom; k < req.outputIds.length; k++) outPos.push(k);
  const inId = (p: number) => req.inputIds[p]!;
  const outId = (k: number) => req.outputIds[k]!;

  meta.input_token_logprobs = inPos.map((p) => entry(inId(p), p, p === 0));
  meta.output_token_logprobs = outPos.map((k) => entry(outId(k), isl + k, false));
  if (opts.topNum > 0) {
    // The token itself first, then other words at lower log probabilities.
    const top = (id: number, pos: number): Entry[] => {
      const lp = syntheticLogprob(id, pos);
      const out: Entry[] = [[lp, id, text(id)]];
      for (let i = 0; out.length < opts.topNum && i < WORDS.length; i++) {
        const other = WORDS[(pos + i) % WORDS.length]![0];
        if (other !== id) out.push([(Math.round(lp * 1000) - 500 * out.length) / 1000, other, text(other)]);
      }
      return out;
    };
    meta.input_top_logprobs = inPos.map((p) => (p === 0 ? null : top(inId(p), p)));
    meta.output_top_logprobs = outPos.map((k) => top(outId(k), isl + k));
  }
  if (opts.tokenIds !== null) {
    const ids = opts.tokenIds;
    const asked = (pos: number): Entry[] => ids.map((id) => entry(id, pos, false));
    meta.input_token_ids_logprobs = inPos.map((p) => (p === 0 ? null : asked(p)));
    meta.output_token_ids_logprobs = outPos.map((k) => asked(isl + k));
  }
}
