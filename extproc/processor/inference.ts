import type { z } from "zod";
import {
  CLIENT_CREDENTIAL_HEADERS,
  ROUTING_HEADER,
  SERVED_POOL_HEADER,
  type HeaderMapValues,
} from "../envoy/headers.js";
import { BodySendMode, type PhaseReply } from "../envoy/messages.js";
import { GatewayError } from "../errors/index.js";
import {
  chatCompletionRequest,
  completionRequest,
  embeddingRequest,
  parseRequestBody,
  type InferenceRequest,
} from "../openai/schemas.js";
import type { Model } from "../policy/index.js";
import { applicableGuardrails, applyGuardrails } from "../guardrails/index.js";
import {
  mapRequestTexts,
  mapResponseTexts,
  promptText,
  requestTexts,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REPLY,
} from "../openai/prompt.js";
import { PiiSession, resolvePii } from "../pii/index.js";
import { StreamingPii } from "../pii/stream.js";
import { SseSplitter } from "../openai/sse.js";
import { generatedText, mayCarryUsage, usageOf } from "../openai/usage.js";
import { UsageChunkRemover } from "../openai/usage-chunk.js";
import { modelRenamer } from "../openai/model-name.js";
import { resolveModel } from "../routing/index.js";
import { monotonicMs, type ProcessorDeps, type RequestContext } from "./context.js";
import type { EndpointProcessor } from "./endpoint.js";

/** Headers removed from every forwarded request: client credentials, and any routing header a client forged. */
const STRIPPED_REQUEST_HEADERS = [...CLIENT_CREDENTIAL_HEADERS, ROUTING_HEADER];

/** Per-request streaming state, kept on the processor instance (one instance per request). */
interface StreamState {
  readonly splitter: SseSplitter;
  /** The client did not ask for the usage chunk: we asked for it, and this removes it again. */
  readonly usageChunk: UsageChunkRemover | undefined;
  /** Streaming PII redaction, when policy scans or restores output. */
  readonly pii: StreamingPii | undefined;
  /** Last parsed event: the template for a flush event. */
  lastEvent?: unknown;
}

/**
 * Chat completions, completions and embeddings: authorise the model, route it to its pool, rewrite the
 * body when the served model or stream options differ, and read `usage` back from the response.
 */
export class InferenceProcessor implements EndpointProcessor {
  private streamState: StreamState | undefined;
  private clientWantsUsage = false;
  /** Set when the pool serves the model under another name: answers carry the policy's name. */
  private renameModel: ((raw: Buffer) => Buffer) | undefined;

  constructor(
    readonly api: string,
    private readonly schema: z.ZodType,
    private readonly streams: boolean,
  ) {}

  requestHeaders(_ctx: RequestContext, headers: HeaderMapValues, endOfStream: boolean): PhaseReply {
    if (endOfStream) throw new GatewayError("missing_body", "This endpoint requires a JSON request body.");
    const contentType = headers.get("content-type");
    if (contentType !== undefined && !/^application\/json\b/i.test(contentType.trim())) {
      throw new GatewayError(
        "unsupported_content_type",
        `Content-Type must be application/json, not '${contentType}'.`,
      );
    }
    return { removeHeaders: STRIPPED_REQUEST_HEADERS };
  }

  async requestBody(ctx: RequestContext, body: Buffer, deps: ProcessorDeps): Promise<PhaseReply> {
    const request = parseRequestBody(body, this.schema);
    ctx.requestedModel = request.model;
    const identity = ctx.identity!;
    const model = resolveModel(ctx.policy, identity, request.model, deps.random);
    ctx.model = model;

    const guardrails = applicableGuardrails(ctx.policy, identity, model.name);
    ctx.guardrails = await applyGuardrails(guardrails, request, deps.workers);
    const pii = resolvePii(ctx.policy.pii, identity, model.name);
    if (pii) {
      const config = ctx.policy.pii!;
      const session = new PiiSession(config, pii);
      ctx.pii = session;
      // Detection may run on a worker; the actions (placeholders, hashes, restore map) stay in the session.
      const findings = await deps.workers.findPii(config.scanner, requestTexts(request), pii.enabled);
      let i = 0;
      mapRequestTexts(request, (text) => session.apply(text, findings[i++]!, "request"));
      if (session.blocked.size > 0) {
        throw new GatewayError(
          "pii_blocked",
          `The request contains data the policy does not allow to send: ${[...session.blocked].sort().join(", ")}.`,
        );
      }
    }

    // Prompt tokens are counted once, on the text that will actually be sent, and only if something needs them.
    let promptTokens: Promise<number> | undefined;
    const countInput = () => (promptTokens ??= countPromptTokens(request, model, deps));
    const maxInputTokens = ctx.guardrails.maxInputTokens;
    if (maxInputTokens !== undefined && (await countInput()) > maxInputTokens) {
      throw new GatewayError(
        "input_too_long",
        `The input has ${await countInput()} tokens; the limit for this model is ${maxInputTokens}.`,
        "messages",
      );
    }
    ctx.admission = await deps.quota.admit({
      policy: ctx.policy,
      identity,
      model,
      requestId: ctx.requestId,
      estimate: async () => ({
        input: await countInput(),
        output: this.streams ? maxOutputTokens(request, model) : 0,
      }),
    });

    request.model = model.upstreamModel;
    if (this.streams && request.stream === true) {
      ctx.stream = true;
      this.clientWantsUsage = request.stream_options?.include_usage === true;
      if (!this.clientWantsUsage) {
        // vLLM honours continuous_usage_stats only with include_usage: this client would get no usage at all.
        const { continuous_usage_stats: _unused, ...options } = (request.stream_options ?? {}) as Record<
          string,
          unknown
        >;
        request.stream_options = { ...options, include_usage: true };
      }
    }
    if (ctx.policy.logPrompts) ctx.requestBody = request;

    const setHeaders: Array<[string, string]> = [[ROUTING_HEADER, model.pool.name]];
    if (model.pool.upstreamAuthorization)
      setHeaders.push(["authorization", model.pool.upstreamAuthorization]);
    // The model server gets exactly the object the gateway checked, serialized once more: no duplicate key,
    // no byte sequence another JSON parser could read differently from the one that was authorized.
    const newBody = Buffer.from(JSON.stringify(request), "utf8");
    // BUFFERED body + SEND headers: Envoy rejects a body mutation whose content-length does not match.
    setHeaders.push(["content-length", String(newBody.length)]);
    ctx.forwardedAt = monotonicMs();
    return {
      setHeaders,
      body: newBody,
      clearRouteCache: true,
      metadata: {
        key_id: identity.keyId,
        team: identity.team,
        requested_model: ctx.requestedModel,
        served_model: model.name,
        pool: model.pool.name,
      },
    };
  }

