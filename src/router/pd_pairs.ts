// Which prefill and decode workers can be paired (reference/sglang.md §3, dynamo.md §1.9):
// the decode engine receives the prefill engine's KV pages as they are, so both must run the
// same model with the same page size, and the same tensor-parallel size, since each rank
// holds a slice of the heads, unless the model uses MLA (one latent KV shared by all heads,
// so any TP layout can read it; SGLang's documented exception).

import type { DirectEngine } from '../engine/client.js';
import type { ModelCard } from '../engine/model_card.js';
import { KvgateError } from '../errors.js';
import { finiteNumber, isJsonObject } from '../json.js';

export interface PdShape {
  modelPath: string;
  pageSize: number;
  tpSize: number;
  mla: boolean;
}

// Model families whose attention is MLA (DeepSeek-V2/V3/R1, Kimi K2, MiniCPM3, ...); SGLang's
// /server_info does not say, so the model path tells.
const MLA_MODELS = /deepseek-?(v2|v3|r1|coder-v2|prover-v2)|kimi-?k2|moonlight|minicpm3|glm-?5/i;

export async function readPdShape(engine: DirectEngine, card: ModelCard): Promise<PdShape> {
  let info: unknown = null;
  for (const path of ['/server_info', '/get_server_info']) {
    const r = await engine.getJson(path);
    if (r.status === 200) {
      info = r.body;
      break;
    }
  }
  if (info === null) throw new KvgateError('engine_error', 'its /server_info did not answer 200');
  const tp = isJsonObject(info) ? finiteNumber(info, 'tp_size') : null;
  // An answer without it will not change: the worker cannot be paired.
  if (tp === null) throw new KvgateError('invalid_config', 'its /server_info reports no tp_size');
  return { modelPath: card.modelPath, pageSize: card.pageSize, tpSize: tp, mla: MLA_MODELS.test(card.modelPath) };
}

// Why `a` and `b` cannot be a prefill/decode pair, or null when they can.
export function pdIncompatibility(a: PdShape, b: PdShape): string | null {
  if (a.modelPath !== b.modelPath) return `different models (${a.modelPath} and ${b.modelPath})`;
  if (a.pageSize !== b.pageSize) return `different page sizes (${a.pageSize} and ${b.pageSize}): KV pages are handed over as they are`;
  if (a.tpSize !== b.tpSize && !(a.mla && b.mla)) return `different TP sizes (${a.tpSize} and ${b.tpSize}), which SGLang pairs only for MLA models`;
  return null;
}
