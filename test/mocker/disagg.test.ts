// Prefill/decode disaggregation between two real mockers: the bootstrap server's SGLang routes, the
// room rendezvous, the responses of both legs, and how a failure on either side ends the other.

import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, EventTap, get, inFlight, mocker, post, sseEvents, until } from './helpers.js';

const taps: EventTap[] = [];
afterEach(async () => {
  await Promise.all(taps.splice(0).map((t) => t.close()));
  await closeAll();
});

// Above 2^53: the room must survive JSON parsing digit for digit.
const ROOM = 9007199254740993n;

async function pair(prefillOpts = {}, decodeOpts = {}) {
  const prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, pageSize: 4, ...prefillOpts });
  const decode = await mocker({ disaggregationMode: 'decode', pageSize: 4, ...decodeOpts });
  return { prefill, decode };
}

// The router's job: the same body, with the bootstrap triple, to both legs at once.
function legs(prefill: { url: string; bootstrapPort: number | null }, decode: { url: string }, body: Record<string, unknown>, room = ROOM) {
  const text = JSON.stringify({ ...body, bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: '__ROOM__' }).replace('"__ROOM__"', room.toString());
  return Promise.all([post(`${prefill.url}/generate`, text), post(`${decode.url}/generate`, text)]);
}

describe('PD disaggregation', () => {
  it('serves one request across a prefill and a decode mocker', async () => {
    const { prefill, decode } = await pair({ kvEventsConfig: { publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', bind: true } });
    const t = new EventTap(prefill.kvEventPorts[0]!);
    taps.push(t);
    await t.live(prefill, 0, { bootstrap_host: '2.2.2.2', bootstrap_room: 0 });
    const prompt = Array.from({ length: 13 }, (_, i) => 300 + i);
    const [p, d] = await legs(prefill, decode, { rid: 'pd-1', input_ids: prompt, sampling_params: { max_new_tokens: 8, ignore_eos: true }, stream: true });
    expect(p.status).toBe(200);
    expect(d.status).toBe(200);
    const pChunks = sseEvents(p.text) as any[];
    expect(pChunks.at(-1)).toBe('[DONE]');
    // The prefill leg ends after prefill + transfer, with the first token and finish length 0.
    const pFinal = pChunks.at(-2);
    expect(pFinal.meta_info.finish_reason).toEqual({ type: 'length', length: 0 });
    expect(pFinal.output_ids).toHaveLength(1);
    expect(pFinal.meta_info.prompt_tokens).toBe(13);
    const dChunks = (sseEvents(d.text) as any[]).slice(0, -1);
    expect(dChunks).toHaveLength(8);
    expect(dChunks[0].output_ids).toEqual(pFinal.output_ids);
    const dFinal = dChunks.at(-1);
    expect(dFinal.meta_info).toMatchObject({ id: 'pd-1', prompt_tokens: 13, completion_tokens: 8, cached_tokens: 0, finish_reason: { type: 'length', length: 8 } });
    // The prefill engine cached the prompt (three full pages) and published it.
    await t.waitFor(() => t.events().length >= 3);
    expect(t.events().map((e) => e[3])).toEqual([prompt.slice(0, 4), prompt.slice(4, 8), prompt.slice(8, 12)]);
    // Same prompt again: the prefix hit is prefill's and the decode leg reports it.
    const [, d2] = await legs(prefill, decode, { input_ids: prompt, sampling_params: { max_new_tokens: 2, ignore_eos: true } }, ROOM + 1n);
    expect(d2.json().meta_info.cached_tokens).toBe(12);
    expect(d2.json().output_ids[0]).toBe(pFinal.output_ids[0]);
  });

  it('the decode leg may arrive first; DP prefill follows the room', async () => {
    const { prefill, decode } = await pair({ dpSize: 2 });
    const body = JSON.stringify({ input_ids: [1, 2, 3, 4, 5], sampling_params: { max_new_tokens: 3, ignore_eos: true }, bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 7 });
    const d = post(`${decode.url}/generate`, body);
    await until(async () => (await inFlight(decode)) === 1);
    const p = await post(`${prefill.url}/generate`, body);
    expect(p.json().meta_info.dp_rank).toBe(1); // 7 % 2
    expect((await d).json().meta_info.finish_reason).toEqual({ type: 'length', length: 3 });
  });

  it('serves SGLang’s bootstrap routes', async () => {
    const { prefill } = await pair({ dpSize: 2, loadBalanceMethod: 'round_robin' });
    const base = `http://127.0.0.1:${prefill.bootstrapPort}`;
    const info = await get(`${base}/route?prefill_dp_rank=-1&prefill_cp_rank=-1&target_tp_rank=-1&target_pp_rank=-1`);
    expect(info.status).toBe(200);
    expect(info.json()).toMatchObject({ attn_tp_size: 1, attn_cp_size: 1, dp_size: 2, pp_size: 1, page_size: 4, follow_bootstrap_room: false, prefill_http_port: prefill.port });
    const rank1 = await get(`${base}/route?prefill_dp_rank=1&prefill_cp_rank=0&target_tp_rank=0&target_pp_rank=0`);
    expect(rank1.json()).toEqual({ rank_ip: '127.0.0.1', rank_port: prefill.bootstrapPort });
    const missing = await get(`${base}/route?prefill_dp_rank=0`);
    expect(missing.status).toBe(400);
    expect(missing.text).toBe('Missing inputs for bootstrap server.');
    expect((await get(`${base}/route?prefill_dp_rank=5&prefill_cp_rank=0&target_tp_rank=0&target_pp_rank=0`)).status).toBe(404);
    expect((await fetch(`${base}/route`, { method: 'DELETE' })).status).toBe(405);
    const health = await get(`${base}/health`);
    expect([health.status, health.text]).toEqual([200, 'OK']);
    // Rooms are 63-bit; the table keeps them exact.
    expect((await post(`${base}/register_dp_rank`, `{"bootstrap_room":${ROOM},"dp_rank":1}`)).text).toBe('OK');
    const q = await post(`${base}/query_dp_ranks`, `{"bootstrap_rooms":[${ROOM}, 5]}`);
    expect(q.json()).toEqual({ [ROOM.toString()]: 1 });
    // A request routed round-robin registers its room; decode finds the rank through it.
    const { decode } = { decode: await mocker({ disaggregationMode: 'decode', pageSize: 4 }) };
    const [p, d] = await legs(prefill, decode, { input_ids: [9, 9, 9], sampling_params: { max_new_tokens: 2, ignore_eos: true } }, 42n);
    const rank = p.json().meta_info.dp_rank;
    expect((await post(`${base}/query_dp_ranks`, '{"bootstrap_rooms":[42]}')).json()).toEqual({ '42': rank });
    expect(d.json().meta_info.completion_tokens).toBe(2);
  });

  it('a PD engine rejects a request without a bootstrap room as SGLang does', async () => {
    const { prefill, decode } = await pair();
    for (const m of [prefill, decode]) {
      const r = await post(`${m.url}/generate`, { rid: 'r0', input_ids: [1, 2], sampling_params: { max_new_tokens: 1 } });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ error: { message: "Invalid request: Disaggregated request received without bootstrap room id. req.rid='r0'" } });
    }
    const s = await post(`${decode.url}/generate`, { rid: 'r1', input_ids: [1, 2], stream: true });
    const events = sseEvents(s.text) as any[];
    expect(events[0].meta_info.finish_reason).toMatchObject({ type: 'abort', status_code: 400 });
    expect(events[1]).toBe('[DONE]');
    // Health probes use SGLang's fake bootstrap host and need no partner.
    expect((await get(`${prefill.url}/health_generate`)).status).toBe(200);
    expect((await get(`${decode.url}/health_generate`)).status).toBe(200);
  });
});

describe('PD with the fake transfer backend', () => {
  it('runs each engine alone, with or without a room', async () => {
    const prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, disaggregationTransferBackend: 'fake' });
    const decode = await mocker({ disaggregationMode: 'decode', disaggregationTransferBackend: 'fake' });
    const p = await post(`${prefill.url}/generate`, { input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 4 } });
    expect(p.json().meta_info.finish_reason).toEqual({ type: 'length', length: 0 });
    const d = await post(`${decode.url}/generate`, { input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 4, ignore_eos: true }, bootstrap_room: 5 });
    expect(d.json().meta_info.finish_reason).toEqual({ type: 'length', length: 4 });
    expect(d.json().output_ids[0]).toBe(p.json().output_ids[0]);
  });
});