  responseHeaders(
    ctx: RequestContext,
    headers: HeaderMapValues,
    endOfStream: boolean,
    deps: ProcessorDeps,
  ): PhaseReply {
    ctx.status = Number(headers.get(":status") ?? 0);
    if (ctx.forwardedAt !== undefined) {
      ctx.upstreamMs = monotonicMs() - ctx.forwardedAt;
      deps.metrics.upstreamLatency.observe({ model: ctx.model?.name ?? "" }, ctx.upstreamMs / 1000);
    }
    const ok = ctx.status >= 200 && ctx.status < 300;
    if (!ok) ctx.reason = "upstream_error";
    const served = headers.get(SERVED_POOL_HEADER);
    // Only a pool's declared fallbacks count (never the pool itself: the policy refuses that).
    if (served !== undefined && ctx.model?.pool.fallback.includes(served)) ctx.fallbackPool = served;
    if (ctx.model && ctx.model.upstreamModel !== ctx.model.name)
      this.renameModel = modelRenamer(ctx.model.upstreamModel, ctx.model.name);
    const headerReply = {
      setHeaders: ctx.admission?.headers ?? [],
      ...(served !== undefined && { removeHeaders: [SERVED_POOL_HEADER] }),
      // Envoy's access log says which pool answered, as the audit record does.
      ...(ctx.fallbackPool && { metadata: { pool: ctx.fallbackPool } }),
    };
    if (endOfStream) {
      ctx.complete = true;
      return headerReply;
    }
    const contentType = headers.get("content-type") ?? "";
    if (ok && ctx.stream && contentType.startsWith("text/event-stream")) {
      const session = ctx.pii;
      const pii =
        session && (session.resolved.responses || session.resolved.restore)
          ? new StreamingPii(session, ctx.policy.pii!.holdBackChars)
          : undefined;
      const usageChunk = this.clientWantsUsage ? undefined : new UsageChunkRemover();
      this.streamState = { splitter: new SseSplitter(), usageChunk, pii };
      return { ...headerReply, responseBodyMode: BodySendMode.STREAMED };
    }
    if (ok && contentType.startsWith("application/json")) return headerReply;
    // Error bodies and anything that is not an OpenAI JSON answer pass through without a look.
    ctx.complete = true;
    return { ...headerReply, responseBodyMode: BodySendMode.NONE };
  }

  responseBody(ctx: RequestContext, chunk: Buffer, endOfStream: boolean): PhaseReply {
    const reply = this.streamState
      ? this.streamedChunk(ctx, this.streamState, chunk, endOfStream)
      : this.bufferedBody(ctx, chunk);
    if (!endOfStream && this.streamState) return reply;
    ctx.complete = true;
    return {
      ...reply,
      metadata: {
        prompt_tokens: ctx.usage?.prompt_tokens,
        completion_tokens: ctx.usage?.completion_tokens,
        total_tokens: ctx.usage?.total_tokens,
      },
    };
  }

