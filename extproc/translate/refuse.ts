import { GatewayError } from "../errors/index.js";

/**
 * The error for a request feature a chat-completions pool cannot express: translating it anyway would
 * silently change what the model does, so the request is refused with the field named.
 */
export function unsupported(param: string, what: string): GatewayError {
  return new GatewayError(
    "invalid_request",
    `${what} is not supported on this model's pool: it serves only chat completions, which cannot express it`,
    param,
  );
}

/**
 * The error for a field the translation needs but the (loosely validated) request lacks or gives in a shape
 * chat has no use for: refused with the field named, as the model server would refuse it.
 */
export function malformed(param: string, expected: string): GatewayError {
  return new GatewayError("invalid_request", `'${param}' must be ${expected}.`, param);
}