// The decode side has joined the prefill request's room: the prefill leg left its bootstrap queue.
async function joined(prefill: { url: string }): Promise<boolean> {
  const loads = (await get(`${prefill.url}/v1/loads?include=disagg`)).json().loads as any[];
  return (await inFlight(prefill)) === 1 && loads[0].disaggregation.prefill_prealloc_queue_reqs === 0;
}

describe('PD failures end both legs with finish_reason abort', () => {
  it('a decode whose prefill never comes times out', async () => {
    const { prefill, decode } = await pair({}, { disaggregationWaitingTimeout: 0.3 });
    const body = JSON.stringify({ input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 2 }, stream: true, bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 11 });
    const events = sseEvents((await post(`${decode.url}/generate`, body)).text) as any[];
    expect(events.at(-2).meta_info.finish_reason).toMatchObject({ type: 'abort', status_code: 500, err_type: null });
    expect(events.at(-2).meta_info.finish_reason.message).toMatch(/^Decode transfer failed for request rid=\w+ bootstrap_room=11: timed out after 0.3s waiting for the prefill side$/);
    // Not streaming: SGLang's HTTPException body with status 500.
    const plain = await post(`${decode.url}/generate`, body.replace('"stream":true', '"stream":false').replace(':11}', ':12}'));
    expect(plain.status).toBe(500);
    expect(plain.json()).toMatchObject({ object: 'error', type: '500', param: null, code: 500 });
  });

  it('a prefill whose decode never comes times out in the bootstrap queue', async () => {
    const { prefill } = await pair({ disaggregationBootstrapTimeout: 0.3 });
    const r = await post(`${prefill.url}/generate`, { input_ids: [1, 2, 3], bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 3 });
    expect(r.status).toBe(500);
    expect(r.json().message).toMatch(/^Prefill bootstrap failed for request rid=\w+ bootstrap_room=3: timed out after 0.3s waiting for the decode side$/);
  });

  it('aborting the prefill leg aborts the decode leg', async () => {
    const { prefill, decode } = await pair({ speedupRatio: 0.01 });
    const legsDone = legs(prefill, decode, { rid: 'doomed', input_ids: Array(200).fill(5), sampling_params: { max_new_tokens: 4 }, stream: true }, 21n);
    await until(async () => (await joined(prefill)) && (await inFlight(decode)) === 1);
    await post(`${prefill.url}/abort_request`, { rid: 'doomed' });
    const [p, d] = await legsDone;
    expect((sseEvents(p.text) as any[]).at(-2).meta_info.finish_reason).toMatchObject({ type: 'abort', message: 'Aborted' });
    const dFinal = (sseEvents(d.text) as any[]).at(-2);
    expect(dFinal.meta_info.finish_reason).toMatchObject({ type: 'abort', status_code: 500 });
    expect(dFinal.meta_info.finish_reason.message).toMatch(/prefill request doomed aborted/);
  });

  it('a decode client that goes away aborts the prefill leg', async () => {
    const { prefill, decode } = await pair({ speedupRatio: 0.01 });
    const text = JSON.stringify({ rid: 'gone', input_ids: Array(300).fill(5), sampling_params: { max_new_tokens: 4 }, bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 31 });
    const p = post(`${prefill.url}/generate`, text);
    const ac = new AbortController();
    const d = fetch(`${decode.url}/generate`, { method: 'POST', body: text, signal: ac.signal }).catch(() => null);
    await until(async () => (await joined(prefill)) && (await inFlight(decode)) === 1);
    ac.abort();
    await d;
    const r = await p;
    expect(r.status).toBe(500);
    expect(r.json().message).toMatch(/Prefill transfer failed .*the decode side went away/);
  });

  it('a prefill engine that dies ends the waiting decode', async () => {
    const { prefill, decode } = await pair({ speedupRatio: 0.01 });
    const legsDone = legs(prefill, decode, { input_ids: Array(300).fill(5), sampling_params: { max_new_tokens: 4 } }, 41n);
    await until(async () => (await inFlight(prefill)) === 1 && (await inFlight(decode)) === 1);
    await prefill.close(0);
    const [p, d] = await legsDone;
    expect(p.status).toBe(503);
    expect(d.status).toBe(500);
    expect(d.json().message).toMatch(/^Decode transfer failed for request rid=\w+ bootstrap_room=41: /);
  });

  it('refuses a pair with different page sizes', async () => {
    const { prefill, decode } = await pair({ disaggregationBootstrapTimeout: 0.5 }, { pageSize: 16 });
    const [p, d] = await legs(prefill, decode, { input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 2 } }, 51n);
    expect(d.status).toBe(500);
    expect(d.json().message).toMatch(/page size mismatch: prefill 4, decode 16/);
    // The decode never reached the prefill, which gives up at its bootstrap timeout.
    expect(p.status).toBe(500);
    expect(p.json().message).toMatch(/Prefill bootstrap failed/);
  });
});
