import { authenticate, JWT_METADATA_NAMESPACE } from "../auth/index.js";
import { readHeaders } from "../envoy/headers.js";
import type { AuditRecord, UsageSource } from "../audit/index.js";
import {
  BodySendMode,
  encodeLocalReply,
  encodePhaseReply,
  type HttpBodyMessage,
  type HttpHeadersMessage,
  type LocalReply,
  type Phase,
  type PhaseReply,
  type ProcessingRequestMessage,
  structToJson,
} from "../envoy/messages.js";
import { encodeResponse } from "../envoy/protocol.js";
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
 * The largest request body accepted, and the largest answer read whole. Envoy streams bodies here as they
 * arrive and buffers neither for extproc, so this is where the limits are kept.
 */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * A request body from this size on may take longer than Envoy's 2 s message_timeout to parse, scan and
 * count (1-4 MB/s), and one that arrives in several chunks may take that long to upload: for them extproc
 * first asks Envoy for more time (up to max_message_timeout).
 */
export const LARGE_BODY_BYTES = 256 * 1024;

/** "Go on unchanged" for each phase, encoded once: most answers are this one (every plain stream chunk). */
const CONTINUE = Object.fromEntries(
  PHASES.map((phase) => [phase, encodeResponse(encodePhaseReply(phase, {}))]),
) as Record<Phase, Buffer>;
/** The answer to a chunk of a body held back whole: the last chunk's answer carries the whole body. */
const CLEARED_REQUEST_CHUNK = encodeResponse(encodePhaseReply("requestBody", { body: Buffer.alloc(0) }));
const CLEARED_RESPONSE_CHUNK = encodeResponse(encodePhaseReply("responseBody", { body: Buffer.alloc(0) }));

/** The encoded answer for `reply` in `phase`, the shared constant when it changes nothing. */
function encodeAnswer(phase: Phase, reply: PhaseReply): object {
  for (const _ in reply) return encodePhaseReply(phase, reply);
  return CONTINUE[phase];
}

/** Chunks of a body read whole, within {@link MAX_BODY_BYTES}. */
class HeldBody {
  private readonly chunks: Buffer[] = [];
  bytes = 0;

  /** Adds a chunk; false once the body is over the limit. */
  push(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    return this.bytes <= MAX_BODY_BYTES;
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  whole(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
  }
}

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
   * on the body, which Envoy streams here without waiting for that answer (one round trip fewer).
   */
  private heldHeaders: PhaseReply | undefined;
  private readonly requestBody = new HeldBody();
  /** The answer, when the endpoint reads it whole (to rewrite it); otherwise it streams through. */
  private answer: HeldBody | undefined;
  private askedForTime = false;

  constructor(private readonly deps: ProcessorDeps) {
    this.ctx = new RequestContext(deps.policy());
  }

