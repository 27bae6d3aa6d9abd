// A worker's model card: what a frontend needs to preprocess for, route to, stream from and
// pair this worker; it travels in the request plane's Hello frame and in discovery records.
// Read from the engine a worker started or one the router was pointed at
// (reference/sglang.md §1.7, §2.6; dynamo.md §1.4): /server_info (or /get_server_info) and
// /model_info (or /get_model_info), /v1/models for the context length if /server_info lacks
// it. A field the engine does not report is an error naming the field, never a default.

import { KvgateError } from '../errors.js';
import { finiteNumber as num, isJsonObject, type JsonObject } from '../json.js';

export type EngineKind = 'sglang' | 'mocker';

export type WorkerRole = 'agg' | 'prefill' | 'decode';

export interface ModelCard {
  servedModelName: string;
  modelPath: string;
  // Where the tokenizer comes from: a local directory or a hub id.
  tokenizerPath: string;
  contextLength: number;
  // The engine's page size = the block size of its KV events and of the router's hashing.
  pageSize: number;
  // KV capacity per dp rank, in tokens and in blocks (ceil(tokens / pageSize)).
  maxTotalNumTokens: number;
  totalKvBlocks: number;
  maxRunningRequests: number | null;
  dpSize: number;
  role: WorkerRole;
  // Prefill workers: the engine's bootstrap server that decode engines fetch KV from.
  bootstrapHost: string | null;
  bootstrapPort: number | null;
  migrationLimit: number;
  // Whether the engine publishes KV events (false: the router must predict the cache).
  kvEvents: boolean;
  engine: EngineKind;
  engineVersion: string | null;
  // Where frontends stream from the engine (the scheme is the protocol: http://, grpc://).
  // The worker agent supervises the engine but is not on the token path.
  engineUrl: string;
}

export type GetJson = (path: string) => Promise<{ status: number; body: unknown }>;

const str = (o: JsonObject, k: string) => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : null);

async function firstFound(get: GetJson, paths: string[]): Promise<JsonObject> {
  for (const p of paths) {
    const r = await get(p);
    if (r.status === 200 && isJsonObject(r.body)) return r.body;
    if (r.status !== 404) throw new KvgateError('engine_error', `engine ${p} answered ${r.status}`);
  }
  throw new KvgateError('engine_error', `engine has none of ${paths.join(', ')}`);
}

export interface CardContext {
  // The role the worker was started for; the engine must run it. Unset: whatever it runs.
  role?: WorkerRole;
  // Unset: told apart by the `mocker` section kvgate's mocker adds to /server_info.
  engine?: EngineKind;
  migrationLimit: number;
  // Where decode engines reach this worker's bootstrap server (prefill).
  advertiseHost: string;
  // Where frontends reach the engine (its own URL, or what the agent advertises for it).
  engineUrl: string;
}

export async function readModelCard(get: GetJson, ctx: CardContext): Promise<ModelCard> {
  const server = await firstFound(get, ['/server_info', '/get_server_info']);
  const model = await firstFound(get, ['/model_info', '/get_model_info']);
  const missing = (what: string): never => {
    throw new KvgateError('engine_error', `engine /server_info or /model_info does not report ${what}; cannot register the worker`);
  };
  const served = server['served_model_name'] ?? model['served_model_name'];
  const servedModelName =
    typeof served === 'string' ? served : Array.isArray(served) && typeof served[0] === 'string' ? served[0] : missing('served_model_name');
  const modelPath = str(model, 'model_path') ?? str(server, 'model_path') ?? missing('model_path');
  const tokenizerPath = str(model, 'tokenizer_path') ?? str(server, 'tokenizer_path') ?? missing('tokenizer_path');

  // The KV-event block size is page_size (times the decode context-parallel size, which
  // the newest /server_info folds into kv_events.block_size).
  const kvEvents = isJsonObject(server['kv_events']) ? server['kv_events'] : null;
  const pageSize = (kvEvents && num(kvEvents, 'block_size')) ?? num(server, 'page_size') ?? missing('page_size');
  if (!Number.isInteger(pageSize) || pageSize < 1) missing('a positive page_size');
  const maxTotalNumTokens = num(server, 'max_total_num_tokens') ?? missing('max_total_num_tokens');
  const dpSize = num(server, 'dp_size') ?? missing('dp_size');

  const mode = str(server, 'disaggregation_mode') ?? 'null';
  const role: WorkerRole = mode === 'prefill' || mode === 'decode' ? mode : 'agg';
  if (ctx.role !== undefined && role !== ctx.role) {
    throw new KvgateError('engine_error', `engine runs disaggregation mode '${mode}', but the worker role is ${ctx.role}`);
  }

  const states = Array.isArray(server['internal_states']) && isJsonObject(server['internal_states'][0]) ? server['internal_states'][0] : {};
  const maxRunningRequests = num(server, 'max_running_requests') ?? num(states, 'effective_max_running_requests_per_dp');

  let contextLength = num(server, 'context_length');
  if (contextLength === null) {
    const models = await get('/v1/models');
    const data = isJsonObject(models.body) && Array.isArray(models.body['data']) ? models.body['data'] : [];
    contextLength = isJsonObject(data[0]) ? num(data[0], 'max_model_len') : null;
  }

  return {
    servedModelName,
    modelPath,
    tokenizerPath,
    contextLength: contextLength ?? missing('context_length (nor /v1/models max_model_len)'),
    pageSize,
    maxTotalNumTokens,
    totalKvBlocks: Math.ceil(maxTotalNumTokens / pageSize),
    maxRunningRequests,
    dpSize,
    role,
    bootstrapHost: role === 'prefill' ? ctx.advertiseHost : null,
    bootstrapPort: role === 'prefill' ? (num(server, 'disaggregation_bootstrap_port') ?? missing('disaggregation_bootstrap_port')) : null,
    migrationLimit: ctx.migrationLimit,
    // The agent configured the publisher; the newest /server_info also says so.
    kvEvents: server['kv_events'] !== null,
    engine: ctx.engine ?? (server['mocker'] !== undefined ? 'mocker' : 'sglang'),
    engineVersion: str(server, 'version'),
    engineUrl: ctx.engineUrl,
  };
}
