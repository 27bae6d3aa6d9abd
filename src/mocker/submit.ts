// From an admitted generate request (an HTTP /generate body or a gRPC GenerateRequest) to a
// request queued in the engine: the bootstrap triple, the scheduler's own rejections (aborts
// with a status, as SGLang has them), prompt truncation, and the DP rank.

import type { MockEngine } from './engine.js';
import { maxReqInputLen, type Admission, type GenerateBody } from './protocol.js';
import { abortReason, EngineRequest, type OutputSink } from './request.js';
import { FAKE_BOOTSTRAP_HOST } from './scheduler.js';

// The queued request, or null when the scheduler refused it (the sink already got its
// abort). Throws RequestError (duplicate rid, bad DP rank) before anything runs.
export function submitGenerate(engine: MockEngine, body: GenerateBody, adm: Admission, sink: OutputSink): EngineRequest | null {
  const o = engine.opts;
  const pd = o.disaggregationMode !== 'null';
  const fakeBackend = o.disaggregationTransferBackend === 'fake';
  let bootstrap = body.bootstrapRoom !== null ? { host: body.bootstrapHost ?? '127.0.0.1', port: body.bootstrapPort, room: body.bootstrapRoom } : null;
  // SGLang's `fake` transfer backend runs PD engines without a partner (benchmarks).
  if (pd && fakeBackend) bootstrap = { host: FAKE_BOOTSTRAP_HOST, port: null, room: body.bootstrapRoom ?? 0n };
  const req = new EngineRequest({
    rid: adm.rid,
    inputIds: adm.inputIds,
    rules: adm.rules,
    stream: adm.stream,
    sink,
    seed: o.seed,
    naturalOutputLen: o.naturalOutputLen,
    bootstrap,
  });
  req.prefillDpRank = body.disaggPrefillDpRank;
  const reject = (message: string, errType: string | null) => {
    req.finishReason = abortReason(message, 400, errType);
    req.state = 'done';
    req.sink.output(req, true);
    return null;
  };
  const localPrefill = o.disaggregationMode === 'decode' && o.decodeLocalPrefill;
  if (pd && body.bootstrapRoom === null && !fakeBackend && !localPrefill) {
    return reject(`Invalid request: Disaggregated request received without bootstrap room id. req.rid='${req.rid}'`, null);
  }
  const limit = maxReqInputLen(o);
  if (req.isl >= limit && !o.allowAutoTruncate) {
    return reject(`Input length (${req.isl} tokens) exceeds the maximum allowed length (${limit} tokens). Use a shorter input or enable --allow-auto-truncate.`, 'BadRequestError');
  }
  if (req.isl >= limit) req.inputIds.length = limit;
  engine.submit(req, body.routedDpRank);
  return req;
}
