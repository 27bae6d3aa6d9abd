// The one error registry. Every error kvgate raises on purpose has a code here, with the
// HTTP status and OpenAI error type a client sees when it crosses the HTTP boundary.
// Native errors carry the same codes (see native/binding/index.d.ts).

export const ERRORS = {
  // Client errors (OpenAI `invalid_request_error` family).
  invalid_json: { status: 400, type: 'invalid_request_error' },
  invalid_request: { status: 400, type: 'invalid_request_error' },
  invalid_type: { status: 400, type: 'invalid_request_error' },
  missing_field: { status: 400, type: 'invalid_request_error' },
  unsupported_parameter: { status: 400, type: 'invalid_request_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  request_timeout: { status: 408, type: 'invalid_request_error' },
  payload_too_large: { status: 413, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  header_fields_too_large: { status: 431, type: 'invalid_request_error' },
  unknown_method: { status: 501, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  // The client left before its request was served (nginx's 499; the client never sees it).
  client_closed_request: { status: 499, type: 'invalid_request_error' },
  // Admission control (serve and router): the queue is full (429), or a queued request waited
  // too long (503).
  too_many_requests: { status: 429, type: 'rate_limit_exceeded' },
  queue_timeout: { status: 503, type: 'service_unavailable' },
  // Every worker's KV cache is past --active-decode-blocks-threshold.
  workers_busy: { status: 503, type: 'service_unavailable' },
  // Server side.
  no_workers: { status: 503, type: 'service_unavailable' },
  shutting_down: { status: 503, type: 'service_unavailable' },
  engine_error: { status: 502, type: 'server_error' },
  engine_timeout: { status: 504, type: 'server_error' },
  // The engine cannot be reached, broke its stream, or said 503: "this worker cannot finish
  // it; another may" (the router takes the worker out and retries before the first token).
  engine_unavailable: { status: 503, type: 'service_unavailable' },
  // The control-plane connection to a worker agent failed.
  worker_disconnected: { status: 502, type: 'server_error' },
  internal_error: { status: 500, type: 'server_error' },
  // Configuration and startup (never sent over HTTP).
  invalid_config: { status: 500, type: 'config_error' },
  // Native core (thrown by the addon with err.code set).
  ERR_INVALID_ARG: { status: 500, type: 'server_error' },
  ERR_KV_EVENT_MALFORMED: { status: 500, type: 'server_error' },
  ERR_CLOSED: { status: 500, type: 'server_error' },
  ERR_LIMIT: { status: 503, type: 'service_unavailable' },
  ERR_NATIVE_ADDON: { status: 500, type: 'server_error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class KvgateError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  // Sent as Retry-After (seconds) when the error crosses the HTTP boundary.
  readonly retryAfter: number | null;
  constructor(code: ErrorCode, message: string, param: string | null = null, retryAfter: number | null = null) {
    super(message);
    this.name = 'KvgateError';
    this.code = code;
    this.param = param;
    this.retryAfter = retryAfter;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  get type(): string {
    return ERRORS[this.code].type;
  }
}
