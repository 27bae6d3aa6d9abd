// OpenAI's error JSON for every error the HTTP layer sends:
// {"error":{"message","type","param","code"}}, status and type from src/errors.ts.

import { KvgateError } from '../errors.js';
import type { ErrorJson } from '../openai/types.js';

// Anything thrown that is not a KvgateError is a bug: a 500 without internals.
export function asKvgateError(err: unknown): KvgateError {
  if (err instanceof KvgateError) return err;
  return new KvgateError('internal_error', 'internal error');
}

export function errorJson(err: KvgateError): ErrorJson {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}
