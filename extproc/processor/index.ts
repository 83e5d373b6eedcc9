import { authenticate, JWT_METADATA_NAMESPACE } from "../auth/index.js";
import { readHeaders, type HeaderMapValues } from "../envoy/headers.js";
import type { AuditReason, AuditRecord } from "../audit/index.js";
import {
  BodySendMode,
  encodeLocalReply,
  encodePhaseReply,
  type HttpBodyMessage,
  type HttpHeadersMessage,
  type LocalReply,
  type MetadataValues,
  type Phase,
  type ProcessingRequestMessage,
  structToJson,
} from "../envoy/messages.js";
import { GatewayError } from "../errors/index.js";
import { countExchange } from "../metrics/exchange.js";
import type { Admission } from "../quota/index.js";
import { monotonicMs, RequestContext, type AuthenticatedContext, type ProcessorDeps } from "./context.js";
import type { EndpointProcessor, PhaseResult } from "./endpoint.js";
import { inferenceEndpoints } from "./inference.js";
import { isModelsPath, ModelsProcessor } from "./models.js";

export type { ProcessorDeps } from "./context.js";

const PHASES: readonly Phase[] = [
  "requestHeaders",
  "requestBody",
  "responseHeaders",
  "responseBody",
  "requestTrailers",
  "responseTrailers",
];

/** Phase of a ProcessingRequest (the field of its `request` oneof that is set). */
export function phaseOf(message: ProcessingRequestMessage): Phase | undefined {
  return PHASES.find((phase) => message[phase] != null);
}

/** Picks the endpoint processor for a method and path; throws 404/405 for anything else. */
function selectEndpoint(method: string, path: string, deps: ProcessorDeps): EndpointProcessor {
  const inference = inferenceEndpoints[path];
  if (inference) {
    if (method !== "POST") throw new GatewayError("method_not_allowed", `${path} accepts POST only.`);
    return inference(deps);
  }
  if (isModelsPath(path)) {
    if (method !== "GET") throw new GatewayError("method_not_allowed", `${path} accepts GET only.`);
    return new ModelsProcessor();
  }
  throw new GatewayError("unknown_url", `Unknown request URL: ${method} ${path}.`);
}

/** Reason codes for answers Envoy gives itself before a request is forwarded, by status. */
const ENVOY_REPLY_REASONS: Readonly<Record<number, AuditReason>> = { 413: "request_too_large" };

const isLocalReply = (reply: PhaseResult): reply is LocalReply => "status" in reply;

/**
 * One HTTP request's ext_proc conversation: dispatches each message to the endpoint processor by phase,
 * turns refusals into local replies, and writes exactly one audit record when the exchange ends, however
 * it ends (answered, refused, upstream error, client gone).
 */
export class Exchange {
  private readonly ctx: RequestContext;
  /** The context once the caller is authenticated, with the endpoint that handles the request. */
  private routed: { readonly ctx: AuthenticatedContext; readonly endpoint: EndpointProcessor } | undefined;
  /** Access-log metadata already sent to Envoy (which merges what each reply adds). */
  private readonly accessLogSent: MetadataValues = {};
  private audited = false;

  constructor(private readonly deps: ProcessorDeps) {
    this.ctx = new RequestContext(deps.policy());
  }

  /**
   * Handles one ProcessingRequest and returns the ProcessingResponse to send (as a protobufjs object).
   * Calls for one exchange must not overlap: the server awaits each before handing over the next.
   */
  async handle(message: ProcessingRequestMessage): Promise<object> {
    const phase = phaseOf(message);
    const started = monotonicMs();
    try {
      if (phase === undefined) throw new Error("ProcessingRequest without a phase");
      const reply = await this.dispatch(phase, message);
      if (isLocalReply(reply)) return encodeLocalReply(reply);
      return encodePhaseReply(phase, reply);
    } catch (err) {
      if (!(err instanceof GatewayError)) {
        this.ctx.reason = "internal_error";
        throw err;
      }
      this.ctx.refuse(err);
      return encodeLocalReply({
        status: err.status,
        body: err.toBody(),
        contentType: "application/json",
        details: `llm_gateway_${err.code}`,
        headers: err.headers,
        metadata: this.accessLogUpdate(),
      });
    } finally {
      const elapsed = monotonicMs() - started;
      this.ctx.gatewayMs += elapsed;
      if (phase) this.deps.metrics.phaseDuration.observe({ phase: snake(phase) }, elapsed / 1000);
      if (this.ctx.complete) this.finish();
    }
  }

  /** True once the exchange is complete and audited: Envoy will send nothing more on this stream. */
  get finished(): boolean {
    return this.audited;
  }

  /** The ext_proc stream ended. If the exchange was not complete, it was cut short: audit it as such. */
  close(error?: Error): void {
    if (this.audited) return;
    if (error && this.ctx.reason === "ok") this.ctx.reason = "internal_error";
    else if (this.ctx.reason === "ok" || this.ctx.reason === "upstream_error") {
      this.ctx.reason = this.ctx.status === undefined ? "closed_before_response" : "closed_during_response";
    }
    this.finish();
  }

