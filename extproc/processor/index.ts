import { authenticate, JWT_METADATA_NAMESPACE } from "../auth/index.js";
import { readHeaders } from "../envoy/headers.js";
import type { AuditRecord, UsageSource } from "../audit/index.js";
import {
  BodySendMode,
  encodeLocalReply,
  encodePhaseReply,
  encodeStreamedBody,
  type HttpBodyMessage,
  type HttpHeadersMessage,
  type LocalReply,
  type Phase,
  type PhaseReply,
  type ProcessingRequestMessage,
  structToJson,
} from "../envoy/messages.js";
import { GatewayError } from "../errors/index.js";
import { generatedText } from "../openai/usage.js";
import type { Admission } from "../quota/index.js";
import { monotonicMs, RequestContext, type ProcessorDeps } from "./context.js";
import type { EndpointProcessor } from "./endpoint.js";
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
function selectEndpoint(method: string, path: string): EndpointProcessor {
  const inference = inferenceEndpoints[path];
  if (inference) {
    if (method !== "POST") throw new GatewayError("method_not_allowed", `${path} accepts POST only.`);
    return inference();
  }
  if (isModelsPath(path)) {
    if (method !== "GET") throw new GatewayError("method_not_allowed", `${path} accepts GET only.`);
    return new ModelsProcessor();
  }
  throw new GatewayError("unknown_url", `Unknown request URL: ${method} ${path}.`);
}

/**
 * The largest request body accepted. Envoy streams the body here as it arrives (FULL_DUPLEX_STREAMED) and
 * buffers none of it, so this is where the limit is kept.
 */
export const MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Request bodies from this size on may take longer than Envoy's 2 s message_timeout to parse, scan and
 * count (1-4 MB/s): for them extproc first asks Envoy for more time (up to max_message_timeout).
 */
export const LARGE_BODY_BYTES = 256 * 1024;

const isLocalReply = (reply: PhaseReply | LocalReply): reply is LocalReply => "status" in reply;

/**
 * One HTTP request's ext_proc conversation: dispatches each message to the endpoint processor by phase,
 * turns refusals into local replies, and writes exactly one audit record when the exchange ends, however
 * it ends (answered, refused, upstream error, client gone).
 */
export class Exchange {
  private readonly ctx: RequestContext;
  private endpoint: EndpointProcessor | undefined;
  private audited = false;
  /**
   * The request-headers answer, held until the whole body is in: routing and the forwarded headers depend
   * on the body, and in FULL_DUPLEX_STREAMED mode Envoy sends the body without waiting for that answer.
   */
  private heldHeaders: PhaseReply | undefined;
  private readonly requestChunks: Buffer[] = [];
  private requestBytes = 0;

  constructor(private readonly deps: ProcessorDeps) {
    this.ctx = new RequestContext(deps.policy());
  }

  /**
   * Handles one ProcessingRequest and returns the ProcessingResponses to send, in order (protobufjs
   * objects): none while request body chunks are still arriving, the held headers answer and the body
   * once the last one is in. Calls for one exchange must not overlap: the server awaits each before handing
   * over the next.
   */
  async handle(message: ProcessingRequestMessage): Promise<object[]> {
    const phase = phaseOf(message);
    const started = monotonicMs();
    try {
      if (phase === undefined) throw new Error("ProcessingRequest without a phase");
      return await this.dispatch(phase, message);
    } catch (err) {
      if (!(err instanceof GatewayError)) {
        this.ctx.reason = "internal_error";
        throw err;
      }
      this.ctx.deny(err.status, err.code);
      return [
        encodeLocalReply({
        status: err.status,
        body: err.toBody(),
        contentType: "application/json",
        details: `llm_gateway_${err.code}`,
        headers: err.headers,
        metadata: {
          key_id: this.ctx.identity?.keyId,
          team: this.ctx.identity?.team,
          requested_model: this.ctx.requestedModel,
          },
        }),
      ];
    } finally {
      const elapsed = monotonicMs() - started;
      this.ctx.gatewayMs += elapsed;
      if (phase) this.deps.metrics.phaseDuration.observe({ phase: snake(phase) }, elapsed / 1000);
      if (this.ctx.complete) this.finish();
    }
  }

