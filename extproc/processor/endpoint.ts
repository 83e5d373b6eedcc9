import type { HeaderMapValues } from "../envoy/headers.js";
import type { LocalReply, PhaseReply } from "../envoy/messages.js";
import type { AuthenticatedContext } from "./context.js";

/** What a phase method answers: the reply to the message, or a local reply that ends the request. */
export type PhaseResult = PhaseReply | LocalReply;

/**
 * One ext_proc phase's handling of a message: its headers or body, and whether it is the last one of its
 * direction. Throws GatewayError to refuse the request.
 */
export type PhaseMethod<Message> = (
  ctx: AuthenticatedContext,
  message: Message,
  endOfStream: boolean,
) => PhaseResult | Promise<PhaseResult>;

/**
 * One OpenAI API endpoint's handling, a method per ext_proc phase; what it needs from the running service
 * it gets when constructed. The request has been authenticated before any method is called. An endpoint
 * that answers from request headers alone (a {@link LocalReply}) needs no other phase.
 */
export interface EndpointProcessor {
  /** API name used in audit records and metrics, e.g. `chat.completions`. */
  readonly api: string;
  readonly requestHeaders: PhaseMethod<HeaderMapValues>;
  readonly requestBody?: PhaseMethod<Buffer>;
  readonly responseHeaders?: PhaseMethod<HeaderMapValues>;
  readonly responseBody?: PhaseMethod<Buffer>;
}
