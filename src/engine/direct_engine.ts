// The client for an engine URL: grpc://host:port speaks SGLang's gRPC API (--grpc-mode),
// http(s)://host:port its HTTP API.

import { KvgateError } from '../errors.js';
import type { DirectEngine } from './client.js';
import { SglangGrpcEngine } from './sglang_grpc.js';
import { SglangHttpEngine } from './sglang_http.js';

export const ENGINE_URL = /^(https?|grpc):\/\/[^/]+/;

// `apiKey`: the engine's --api-key, sent as Authorization: Bearer on every HTTP request
// (SGLang's gRPC server has no API key).
export function directEngine(url: string, apiKey?: string): DirectEngine {
  if (url.startsWith('grpc://')) return new SglangGrpcEngine(url);
  if (/^https?:\/\//.test(url)) return new SglangHttpEngine(url, apiKey !== undefined ? { apiKey } : {});
  throw new KvgateError('invalid_config', `'${url}' is not an http(s):// or grpc:// engine URL`);
}
