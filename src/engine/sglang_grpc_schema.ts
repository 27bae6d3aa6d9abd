// SGLang's gRPC contract (schema/grpc/sglang_scheduler.proto) for @grpc/grpc-js: the
// SglangScheduler service definition, shared by the client (sglang_grpc.ts) and the
// mocker's server (src/mocker/grpc_server.ts). Messages are encoded and decoded by
// protobufjs from the .proto at start-up; decoding yields message objects read directly
// (no copy into plain objects, unlike @grpc/proto-loader), so a streamed chunk costs one
// decode. Field names are the proto's own (snake_case).

import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const SCHEMA_DIR = fileURLToPath(new URL('../../schema/grpc/', import.meta.url));
const PACKAGE = 'sglang.grpc.scheduler';
export const SERVICE_NAME = `${PACKAGE}.SglangScheduler`;

// ---- message shapes (the fields kvgate reads or writes) ----

export interface SamplingParamsMsg {
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  frequency_penalty: number;
  presence_penalty: number;
  repetition_penalty: number;
  max_new_tokens?: number;
  stop?: string[];
  stop_token_ids?: number[];
  skip_special_tokens: boolean;
  spaces_between_special_tokens: boolean;
  regex?: string;
  json_schema?: string;
  ebnf_grammar?: string;
  structural_tag?: string;
  n: number;
  min_new_tokens: number;
  ignore_eos: boolean;
  no_stop_trim: boolean;
  stream_interval?: number;
  logit_bias?: Record<string, number>;
}

export interface GenerateRequestMsg {
  request_id: string;
  tokenized?: { original_text?: string; input_ids: number[] } | null;
  sampling_params?: SamplingParamsMsg | null;
  return_logprob?: boolean;
  return_hidden_states?: boolean;
  disaggregated_params?: { bootstrap_host: string; bootstrap_port: number; bootstrap_room: number } | null;
  log_metrics?: boolean;
  data_parallel_rank?: number;
  stream: boolean;
}

export interface GenerateStreamChunkMsg {
  token_ids: number[];
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  index?: number;
}

export interface GenerateCompleteMsg {
  output_ids: number[];
  finish_reason: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  matched_token_id?: number;
  matched_stop_str?: string;
  // protobufjs's virtual oneof: the name of the member that is set.
  matched_stop?: 'matched_token_id' | 'matched_stop_str';
  index?: number;
}

export interface GenerateResponseMsg {
  request_id: string;
  chunk?: GenerateStreamChunkMsg | null;
  complete?: GenerateCompleteMsg | null;
}

export interface HealthCheckResponseMsg {
  healthy: boolean;
  message: string;
}

export interface AbortRequestMsg {
  request_id: string;
  reason?: string;
}

export interface AbortResponseMsg {
  success: boolean;
  message: string;
}

export interface GetModelInfoResponseMsg {
  model_path: string;
  tokenizer_path: string;
  is_generation: boolean;
  preferred_sampling_params: string;
  weight_version: string;
  served_model_name: string;
  max_context_length: number;
  vocab_size: number;
  supports_vision: boolean;
  model_type: string;
  eos_token_ids: number[];
  pad_token_id: number;
  bos_token_id: number;
  max_req_input_len: number;
  architectures: string[];
  default_sampling_params_json: string;
}

// google.protobuf.Struct as protobufjs holds it (its bundled well-known types keep
// protobufjs's camelCase field names).
export interface StructMsg {
  fields?: Record<string, ValueMsg>;
}
export interface ValueMsg {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMsg;
  listValue?: { values?: ValueMsg[] };
}

export interface GetServerInfoResponseMsg {
  server_args?: StructMsg | null;
  scheduler_info?: StructMsg | null;
  active_requests: number;
  is_paused: boolean;
  last_receive_timestamp: number;
  uptime_seconds: number;
  sglang_version: string;
  server_type: string;
  start_time?: { seconds: number; nanos: number } | null;
  max_total_num_tokens: number;
}