  /**
   * Handles one ProcessingRequest and returns the ProcessingResponses to send, in order (protobufjs
   * objects): none while request body chunks are still arriving, then the held headers answer and one
   * answer per body chunk once the last one is in. Calls for one exchange must not overlap: the server awaits each before handing
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
   * Whether the request-headers answer may outlast Envoy's message_timeout because of `message`: a body
   * still uploading, or a large one parsed, scanned and counted next. True at most once per exchange (Envoy
   * takes one extension per message).
   */
  needsMoreTime(message: ProcessingRequestMessage): boolean {
    const chunk = message.requestBody;
    if (this.askedForTime || chunk == null || this.heldHeaders === undefined) return false;
    const large = this.requestBody.bytes + (chunk.body?.length ?? 0) >= LARGE_BODY_BYTES;
    this.askedForTime = chunk.endOfStream !== true || large;
    return this.askedForTime;
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
        if (msg.endOfStream === true) return [encodeAnswer(phase, reply)];
        this.heldHeaders = reply;
        return [];
      }
      case "requestBody": {
        const msg = message.requestBody as HttpBodyMessage;
        if (this.heldHeaders === undefined) return [CONTINUE.requestBody];
        if (!this.requestBody.push(bodyOf(msg))) {
          throw new GatewayError("request_too_large", "Request body exceeds the gateway limit of 8 MiB.");
        }
        return msg.endOfStream === true ? this.requestComplete() : [];
      }
      case "responseHeaders": {
        const msg = message.responseHeaders as HttpHeadersMessage;
        const headers = readHeaders(msg.headers);
        if (ctx.forwardedAt === undefined) {
          // Nothing was forwarded, so Envoy answered itself: a refusal by the gateway, never an upstream answer.
          ctx.deny(Number(headers.get(":status") ?? 0), "envoy_local_reply");
          return [CONTINUE[phase]];
        }
        if (!this.endpoint?.responseHeaders) {
          ctx.status = Number(headers.get(":status") ?? 0);
          ctx.complete = true;
          return [CONTINUE[phase]];
        }
        let reply = await this.endpoint.responseHeaders(ctx, headers, msg.endOfStream === true, this.deps);
        if (!ctx.complete && reply.responseBodyMode === BodySendMode.BUFFERED) {
          // Read whole and sent on as one piece, whose length is not known yet.
          this.answer = new HeldBody();
          reply = { ...reply, removeHeaders: [...(reply.removeHeaders ?? []), "content-length"] };
        }
        return [encodeAnswer(phase, reply)];
      }
      case "responseBody": {
        const msg = message.responseBody as HttpBodyMessage;
        const chunk = bodyOf(msg);
        const endOfStream = msg.endOfStream === true;
        if (!this.answer) {
          const reply = (await this.endpoint?.responseBody?.(ctx, chunk, endOfStream)) ?? {};
          return [encodeAnswer(phase, reply)];
        }
        if (!this.answer.push(chunk)) {
          // Its beginning was held back and the client has its headers: the answer can only be cut.
          ctx.reason = "answer_too_large";
          throw new Error(`an answer to rewrite exceeds ${MAX_BODY_BYTES} bytes`);
        }
        return endOfStream ? this.answerComplete() : [CLEARED_RESPONSE_CHUNK];
      }
      default:
        return [CONTINUE[phase]];
    }
  }

  /** Authenticates the request and picks its endpoint, which answers the headers. */
  private requestHeaders(
    msg: HttpHeadersMessage,
    message: ProcessingRequestMessage,
  ): PhaseReply | LocalReply {
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
   * endpoint's header changes), then one answer per chunk, the last one carrying the body to forward.
   */
  private async requestComplete(): Promise<object[]> {
    const body = this.requestBody.whole();
    const reply = (await this.endpoint?.requestBody?.(this.ctx, body, this.deps)) ?? {};
    const held = this.heldHeaders ?? {};
    this.heldHeaders = undefined;
    const headers: PhaseReply = {
      setHeaders: [...(held.setHeaders ?? []), ...(reply.setHeaders ?? [])],
      removeHeaders: [...(held.removeHeaders ?? []), ...(reply.removeHeaders ?? [])],
      clearRouteCache: held.clearRouteCache === true || reply.clearRouteCache === true,
      ...((reply.metadata ?? held.metadata) && { metadata: { ...held.metadata, ...reply.metadata } }),
    };
    return [
      encodePhaseReply("requestHeaders", headers),
      ...wholeBodyReplies("requestBody", this.requestBody.chunkCount, reply.body),
    ];
  }

  /** The whole answer is in: the endpoint reads (and may rewrite) it. */
  private async answerComplete(): Promise<object[]> {
    const answer = this.answer!;
    this.answer = undefined;
    const whole = answer.whole();
    const reply = (await this.endpoint?.responseBody?.(this.ctx, whole, true)) ?? {};
    // Its headers went out already and its earlier chunks were cleared: the last chunk's answer carries the
    // whole body (unless that chunk is the whole, unchanged body), and the access-log metadata.
    const body = reply.body ?? (answer.chunkCount > 1 ? whole : undefined);
    return [
      encodeAnswer("responseBody", {
        ...(body && { body }),
        ...(reply.metadata && { metadata: reply.metadata }),
      }),
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

/**
 * Answers for the `count` chunks of a body read whole: when it is replaced, every chunk but the last is
 * cleared and the last carries the replacement; otherwise each goes on unchanged.
 */
function wholeBodyReplies(
  phase: "requestBody" | "responseBody",
  count: number,
  replacement: Buffer | undefined,
): object[] {
  const cleared = phase === "requestBody" ? CLEARED_REQUEST_CHUNK : CLEARED_RESPONSE_CHUNK;
  const unchanged = CONTINUE[phase];
  const replies: object[] = [];
  for (let i = 1; i < count; i++) replies.push(replacement ? cleared : unchanged);
  if (count > 0) replies.push(replacement ? encodePhaseReply(phase, { body: replacement }) : unchanged);
  return replies;
}

function bodyOf(message: HttpBodyMessage): Buffer {
  const body = message.body;
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // protobufjs decodes an absent bytes field to its default, an empty array.
  return Buffer.alloc(0);
}

const snake = (phase: Phase): string => phase.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
