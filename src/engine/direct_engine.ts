// The client for an engine URL: grpc://host:port speaks SGLang's gRPC API (--grpc-mode),
// http(s)://host:port its HTTP API.

import { KvgateError } from '../errors.js';
import type { DirectEngine } from './client.js';
import { SglangGrpcEngine } from './sglang_grpc.js';
import { SglangHttpEngine } from './sglang_http.js';

export const ENGINE_URL = /^(https?|grpc):\/\/[^/]+/;

export function directEngine(url: string): DirectEngine {
  if (url.startsWith('grpc://')) return new SglangGrpcEngine(url);
  if (/^https?:\/\//.test(url)) return new SglangHttpEngine(url);
  throw new KvgateError('invalid_config', `'${url}' is not an http(s):// or grpc:// engine URL`);
}