  /**
   * Runs the phase's method of the endpoint. Envoy's access log gets what is new about the request on the
   * replies that mark a step: the forwarded request, its response headers, the end of the response (and
   * every refusal, in {@link handle}).
   */
  private async dispatch(phase: Phase, message: ProcessingRequestMessage): Promise<PhaseResult> {
    if (phase === "requestHeaders") {
      const msg = message.requestHeaders as HttpHeadersMessage;
      const routed = this.route(readHeaders(msg.headers), message);
      return routed.endpoint.requestHeaders(routed.ctx, routed.headers, msg.endOfStream === true);
    }
    if (!this.routed) return {};
    const { ctx, endpoint } = this.routed;
    switch (phase) {
      case "requestBody": {
        const msg = message.requestBody as HttpBodyMessage;
        const reply = (await endpoint.requestBody?.(ctx, bodyOf(msg), msg.endOfStream === true)) ?? {};
        return ctx.forwardedAt === undefined ? reply : this.withAccessLog(reply);
      }
      case "responseHeaders": {
        const msg = message.responseHeaders as HttpHeadersMessage;
        const headers = readHeaders(msg.headers);
        if (ctx.forwardedAt === undefined) {
          // Nothing was forwarded, so Envoy answered itself (its 413 for a body over the buffer limit): a
          // refusal by the gateway, never an upstream answer.
          const status = Number(headers.get(":status") ?? 0);
          ctx.deny(status, ENVOY_REPLY_REASONS[status] ?? "envoy_local_reply");
          return { responseBodyMode: BodySendMode.NONE };
        }
        if (!endpoint.responseHeaders) {
          ctx.status = Number(headers.get(":status") ?? 0);
          ctx.complete = true;
          return {};
        }
        return this.withAccessLog(await endpoint.responseHeaders(ctx, headers, msg.endOfStream === true));
      }
      case "responseBody": {
        const msg = message.responseBody as HttpBodyMessage;
        const reply = (await endpoint.responseBody?.(ctx, bodyOf(msg), msg.endOfStream === true)) ?? {};
        return ctx.complete ? this.withAccessLog(reply) : reply;
      }
      default:
        return {};
    }
  }

  /** Request headers: who is calling, in which environment, and which endpoint handles the request. */
  private route(headers: HeaderMapValues, message: ProcessingRequestMessage) {
    const ctx = this.ctx;
    ctx.requestId = headers.get("x-request-id") ?? "";
    ctx.method = headers.get(":method") ?? "";
    ctx.path = (headers.get(":path") ?? "").split("?", 1)[0]!;
    const jwt = message.metadataContext?.filterMetadata?.[JWT_METADATA_NAMESPACE];
    const claims = jwt ? (structToJson(jwt).jwt_payload as Record<string, unknown> | undefined) : undefined;
    const identity = authenticate(ctx.policy, headers, this.deps.now(), claims, this.deps.revocations);
    const host = headers.get(":authority") ?? "";
    const environment = ctx.policy.environmentOf(host);
    const authenticated = ctx.authenticated({ ...identity, environment: environment ?? undefined });
    if (environment === null) {
      throw new GatewayError(
        "unknown_host",
        `The host '${host.slice(0, 200)}' belongs to no environment of this gateway; use the host your environment was given.`,
      );
    }
    const endpoint = selectEndpoint(ctx.method, ctx.path, this.deps);
    ctx.api = endpoint.api;
    this.routed = { ctx: authenticated, endpoint };
    return { ...this.routed, headers };
  }

  /** `reply` with the access-log metadata that changed since the last reply that carried some. */
  private withAccessLog<R extends PhaseResult>(reply: R): R {
    const metadata = this.accessLogUpdate();
    return metadata ? { ...reply, metadata } : reply;
  }

  private accessLogUpdate(): MetadataValues | undefined {
    let update: MetadataValues | undefined;
    for (const [key, value] of Object.entries(this.ctx.accessLog())) {
      if (value == null || this.accessLogSent[key] === value) continue;
      this.accessLogSent[key] = value;
      (update ??= {})[key] = value;
    }
    return update;
  }

  private finish(): void {
    if (this.audited) return;
    this.audited = true;
    const { ctx } = this;
    const record = ctx.toAuditRecord();
    // With a reservation, the record waits for the settlement: it carries the usage that was charged.
    this.deps.audit.write(ctx.admission ? this.settled(ctx.admission, record) : record);
    const requested = record.requested_model;
    countExchange(this.deps.metrics, {
      record,
      modelLabel: requested !== null && this.isKnownModel(requested) ? requested : "",
      guardrailTriggers: ctx.guardrailTriggers(),
    });
  }

  /** `record` once the reservation is settled, with the usage charged. Never rejects: the record is written whatever happens. */
  private async settled(admission: Admission, record: AuditRecord): Promise<AuditRecord> {
    const { ctx } = this;
    try {
      const charged = await this.deps.quota.settleExchange(
        admission,
        { usage: ctx.usage, status: ctx.status, streamedTexts: ctx.streamedTexts },
        (texts, encoding) => this.deps.workers.countTokens(texts, encoding),
      );
      return charged ? { ...record, usage: charged.usage, usage_source: charged.source } : record;
    } catch (err) {
      this.deps.logger.error(
        { err, requestId: ctx.requestId },
        "quota settlement failed; auditing without it",
      );
      return record;
    }
  }

  /** Metric labels only carry names from policy, so clients cannot blow up label cardinality. */
  private isKnownModel(name: string): boolean {
    return this.ctx.policy.models.has(name) || this.ctx.policy.aliases.has(name);
  }
}

function bodyOf(message: HttpBodyMessage): Buffer {
  const body = message.body;
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // protobufjs decodes an absent bytes field to its default, an empty array.
  return Buffer.alloc(0);
}

const snake = (phase: Phase): string => phase.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
