/**
 * Every error the gateway answers with, by stable code. Clients (and the OpenAI SDKs) see
 * `{"error":{"message","type","param","code"}}` with the HTTP status below; SDKs pick their error
 * class from the status, humans read the message, programs switch on `code`.
 */
export const ERRORS = {
  missing_api_key: { status: 401, type: "authentication_error" },
  invalid_api_key: { status: 401, type: "authentication_error" },
  revoked_api_key: { status: 401, type: "authentication_error" },
  expired_api_key: { status: 401, type: "authentication_error" },
  inactive_api_key: { status: 401, type: "authentication_error" },
  model_not_allowed: { status: 403, type: "permission_error" },
  unmapped_identity: { status: 403, type: "permission_error" },
  model_not_found: { status: 404, type: "not_found_error" },
  unknown_url: { status: 404, type: "not_found_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  unknown_host: { status: 421, type: "invalid_request_error" },
  unsupported_content_type: { status: 415, type: "invalid_request_error" },
  invalid_json: { status: 400, type: "invalid_request_error" },
  invalid_request: { status: 400, type: "invalid_request_error" },
  missing_body: { status: 400, type: "invalid_request_error" },
  request_too_large: { status: 413, type: "invalid_request_error" },
  pii_blocked: { status: 400, type: "invalid_request_error" },
  content_blocked: { status: 400, type: "invalid_request_error" },
  prompt_injection_detected: { status: 400, type: "invalid_request_error" },
  input_too_long: { status: 400, type: "invalid_request_error" },
  request_exceeds_limit: { status: 400, type: "invalid_request_error" },
  rate_limit_exceeded: { status: 429, type: "rate_limit_error" },
  insufficient_quota: { status: 429, type: "insufficient_quota" },
  quota_store_unavailable: { status: 503, type: "server_error" },
  worker_failed: { status: 503, type: "server_error" },
} as const satisfies Record<string, { status: number; type: string }>;

/** Stable machine-readable error code, the `code` field of the OpenAI error body. */
export type ErrorCode = keyof typeof ERRORS;

/** A request the gateway refuses; carries everything needed to answer the client and audit it. */
export class GatewayError extends Error {
  readonly status: number;
  readonly type: string;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After, x-ratelimit-*). */
    readonly headers: ReadonlyArray<readonly [string, string]> = [],
  ) {
    super(message);
    this.name = "GatewayError";
    this.status = ERRORS[code].status;
    this.type = ERRORS[code].type;
  }

  /** The OpenAI-style JSON body for this error. */
  toBody(): string {
    return JSON.stringify({
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    });
  }
}