export interface GetLoadsRequestMsg {
  dp_rank?: number;
  include?: string[];
}

export interface SchedulerLoadMsg {
  dp_rank: number;
  num_running_reqs: number;
  num_waiting_reqs: number;
  num_total_reqs: number;
  num_used_tokens: number;
  max_total_num_tokens: number;
  token_usage: number;
  gen_throughput: number;
  cache_hit_rate: number;
  utilization: number;
  max_running_requests: number;
  num_waiting_uncached_tokens: number;
  memory?: { weight_gb: number; kv_cache_gb: number; graph_gb: number; token_capacity: number } | null;
  disaggregation?: Record<string, number | string> | null;
  queues?: { waiting: number; grammar: number; paused: number; retracted: number } | null;
}

export interface GetLoadsResponseMsg {
  timestamp: string;
  version: string;
  dp_rank_count: number;
  loads: SchedulerLoadMsg[];
  aggregate?: Record<string, number> | null;
}

export interface FlushCacheRequestMsg {
  timeout_s: number;
}

export interface FlushCacheResponseMsg {
  success: boolean;
  message: string;
}

// ---- JSON <-> google.protobuf.Struct ----

export function toValue(v: unknown): ValueMsg {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'bigint') return { numberValue: Number(v) };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

export function toStruct(o: Record<string, unknown>): StructMsg {
  const fields: Record<string, ValueMsg> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) fields[k] = toValue(v);
  return { fields };
}

export function fromValue(v: ValueMsg): unknown {
  // A decoded Value names its member in the virtual oneof `kind` (the others read as their
  // defaults); a plain object has only the member set.
  const kind = (v as { kind?: keyof ValueMsg }).kind ?? (Object.keys(v)[0] as keyof ValueMsg | undefined);
  switch (kind) {
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    case 'stringValue':
    case 'numberValue':
    case 'boolValue':
      return v[kind];
    default:
      return null;
  }
}

export function fromStruct(s: StructMsg | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

// ---- the service ----

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // google/protobuf/* are bundled with protobufjs; the rest are ours.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(SCHEMA_DIR, target.replace(/^.*[/\\]/, '')));
  root.loadSync('sglang_scheduler.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

// A decoded message as a plain JSON-like object, every field included (unset ones as their
// defaults), as the HTTP API would report them.
export function plainObject(msg: object): Record<string, unknown> {
  const type = msg.constructor as unknown as { toObject(m: object, o: protobuf.IConversionOptions): Record<string, unknown> };
  return type.toObject(msg, { defaults: true, longs: Number, enums: String, arrays: true, objects: true });
}

export interface Method {
  path: string;
  serialize: (msg: object) => Buffer;
  deserialize: (bytes: Buffer) => unknown;
}

export interface SglangSchema {
  definition: ServiceDefinition;
  methods: Record<'Generate' | 'HealthCheck' | 'Abort' | 'GetModelInfo' | 'GetServerInfo' | 'GetLoads' | 'FlushCache', Method>;
}

function codec(t: protobuf.Type): { serialize: (m: object) => Buffer; deserialize: (b: Buffer) => unknown } {
  return {
    serialize: (m) => {
      const bytes = t.encode(m as protobuf.Message).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (b) => t.decode(b),
  };
}

let cached: SglangSchema | null = null;

export function sglangSchema(): SglangSchema {
  if (cached) return cached;
  const service = loadRoot().lookupService(SERVICE_NAME);
  const definition: Record<string, ServiceDefinition[string]> = {};
  const methods: Record<string, Method> = {};
  for (const m of service.methodsArray) {
    const req = codec(m.resolvedRequestType!);
    const res = codec(m.resolvedResponseType!);
    const path = `/${SERVICE_NAME}/${m.name}`;
    definition[m.name] = {
      path,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: m.name,
    };
    methods[m.name] = { path, serialize: req.serialize, deserialize: res.deserialize };
  }
  cached = { definition, methods: methods as SglangSchema['methods'] };
  return cached;
}
