/**
 * Model-server error bodies in the client API's error shape. Chat servers answer errors in OpenAI's shape
 * (`{"error":{message,type,code,param}}`, vLLM and Triton) or close to it (TGI: `{"error":"…","error_type":…}`;
 * Ollama: `{"error":"…"}`); all read here.
 */
import { anthropicErrorType } from "../errors/index.js";
import { numberOf, objectOf, stringOf } from "./json.js";

/** The message of an error object or string, or a generic one naming the status. */
export function errorMessageOf(error: unknown, status?: number): string {
  const text = stringOf(error) ?? stringOf(objectOf(error)?.message);
  if (text) return text;
  return status === undefined ? "the model server failed" : `the model server answered ${status}`;
}

/** The OpenAI error type for a status, when the server gave none. */
function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

/** A chat server's error body as an OpenAI (Responses) error body. */
export function openAiErrorFromChat(status: number, body: unknown): Record<string, unknown> {
  const wrapper = objectOf(body);
  const error = objectOf(wrapper?.error);
  const code = stringOf(error?.code) ?? numberOf(error?.code);
  return {
    error: {
      message: errorMessageOf(error ?? wrapper?.error ?? wrapper?.message, status),
      type: stringOf(error?.type) ?? stringOf(wrapper?.error_type) ?? openAiType(status),
      param: stringOf(error?.param) ?? null,
      // Kept as the server sent it (vLLM: the status as a number), as its native /v1/responses does.
      code: code ?? null,
    },
  };
}

/** A chat server's error body as an Anthropic error body, its type chosen by status. */
export function anthropicErrorFromChat(status: number, body: unknown): Record<string, unknown> {
  const wrapper = objectOf(body);
  return {
    type: "error",
    error: {
      type: anthropicErrorType(status),
      message: errorMessageOf(wrapper?.error ?? wrapper?.message, status),
    },
  };
}