  private bufferedBody(ctx: RequestContext, body: Buffer): PhaseReply {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      ctx.reason = "upstream_invalid_json";
      return {};
    }
    ctx.usage = usageOf(parsed);
    let reply: PhaseReply = {};
    const session = ctx.pii;
    if (session && (session.resolved.responses || session.resolved.restore)) {
      let changed = false;
      mapResponseTexts(parsed, (text) => {
        const out = session.processResponse(text);
        if (out !== text) changed = true;
        return out;
      });
      if (changed) {
        const newBody = Buffer.from(JSON.stringify(parsed), "utf8");
        // BUFFERED body + SEND headers: the content-length we set must match the new body.
        reply = { body: newBody, setHeaders: [["content-length", String(newBody.length)]] };
      }
    }
    if (ctx.policy.logPrompts) ctx.completion = generatedText(parsed);
    if (this.renameModel) {
      const answer = reply.body ?? body;
      const renamed = this.renameModel(answer);
      if (renamed !== answer)
        reply = { body: renamed, setHeaders: [["content-length", String(renamed.length)]] };
    }
    return reply;
  }

  /**
   * Passes whole SSE events through, holding back an event split across chunks until it is complete.
   * Reads `usage` from the final usage chunk and drops that chunk when the client did not ask for it
   * (putting its `system_fingerprint` back where the server would have sent it). Events name the model as
   * the policy does.
   * With PII handling on, each event's generated text goes through the streaming redactor (which may hold
   * text back into later events) and the event is re-serialized.
   */
  private streamedChunk(
    ctx: RequestContext,
    state: StreamState,
    chunk: Buffer,
    endOfStream: boolean,
  ): PhaseReply {
    const kept: Buffer[] = [];
    const send = (raw: Buffer) => kept.push(this.renameModel ? this.renameModel(raw) : raw);
    const keep = (raw: Buffer) => (state.usageChunk ? state.usageChunk.keep(raw).forEach(send) : send(raw));
    for (const event of state.splitter.push(chunk)) {
      if (event.data === "[DONE]") {
        this.flushPii(state).forEach(keep);
        state.usageChunk?.release().forEach(send);
        kept.push(event.raw);
        continue;
      }
      if (ctx.admission && !ctx.usage) ctx.unmeteredEvents.push(event.data);
      const wantText = ctx.policy.logPrompts;
      if (!state.pii && !wantText && !mayCarryUsage(event.data)) {
        keep(event.raw);
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(event.data);
      } catch {
        keep(event.raw);
        continue;
      }
      const usage = usageOf(parsed);
      if (usage) {
        ctx.usage = usage;
        ctx.unmeteredEvents.length = 0;
      }
      const choices = (parsed as { choices?: unknown } | null)?.choices;
      const usageOnly = usage !== undefined && Array.isArray(choices) && choices.length === 0;
      if (usageOnly && state.usageChunk) {
        state.usageChunk.usageChunk(parsed).forEach(send);
        continue;
      }
      let raw = event.raw;
      if (state.pii && state.pii.apply(parsed))
        raw = Buffer.from(`data: ${JSON.stringify(parsed)}\n\n`, "utf8");
      if (wantText) ctx.completion = (ctx.completion ?? "") + generatedText(parsed);
      state.lastEvent = parsed;
      keep(raw);
    }
    if (endOfStream) {
      this.flushPii(state).forEach(keep);
      state.usageChunk?.release().forEach(send);
      kept.push(state.splitter.flush());
    }
    const out = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return out.equals(chunk) ? {} : { body: out };
  }

  /** Text the redactor still holds, as one extra event shaped like the stream's last one. */
  private flushPii(state: StreamState): Buffer[] {
    const texts = state.pii?.flush();
    if (!texts || texts.size === 0) return [];
    const template = (state.lastEvent ?? {}) as Record<string, unknown>;
    const chat = template.object === "chat.completion.chunk";
    const choices = [...texts].map(([index, text]) =>
      chat ? { index, delta: { content: text }, finish_reason: null } : { index, text, finish_reason: null },
    );
    const event = {
      id: template.id,
      object: template.object,
      created: template.created,
      model: template.model,
      choices,
    };
    return [Buffer.from(`data: ${JSON.stringify(event)}\n\n`, "utf8")];
  }
}

/** Prompt tokens as the model will see them: text by the model's tokenizer, token ids, chat framing. */
async function countPromptTokens(
  request: InferenceRequest,
  model: Model,
  deps: ProcessorDeps,
): Promise<number> {
  const prompt = promptText(request);
  const counted = await deps.workers.countTokens(prompt.texts, model.tokenizer);
  const framing = prompt.messages > 0 ? prompt.messages * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY : 0;
  return counted + prompt.tokenIds + framing;
}

/** Completion tokens the request may generate: its max_tokens (or the model's default cap) per choice. */
function maxOutputTokens(request: InferenceRequest, model: Model): number {
  const perChoice = request.max_completion_tokens ?? request.max_tokens ?? model.defaultMaxTokens;
  return Number(perChoice) * Number(request.n ?? 1);
}

/** A new processor for each endpoint, per request (processors hold per-request stream state). */
export const inferenceEndpoints: Record<string, () => InferenceProcessor> = {
  "/v1/chat/completions": () => new InferenceProcessor("chat.completions", chatCompletionRequest, true),
  "/v1/completions": () => new InferenceProcessor("completions", completionRequest, true),
  "/v1/embeddings": () => new InferenceProcessor("embeddings", embeddingRequest, false),
};