  /**
   * Whether handling `message` may outlast Envoy's message_timeout: it completes a large request body,
   * which is parsed, scanned and counted next.
   */
  needsMoreTime(message: ProcessingRequestMessage): boolean {
    const completes = message.requestBody?.endOfStream === true || message.requestTrailers != null;
    return completes && this.requestBytes + (message.requestBody?.body?.length ?? 0) >= LARGE_BODY_BYTES;
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

  private async dispatch(phase: Phase, message: ProcessingRequestMessage): Promise<object[]> {
    const ctx = this.ctx;
    switch (phase) {
      case "requestHeaders": {
        const msg = message.requestHeaders as HttpHeadersMessage;
        const reply = this.requestHeaders(msg, message);
        if (isLocalReply(reply)) return [encodeLocalReply(reply)];
        if (msg.endOfStream === true) return [encodePhaseReply(phase, reply)];
        this.heldHeaders = reply;
        return [];
      }
      case "requestBody": {
        const msg = message.requestBody as HttpBodyMessage;
        const chunk = bodyOf(msg);
        this.requestBytes += chunk.length;
        if (this.requestBytes > MAX_REQUEST_BODY_BYTES) {
          throw new GatewayError("request_too_large", "Request body exceeds the gateway limit of 8 MiB.");
        }
        this.requestChunks.push(chunk);
        return msg.endOfStream === true ? this.requestComplete(true) : [];
      }
      case "requestTrailers":
        // Trailers end a request body that had no end-of-stream chunk.
        return [...(await this.requestComplete(false)), encodePhaseReply(phase, {})];
      case "responseHeaders": {
        const msg = message.responseHeaders as HttpHeadersMessage;
        const headers = readHeaders(msg.headers);
        if (ctx.forwardedAt === undefined) {
          // Nothing was forwarded, so Envoy answered itself: a refusal by the gateway, never an upstream answer.
          ctx.deny(Number(headers.get(":status") ?? 0), "envoy_local_reply");
          return [encodePhaseReply(phase, { responseBodyMode: BodySendMode.NONE })];
        }
        if (!this.endpoint?.responseHeaders) {
          ctx.status = Number(headers.get(":status") ?? 0);
          ctx.complete = true;
          return [encodePhaseReply(phase, {})];
        }
        const reply = await this.endpoint.responseHeaders(ctx, headers, msg.endOfStream === true, this.deps);
        return [encodePhaseReply(phase, reply)];
      }
      case "responseBody": {
        const msg = message.responseBody as HttpBodyMessage;
        const reply = (await this.endpoint?.responseBody?.(ctx, bodyOf(msg), msg.endOfStream === true)) ?? {};
        return [encodePhaseReply(phase, reply)];
      }
      default:
        return [encodePhaseReply(phase, {})];
    }
  }

  /** Authenticates the request and picks its endpoint, which answers the headers. */
  private requestHeaders(msg: HttpHeadersMessage, message: ProcessingRequestMessage): PhaseReply | LocalReply {
    const ctx = this.ctx;
    const headers = readHeaders(msg.headers);
    ctx.requestId = headers.get("x-request-id") ?? "";
    ctx.method = headers.get(":method") ?? "";
    ctx.path = (headers.get(":path") ?? "").split("?", 1)[0]!;
    const jwt = message.metadataContext?.filterMetadata?.[JWT_METADATA_NAMESPACE];
    const claims = jwt ? (structToJson(jwt).jwt_payload as Record<string, unknown> | undefined) : undefined;
    const identity = authenticate(ctx.policy, headers, this.deps.now(), claims, this.deps.revocations);
    const host = headers.get(":authority") ?? "";
    const environment = ctx.policy.environmentOf(host);
    ctx.identity = { ...identity, environment: environment ?? undefined };
    if (environment === null) {
      throw new GatewayError(
        "unknown_host",
        `The host '${host.slice(0, 200)}' belongs to no environment of this gateway; use the host your environment was given.`,
      );
    }
    this.endpoint = selectEndpoint(ctx.method, ctx.path);
    ctx.api = this.endpoint.api;
    return this.endpoint.requestHeaders(ctx, headers, msg.endOfStream === true);
  }

  /**
   * The whole request body is in: the endpoint reads it, and Envoy gets the held headers answer (with the
   * endpoint's header changes) followed by the body to forward.
   */
  private async requestComplete(endOfStream: boolean): Promise<object[]> {
    const chunks = this.requestChunks;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.requestBytes);
    chunks.length = 0;
    const reply = (await this.endpoint?.requestBody?.(this.ctx, body, this.deps)) ?? {};
    const held = this.heldHeaders ?? {};
    const headers: PhaseReply = {
      setHeaders: [...(held.setHeaders ?? []), ...(reply.setHeaders ?? [])],
      removeHeaders: [...(held.removeHeaders ?? []), ...(reply.removeHeaders ?? [])],
      clearRouteCache: held.clearRouteCache === true || reply.clearRouteCache === true,
      ...((reply.metadata ?? held.metadata) && { metadata: { ...held.metadata, ...reply.metadata } }),
    };
    return [
      encodePhaseReply("requestHeaders", headers),
      encodeStreamedBody("requestBody", reply.body ?? body, endOfStream),
    ];
  }

