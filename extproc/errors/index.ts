/**
 * Every error the gateway answers with, by stable code. Clients (and the OpenAI SDKs) see
 * `{"error":{"message","type","param","code"}}` with the HTTP status below (Anthropic Messages clients see
 * Anthropic's shape, {@link GatewayError.toBody}); SDKs pick their error class from the status, humans read
 * the message, programs switch on `code`.
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
  pool_busy: { status: 429, type: "rate_limit_error" },
  pool_saturated: { status: 503, type: "server_error" },
  quota_store_unavailable: { status: 503, type: "server_error" },
  worker_failed: { status: 503, type: "server_error" },
  stateful_request: { status: 400, type: "invalid_request_error" },
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

  /**
   * The JSON body for this error in the client's API: OpenAI's `{"error":{message,type,param,code}}`, or
   * Anthropic's `{"type":"error","error":{type,message}}` (with the gateway's stable `code` beside them, which
   * Anthropic's SDKs ignore and programs may switch on).
   */
  toBody(style: ErrorStyle = "openai"): string {
    if (style === "anthropic") {
      return JSON.stringify({
        type: "error",
        error: { type: anthropicErrorType(this.status), message: this.message, code: this.code },
      });
    }
    return JSON.stringify({
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    });
  }
}

/** The error body shape a client's API expects: OpenAI's (chat, completions, responses…) or Anthropic's (messages). */
export type ErrorStyle = "openai" | "anthropic";

/**
 * Anthropic's error `type` for an HTTP status, as its API documents them (other 4xx are
 * `invalid_request_error`, other 5xx `api_error`); its SDKs pick their error class from the status.
 */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 504:
      return "timeout_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}
