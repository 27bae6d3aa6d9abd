// What the router reads from and adds to a request body. The body is forwarded as the client
// sent it (unknown fields, number spellings and key order kept); the router's own fields are
// appended before the closing brace, where they win over a client's (SGLang's JSON parser
// keeps the last of a repeated key).

import { randomBytes } from 'node:crypto';
import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';

export type InferenceRoute = '/generate' | '/v1/chat/completions' | '/v1/completions';

export function parseBody(raw: Buffer): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new KvgateError('invalid_json', 'the request body is not valid JSON');
  }
  if (!isJsonObject(v)) throw new KvgateError('invalid_request', 'the request body must be a JSON object');
  return v;
}

const idsText = (v: unknown): string => (Array.isArray(v) ? v.join(' ') : '');

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (isJsonObject(p) && typeof p['text'] === 'string' ? p['text'] : '')).join(' ');
}

// SGLang's cache_aware routing text: /generate's text (or input_ids joined by spaces), the
// chat messages' contents joined by spaces, the completion prompt. A batch routes on its first item.
export function routingText(route: InferenceRoute, body: JsonObject): string {
  switch (route) {
    case '/generate': {
      const text = body['text'];
      if (typeof text === 'string') return text;
      if (Array.isArray(text)) return typeof text[0] === 'string' ? text[0] : '';
      const ids = body['input_ids'];
      return Array.isArray(ids) && Array.isArray(ids[0]) ? idsText(ids[0]) : idsText(ids);
    }
    case '/v1/chat/completions': {
      const messages = body['messages'];
      return Array.isArray(messages) ? messages.map((m) => (isJsonObject(m) ? contentText(m['content']) : '')).join(' ') : '';
    }
    case '/v1/completions': {
      const prompt = body['prompt'];
      if (typeof prompt === 'string') return prompt;
      if (Array.isArray(prompt)) return typeof prompt[0] === 'string' ? prompt[0] : Array.isArray(prompt[0]) ? idsText(prompt[0]) : idsText(prompt);
      return '';
    }
  }
}

// PD: how many requests the body holds (null: one, sent with scalar bootstrap fields).
export function batchSize(route: InferenceRoute, body: JsonObject): number | null {
  if (route === '/generate') {
    const text = body['text'];
    if (Array.isArray(text)) return text.length;
    const ids = body['input_ids'];
    if (Array.isArray(ids) && ids.length > 0 && Array.isArray(ids[0])) return ids.length;
    return null;
  }
  const prompt = body['prompt'];
  if (route === '/v1/completions' && Array.isArray(prompt) && prompt.length > 0 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) return prompt.length;
  const n = body['n'];
  return typeof n === 'number' && Number.isInteger(n) && n > 1 ? n : null;
}

export const isStream = (body: JsonObject): boolean => body['stream'] === true;

// Appends `"key":value` pairs (values already JSON) to the object text `raw`.
export function appendFields(raw: string, fields: readonly [string, string][]): string {
  if (fields.length === 0) return raw;
  const end = raw.lastIndexOf('}');
  const head = raw.slice(0, end).trimEnd();
  const extra = fields.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',');
  return `${head}${head.endsWith('{') ? '' : ','}${extra}}`;
}

// A bootstrap room: a random integer in [0, 2^63), SGLang's range (u64 <= i64::MAX), as JSON text.
export function newRoom(): string {
  return (randomBytes(8).readBigUInt64BE(0) & 0x7fffffffffffffffn).toString();
}

// The PD fields of one request (or of each item of a batch: lists, a room per item).
export function bootstrapFields(host: string, port: number | null, batch: number | null): [string, string][] {
  const portJson = port === null ? 'null' : String(port);
  if (batch === null) {
    return [
      ['bootstrap_host', JSON.stringify(host)],
      ['bootstrap_port', portJson],
      ['bootstrap_room', newRoom()],
    ];
  }
  const list = (f: () => string) => `[${Array.from({ length: batch }, f).join(',')}]`;
  return [
    ['bootstrap_host', list(() => JSON.stringify(host))],
    ['bootstrap_port', list(() => portJson)],
    ['bootstrap_room', list(newRoom)],
  ];
}
