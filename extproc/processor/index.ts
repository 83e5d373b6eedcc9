import { authenticate, JWT_METADATA_NAMESPACE } from "../auth/index.js";
import { readHeaders, type HeaderMapValues } from "../envoy/headers.js";
import type { AuditRecord } from "../audit/index.js";
import {
  BodySendMode,
  encodeLocalReply,
  encodePhaseReply,
  type HttpBodyMessage,
  type HttpHeadersMessage,
  type LocalReply,
  type MetadataValues,
  type Phase,
  type PhaseReply,
  type ProcessingRequestMessage,
  structToJson,
} from "../envoy/messages.js";
import { encodeResponse } from "../envoy/protocol.js";
import { GatewayError } from "../errors/index.js";
import { countExchange } from "../metrics/exchange.js";
import { auditCost, type Admission } from "../quota/index.js";
import { summarize, traced } from "../tracing/index.js";
import { monotonicMs, RequestContext, type AuthenticatedContext, type ProcessorDeps } from "./context.js";
import type { EndpointProcessor, PhaseResult } from "./endpoint.js";
import { errorStyleOf, isStoredResponsePath } from "./apis.js";
import { inferenceEndpoint } from "./inference.js";
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

/** The `phase` label of each phase (snake case), built once: it is observed on every message. */
const PHASE_LABELS = Object.fromEntries(
  PHASES.map((phase) => [phase, { phase: phase.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }]),
) as Record<Phase, { readonly phase: string }>;

/** Phase of a ProcessingRequest (the field of its `request` oneof that is set). */
export function phaseOf(message: ProcessingRequestMessage): Phase | undefined {
  return PHASES.find((phase) => message[phase] != null);
}

/** Picks the endpoint processor for a method and path; throws 404/405 for anything else. */
function selectEndpoint(method: string, path: string, deps: ProcessorDeps): EndpointProcessor {
  const inference = inferenceEndpoint(path, deps);
  if (inference) {
    if (method !== "POST") throw new GatewayError("method_not_allowed", `${path} accepts POST only.`);
    return inference;
  }
  if (isStoredResponsePath(path)) {
    throw new GatewayError(
      "unknown_url",
      `This gateway keeps no responses, so ${method} ${path} finds none: send the whole conversation as 'input' with 'store': false.`,
    );
  }
  if (isModelsPath(path)) {
    if (method !== "GET") throw new GatewayError("method_not_allowed", `${path} accepts GET only.`);
    return new ModelsProcessor();
  }
  throw new GatewayError("unknown_url", `Unknown request URL: ${method} ${path}.`);
}

const isLocalReply = (reply: PhaseResult): reply is LocalReply => "status" in reply;

/**
 * The largest request body accepted, and the largest answer read whole. Envoy streams bodies here as they
 * arrive and buffers neither for extproc, so this is where the limits are kept.
 */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * A request body from this size on may take longer than Envoy's 2 s message_timeout to parse, scan and
 * count (1-4 MB/s): for them extproc first asks Envoy for more time (up to max_message_timeout).
 */
export const LARGE_BODY_BYTES = 256 * 1024;

/** "Go on unchanged" for each phase, encoded once: most answers are this one (every plain stream chunk). */
const CONTINUE = Object.fromEntries(
  PHASES.map((phase) => [phase, encodeResponse(encodePhaseReply(phase, {}))]),
) as Record<Phase, Buffer>;
/** The answer to a chunk of a body held back whole: the last chunk's answer carries the whole body. */
const CLEARED_REQUEST_CHUNK = encodeResponse(encodePhaseReply("requestBody", { body: Buffer.alloc(0) }));
const CLEARED_RESPONSE_CHUNK = encodeResponse(encodePhaseReply("responseBody", { body: Buffer.alloc(0) }));

