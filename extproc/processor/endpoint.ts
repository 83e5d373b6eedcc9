import type { HeaderMapValues } from "../envoy/headers.js";
import type { LocalReply, PhaseReply } from "../envoy/messages.js";
import type { ProcessorDeps, RequestContext } from "./context.js";

/**
 * One OpenAI API endpoint's handling, a method per ext_proc phase. The request has been authenticated
 * before any method is called. Methods throw GatewayError to refuse the request. An endpoint that answers
 * from request headers alone (a {@link LocalReply}) needs no other phase.
 */
export interface EndpointProcessor {
  /** API name used in audit records and metrics, e.g. `chat.completions`. */
  readonly api: string;
  requestHeaders(
    ctx: RequestContext,
    headers: HeaderMapValues,
    endOfStream: boolean,
  ): PhaseReply | LocalReply;
  requestBody?(ctx: RequestContext, body: Buffer, deps: ProcessorDeps): PhaseReply | Promise<PhaseReply>;
  responseHeaders?(
    ctx: RequestContext,
    headers: HeaderMapValues,
    endOfStream: boolean,
    deps: ProcessorDeps,
  ): PhaseReply | Promise<PhaseReply>;
  responseBody?(ctx: RequestContext, chunk: Buffer, endOfStream: boolean): PhaseReply | Promise<PhaseReply>;
}
