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