  private finish(): void {
    if (this.audited) return;
    this.audited = true;
    const record = this.ctx.toAuditRecord();
    // With a reservation, the record waits for the settlement: it carries the usage that was charged.
    this.deps.audit.write(this.ctx.admission ? this.settle(this.ctx.admission, record) : record);
    const { metrics } = this.deps;
    const modelLabel =
      record.requested_model !== null && this.isKnownModel(record.requested_model)
        ? record.requested_model
        : "";
    metrics.requests.inc({
      api: record.api ?? "",
      model: modelLabel,
      team: record.team ?? "",
      status: String(record.status ?? 0),
      decision: record.decision,
    });
    for (const direction of ["request", "response"] as const) {
      for (const [entity, { count, action }] of Object.entries(record.pii?.[direction] ?? {})) {
        metrics.piiDetections.inc({ entity, direction, action }, count);
      }
    }
    for (const [name, action] of Object.entries(record.guardrails?.denied ?? {})) {
      metrics.guardrailTriggers.inc({ guardrail: `content_blocked:${name}`, action });
    }
    const injection =
      record.guardrails?.injection ??
      (record.reason === "prompt_injection_detected" ? { action: "block" } : undefined);
    if (injection) metrics.guardrailTriggers.inc({ guardrail: "prompt_injection", action: injection.action });
    if (record.reason === "input_too_long" || record.reason === "content_blocked") {
      metrics.guardrailTriggers.inc({ guardrail: record.reason, action: "block" });
    }
    if (record.usage && record.served_model) {
      const labels = { model: record.served_model, team: record.team ?? "" };
      metrics.tokens.inc({ ...labels, type: "prompt" }, record.usage.prompt_tokens);
      metrics.tokens.inc({ ...labels, type: "completion" }, record.usage.completion_tokens);
    }
  }

  /**
   * Settles the quota reservation with what was actually used, then returns `record` with that usage. Used
   * is the model server's usage; without it, the prompt as estimated and the streamed text counted with the
   * model's tokenizer (`counted`), or the reservation if counting failed (`reserved`). A request that failed
   * upstream is charged nothing (usage stays null); one cut off before any response is charged its prompt.
   * Never rejects: the record is written whatever happens.
   */
  private async settle(admission: Admission, record: AuditRecord): Promise<AuditRecord> {
    const { ctx } = this;
    if (ctx.usage) {
      await this.deps.quota.settle(admission, ctx.usage.prompt_tokens, ctx.usage.completion_tokens);
      return record;
    }
    if (ctx.status !== undefined && (ctx.status < 200 || ctx.status >= 300)) {
      await this.deps.quota.settle(admission, 0, 0);
      return record;
    }
    const input = admission.reservedInput;
    let output = 0;
    let source: UsageSource = "counted";
    try {
      if (ctx.unmeteredEvents.length > 0) {
        const texts = ctx.unmeteredEvents.map((data) => {
          try {
            return generatedText(JSON.parse(data));
          } catch {
            return "";
          }
        });
        output = await this.deps.workers.countTokens(texts, admission.model.tokenizer);
      }
    } catch (err) {
      this.deps.logger.warn(
        { err, requestId: ctx.requestId },
        "could not count streamed tokens; charging the reservation",
      );
      output = admission.reservedOutput;
      source = "reserved";
    }
    await this.deps.quota.settle(admission, input, output);
    const usage = { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
    return { ...record, usage, usage_source: source };
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