/** The encoded answer for `result` in `phase`: a local reply, or the shared constant when nothing changes. */
function encodeResult(phase: Phase, result: PhaseResult): object {
  if (isLocalReply(result)) return encodeLocalReply(result);
  for (const _ in result) return encodePhaseReply(phase, result);
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
  /**
   * The request-headers answer, held until the whole body is in: routing and the forwarded headers depend
   * on the body, which Envoy streams here without waiting for that answer (one round trip fewer).
   */
  private heldHeaders: PhaseReply | undefined;
  private readonly requestBody = new HeldBody();
  /** The answer, when the endpoint reads it whole (to rewrite it); otherwise it streams through. */
  private answer: HeldBody | undefined;

  /**
   * `traceparent`: the span context Envoy sent in the ext_proc stream's metadata (when it traces).
   * `askForTime`: asks Envoy to wait longer for the answer to the message in hand (a queued request).
   */
  constructor(
    private readonly deps: ProcessorDeps,
    traceparent?: string,
    askForTime: () => void = () => {},
  ) {
    this.ctx = new RequestContext(deps.policy(), askForTime);
    this.ctx.trace = deps.tracer?.startRequest(traceparent);
  }

  /**
   * Handles one ProcessingRequest and returns the ProcessingResponses to send, in order (protobufjs objects,
   * or Buffers already encoded): none while request body chunks are still arriving, then the held headers
   * answer and one answer per body chunk once the last one is in. Calls for one exchange must not overlap:
   * the server awaits each before handing over the next.
   */
  async handle(message: ProcessingRequestMessage): Promise<object[]> {
    const phase = phaseOf(message);
    const started = monotonicMs();
    const { trace } = this.ctx;
    if (phase && trace) trace.enterPhase(PHASE_LABELS[phase].phase);
    try {
      if (phase === undefined) throw new Error("ProcessingRequest without a phase");
      return await this.dispatch(phase, message);
    } catch (err) {
      // The stream ended while this message was in hand (a wait in a pool's queue): nobody to answer; the
      // exchange is audited as closed when the stream's end is handled.
      if (this.ctx.closed.signal.aborted) return [];
      if (!(err instanceof GatewayError)) {
        this.ctx.reason = "internal_error";
        throw err;
      }
      this.ctx.refuse(err);
      return [
        encodeLocalReply({
          status: err.status,
          body: err.toBody(errorStyleOf(this.ctx.path)),
          contentType: "application/json",
          details: `llm_gateway_${err.code}`,
          headers: err.headers,
          metadata: this.accessLogUpdate(),
        }),
      ];
    } finally {
      const elapsed = monotonicMs() - started;
      this.ctx.gatewayMs += elapsed;
      if (phase) this.deps.metrics.phaseDuration.observe(PHASE_LABELS[phase], elapsed / 1000);
      trace?.leavePhase();
      if (this.ctx.complete) this.finish();
    }
  }

  /**
   * Whether handling `message` may outlast Envoy's message_timeout: it completes a large request body,
   * which is parsed, scanned and counted next. Asked for on that last chunk only: Envoy restarts its one
   * timer with every chunk it sends, which would undo an extension asked for earlier.
   */
  needsMoreTime(message: ProcessingRequestMessage): boolean {
    const chunk = message.requestBody;
    if (chunk?.endOfStream !== true || this.heldHeaders === undefined) return false;
    return this.requestBody.bytes + (chunk.body?.length ?? 0) >= LARGE_BODY_BYTES;
  }

  /** True once the exchange is complete and audited: Envoy will send nothing more on this stream. */
  get finished(): boolean {
    return this.audited;
  }

  /**
   * Envoy ended its side of the stream (the HTTP request is gone) while a message may still be in hand:
   * stops what only waits for the client's turn (a pool's queue) instead of holding a place until then.
   */
  abandon(): void {
    if (!this.audited) this.ctx.closed.abort();
  }

  /** The ext_proc stream ended. If the exchange was not complete, it was cut short: audit it as such. */
  close(error?: Error): void {
    if (this.audited) return;
    // A request waiting in a pool's queue stops waiting.
    this.ctx.closed.abort();
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
  private async dispatch(phase: Phase, message: ProcessingRequestMessage): Promise<object[]> {
    if (phase === "requestHeaders") {
      const msg = message.requestHeaders as HttpHeadersMessage;
      const routed = this.route(readHeaders(msg.headers), message);
      const reply = await routed.endpoint.requestHeaders(
        routed.ctx,
        routed.headers,
        msg.endOfStream === true,
      );
      if (isLocalReply(reply) || msg.endOfStream === true) return [encodeResult(phase, reply)];
      this.heldHeaders = reply;
      return [];
    }
    if (!this.routed) return [CONTINUE[phase]];
    const { ctx, endpoint } = this.routed;
    switch (phase) {
      case "requestBody": {
        const msg = message.requestBody as HttpBodyMessage;
        if (this.heldHeaders === undefined) return [CONTINUE.requestBody];
        if (!this.requestBody.push(bodyOf(msg))) {
          throw new GatewayError("request_too_large", "Request body exceeds the gateway limit of 8 MiB.");
        }
        return msg.endOfStream === true ? this.requestComplete(ctx, endpoint) : [];
      }
      case "responseHeaders": {
        const msg = message.responseHeaders as HttpHeadersMessage;
        const headers = readHeaders(msg.headers);
        if (ctx.forwardedAt === undefined) {
          // Nothing was forwarded, so Envoy answered itself: a refusal by the gateway, never an upstream answer.
          ctx.deny(Number(headers.get(":status") ?? 0), "envoy_local_reply");
          return [CONTINUE.responseHeaders];
        }
        if (!endpoint.responseHeaders) {
          ctx.status = Number(headers.get(":status") ?? 0);
          ctx.complete = true;
          return [CONTINUE.responseHeaders];
        }
        let reply = this.withAccessLog(
          await endpoint.responseHeaders(ctx, headers, msg.endOfStream === true),
        );
        if (!isLocalReply(reply) && !ctx.complete && reply.responseBodyMode === BodySendMode.BUFFERED) {
          // Read whole and sent on as one piece, whose length is not known yet.
          this.answer = new HeldBody();
          reply = { ...reply, removeHeaders: [...(reply.removeHeaders ?? []), "content-length"] };
        }
        return [encodeResult(phase, reply)];
      }
      case "responseBody": {
        const msg = message.responseBody as HttpBodyMessage;
        const chunk = bodyOf(msg);
        const endOfStream = msg.endOfStream === true;
        if (!this.answer) {
          const reply = (await endpoint.responseBody?.(ctx, chunk, endOfStream)) ?? {};
          return [encodeResult(phase, ctx.complete ? this.withAccessLog(reply) : reply)];
        }
        if (!this.answer.push(chunk)) {
          // Its beginning was held back and the client has its headers: the answer can only be cut.
          ctx.reason = "answer_too_large";
          throw new Error(`an answer to rewrite exceeds ${MAX_BODY_BYTES} bytes`);
        }
        return endOfStream ? this.answerComplete(ctx, endpoint) : [CLEARED_RESPONSE_CHUNK];
      }
      default:
        return [CONTINUE[phase]];
    }
  }

  /**
   * The whole request body is in: the endpoint reads it, and Envoy gets the held headers answer (with the
   * endpoint's header changes), then one answer per chunk, the last one carrying the body to forward.
   */
  private async requestComplete(ctx: AuthenticatedContext, endpoint: EndpointProcessor): Promise<object[]> {
    const result = (await endpoint.requestBody?.(ctx, this.requestBody.whole(), true)) ?? {};
    if (isLocalReply(result)) return [encodeLocalReply(result)];
    const reply = ctx.forwardedAt === undefined ? result : this.withAccessLog(result);
    const held = this.heldHeaders ?? {};
    this.heldHeaders = undefined;
    const headers: PhaseReply = {
      setHeaders: [...(held.setHeaders ?? []), ...(reply.setHeaders ?? [])],
      removeHeaders: [...(held.removeHeaders ?? []), ...(reply.removeHeaders ?? [])],
      clearRouteCache: held.clearRouteCache === true || reply.clearRouteCache === true,
      ...((reply.metadata ?? held.metadata) && { metadata: { ...held.metadata, ...reply.metadata } }),
    };
    const chunks = this.requestBody.chunkCount;
    const replies = [encodePhaseReply("requestHeaders", headers)];
    for (let i = 1; i < chunks; i++) replies.push(reply.body ? CLEARED_REQUEST_CHUNK : CONTINUE.requestBody);
    replies.push(reply.body ? encodePhaseReply("requestBody", { body: reply.body }) : CONTINUE.requestBody);
    return replies;
  }

  /**
   * The whole answer is in: the endpoint reads (and may rewrite) it. Its headers went out already and its
   * earlier chunks were cleared: the last chunk's answer carries the whole body (unless that chunk is the
   * whole, unchanged body), and the access-log metadata.
   */
  private async answerComplete(ctx: AuthenticatedContext, endpoint: EndpointProcessor): Promise<object[]> {
    const answer = this.answer!;
    this.answer = undefined;
    const whole = answer.whole();
    const result = (await endpoint.responseBody?.(ctx, whole, true)) ?? {};
    if (isLocalReply(result)) return [encodeLocalReply(result)];
    const { metadata } = this.withAccessLog(result);
    const body = result.body ?? (answer.chunkCount > 1 ? whole : undefined);
    return [encodeResult("responseBody", { ...(body && { body }), ...(metadata && { metadata }) })];
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
    ctx.trace?.annotate({ "server.address": host.replace(/:\d+$/, "").slice(0, 200) });
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
    // The scheduler counts this replica's requests in flight per endpoint; the pool's slot is free.
    if (ctx.endpoint) this.deps.scheduler?.finished(ctx.model!.pool.name, ctx.endpoint);
    ctx.slot?.release();
    const record = ctx.toAuditRecord();
    // Priced once the usage is final, at the prices of the policy this request ran under.
    const priced = (final: AuditRecord): AuditRecord => {
      const cost = auditCost(ctx.model, ctx.policy.currency, final.usage);
      return cost ? { ...final, cost } : final;
    };
    // With a reservation, the record waits for the settlement: it carries the usage that was charged.
    const final = ctx.admission ? this.settled(ctx.admission, record).then(priced) : priced(record);
    this.deps.audit.write(final);
    const { trace } = ctx;
    if (trace) {
      void Promise.resolve(final).then((settled) => trace.end(summarize(settled)));
    }
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
      const charged = await traced(ctx.trace, "quota.settle", () =>
        this.deps.quota.settleExchange(
          admission,
          { usage: ctx.usage, status: ctx.status, streamedTexts: ctx.streamedTexts },
          (texts, encoding) => this.deps.workers.countTokens(texts, encoding),
        ),
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
