import {
  CLIENT_CREDENTIAL_HEADERS,
  ENDPOINT_HEADER,
  ROUTING_HEADER,
  SERVED_POOL_HEADER,
  type HeaderMapValues,
} from "../envoy/headers.js";
import { BodySendMode, type LocalReply, type PhaseReply } from "../envoy/messages.js";
import { GatewayError } from "../errors/index.js";
import { parseRequestBody, type InferenceRequest } from "../openai/schemas.js";
import { applicableGuardrails, applyGuardrails, checkInputTokens } from "../guardrails/index.js";
import { mapRequestTexts, requestTexts } from "../openai/prompt.js";
import { protectRequest } from "../pii/request.js";
import { EventStreamPii } from "../pii/events.js";
import { processResponseBody } from "../pii/response.js";
import { StreamingPii } from "../pii/stream.js";
import { SseSplitter } from "../openai/sse.js";
import { eventName, serializeEvent, type EventStreamShape, type TypedEvent } from "../openai/events.js";
import type { Usage } from "../openai/usage.js";
import { generatedText, mayCarryUsage, usageOf } from "../openai/usage.js";
import { UsageChunkRemover } from "../openai/usage-chunk.js";
import { modelRenamer } from "../openai/model-name.js";
import { countPromptTokens } from "../quota/index.js";
import { resolveModel } from "../routing/index.js";
import { traced } from "../tracing/index.js";
import { chatTranslation, type ChatTranslation, type StreamConverter } from "../translate/index.js";
import { INFERENCE_APIS, type InferenceApi } from "./apis.js";
import { monotonicMs, type AuthenticatedContext, type ProcessorDeps } from "./context.js";
import type { EndpointProcessor } from "./endpoint.js";

/**
 * Headers removed from every forwarded request: client credentials, and any routing or endpoint header a
 * client forged (Envoy removes those two before ext_proc too).
 */
const STRIPPED_REQUEST_HEADERS = [...CLIENT_CREDENTIAL_HEADERS, ROUTING_HEADER, ENDPOINT_HEADER];

/** Bodies from this size on are checked against quotas before they are scanned (smaller scans cost less). */
const PRECHECK_BODY_BYTES = 64 * 1024;

/** Per-request state of a typed event stream (Responses, Messages). */
interface EventStreamState {
  readonly splitter: SseSplitter;
  readonly shape: EventStreamShape;
  readonly usage: (event: TypedEvent) => Usage | undefined;
  readonly pii: EventStreamPii | undefined;
}

/** A request to a pool that speaks chat completions only: what converting its answer back needs. */
interface Translation {
  readonly chat: ChatTranslation;
  /** The client's own request, governed (its answer echoes parameters of it). */
  readonly request: InferenceRequest;
  readonly promptTokens: number;
  /** The chat stream being converted, once its headers say it streams. */
  stream?: {
    readonly splitter: SseSplitter;
    readonly converter: StreamConverter;
    readonly pii: StreamingPii | undefined;
    lastEvent?: unknown;
    done: boolean;
  };
}

/** Path a translated request is forwarded to. */
const CHAT_COMPLETIONS_PATH = "/v1/chat/completions";

/** Per-request state of a chat or completions stream, kept on the processor instance (one instance per request). */
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
 * Every inference API (chat completions, completions, embeddings, Responses, Messages), governed alike:
 * authorise the model, route it to its pool, scan and cap the request, admit it against quotas, rewrite the
 * body when the served model or stream options differ, and read `usage` back from the response. What
 * differs between APIs comes from their {@link InferenceApi}.
 */
export class InferenceProcessor implements EndpointProcessor {
  readonly api: string;
  private streamState: StreamState | undefined;
  private eventState: EventStreamState | undefined;
  private translation: Translation | undefined;
  /** A JSON answer passed through as it arrives (nothing in it to rewrite), collected to read its usage. */
  private passThrough: JsonCollector | undefined;
  private clientWantsUsage = false;
  /** Set when the pool serves the model under another name: answers carry the policy's name. */
  private renameModel: ((raw: Buffer) => Buffer) | undefined;

  constructor(
    private readonly spec: InferenceApi,
    private readonly deps: ProcessorDeps,
  ) {
    this.api = spec.name;
  }

  requestHeaders(_ctx: AuthenticatedContext, headers: HeaderMapValues, endOfStream: boolean): PhaseReply {
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

  async requestBody(ctx: AuthenticatedContext, body: Buffer): Promise<PhaseReply | LocalReply> {
    const { deps, spec } = this;
    const { schema } = spec;
    const request = parseRequestBody(body, schema);
    ctx.requestedModel = request.model;
    spec.prepare?.(request);
    const { identity } = ctx;
    const model = resolveModel(ctx.policy, identity, request.model, deps.random);
    ctx.model = model;
    const cap = spec.output?.cap(request, model.defaultMaxTokens);

    // A key already out of quota is refused before a large body is scanned (seconds for a few MB).
    if (body.length >= PRECHECK_BODY_BYTES) {
      await traced(ctx.trace, "quota.precheck", () =>
        deps.quota.precheck({ policy: ctx.policy, identity, model, requestId: ctx.requestId }),
      );
    }
    const guardrails = applicableGuardrails(ctx.policy, identity, model.name);
    ctx.guardrails = await traced(ctx.trace, "guardrails.scan", () =>
      applyGuardrails(guardrails, request, schema, deps.workers),
    );
    const texts = await traced(ctx.trace, "pii.scan", () =>
      protectRequest(
        ctx.policy.pii,
        { identity, model: model.name, texts: requestTexts(request, schema) },
        (scanner, texts, enabled) => deps.workers.findPii(scanner, texts, enabled),
        (session) => (ctx.pii = session),
      ),
    );
    if (texts) {
      let i = 0;
      mapRequestTexts(request, schema, () => texts[i++]!);
    }

    // Prompt tokens are counted once, on the text that will actually be sent, and only if something needs them.
    let promptTokens: Promise<number> | undefined;
    const countInput = () =>
      (promptTokens ??= traced(ctx.trace, "tokens.count", () =>
        countPromptTokens(
          request,
          model,
          (texts, encoding) => deps.workers.countTokens(texts, encoding),
          spec.prompt(request),
        ),
      ));
    await checkInputTokens(ctx.guardrails, countInput);
    ctx.admission = await traced(ctx.trace, "quota.admit", () =>
      deps.quota.admit({
        policy: ctx.policy,
        identity,
        model,
        requestId: ctx.requestId,
        estimate: async () => ({ input: await countInput(), output: cap?.total ?? 0 }),
      }),
    );

    if (spec.output && cap) spec.output.apply(request, cap);
    request.model = model.upstreamModel;
    if (spec.stream && request.stream === true) ctx.stream = true;
    if (spec.stream === "chat" && request.stream === true) {
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
    // A pool that speaks chat completions only gets the governed request converted, on the chat path.
    let forward: Record<string, unknown> = request;
    if (spec.translation && model.pool.apis[spec.translation] === "translated") {
      if (spec.answerFromCount) return this.answerFromCount(ctx, spec.answerFromCount(await countInput()));
      const chat = chatTranslation(spec.translation);
      forward = chat.toChatRequest(request);
      this.translation = { chat, request, promptTokens: await countInput() };
      setHeaders.push([":path", CHAT_COMPLETIONS_PATH]);
    }
    // The texts the model reads, as forwarded: read by the queue and the picker, collected once.
    let forwardedTexts: string[] | undefined;
    const textsSent = () => (forwardedTexts ??= requestTexts(request, schema));
    const queue = model.pool.scheduling?.queue;
    if (queue && deps.queues) {
      const { priorities } = ctx.policy;
      const cls = priorities.classOf(identity, model.name);
      ctx.priorityClass = cls.name;
      // Fair share weighs by tokens: counted ones if quotas counted them, else about 4 characters a token
      // (counting for the queue alone would cost more than the whole queue step).
      const chars = () => textsSent().reduce((sum, text) => sum + text.length, 0);
      const prompt = promptTokens ? await promptTokens : Math.ceil(chars() / 4);
      const tokens = prompt + (cap?.total ?? 0);
      ctx.slot = await traced(ctx.trace, "queue.wait", () =>
        deps.queues!.enter({
          pool: model.pool.name,
          queue,
          cls,
          team: identity.team,
          weight: priorities.weightOf(identity.team),
          tokens,
          quota: ctx.policy.quota,
          signal: ctx.closed.signal,
          waiting: ctx.askForTime,
        }),
      );
    }
    // Picked once admitted: the endpoints' state is the one the request is sent under.
    const pick = deps.scheduler?.pick(model.pool.name, () => textsSent().join("\n"));
    if (pick) {
      deps.metrics.endpointPicks.inc({
        pool: model.pool.name,
        endpoint: pick.endpoint ?? "",
        reason: pick.reason,
      });
      if (pick.endpoint !== undefined) {
        setHeaders.push([ENDPOINT_HEADER, pick.endpoint]);
        ctx.endpoint = pick.endpoint;
      }
    }
    if (model.pool.upstreamAuthorization)
      setHeaders.push(["authorization", model.pool.upstreamAuthorization]);
    // The model server gets exactly the object the gateway checked, serialized once more: no duplicate key,
    // no byte sequence another JSON parser could read differently from the one that was authorized.
    const newBody = Buffer.from(JSON.stringify(forward), "utf8");
    ctx.forwardedAt = monotonicMs();
    // A body Envoy streams goes to the model server chunked: the client's length is dropped.
    return { setHeaders, removeHeaders: ["content-length"], body: newBody, clearRouteCache: true };
  }

  responseHeaders(ctx: AuthenticatedContext, headers: HeaderMapValues, endOfStream: boolean): PhaseReply {
    ctx.status = Number(headers.get(":status") ?? 0);
    if (ctx.forwardedAt !== undefined) {
      ctx.upstreamMs = monotonicMs() - ctx.forwardedAt;
      this.deps.metrics.upstreamLatency.observe({ model: ctx.model?.name ?? "" }, ctx.upstreamMs / 1000);
    }
    const ok = ctx.status >= 200 && ctx.status < 300;
    if (!ok) ctx.reason = "upstream_error";
    const served = headers.get(SERVED_POOL_HEADER);
    // Only a pool's declared fallbacks count (never the pool itself: the policy refuses that).
    if (served !== undefined && ctx.model?.pool.fallback.includes(served)) ctx.fallbackPool = served;
    // A translated answer is written with the policy's name for the model.
    if (ctx.model && ctx.model.upstreamModel !== ctx.model.name && !this.translation)
      this.renameModel = modelRenamer(ctx.model.upstreamModel, ctx.model.name);
    const headerReply = {
      setHeaders: ctx.admission?.headers ?? [],
      ...(served !== undefined && { removeHeaders: [SERVED_POOL_HEADER] }),
    };
    if (endOfStream) {
      ctx.complete = true;
      return headerReply;
    }
    const contentType = headers.get("content-type") ?? "";
    if (this.translation) return this.translatedHeaders(ctx, this.translation, headerReply, ok, contentType);
    if (ok && ctx.stream && contentType.startsWith("text/event-stream")) {
      const session = rewritesOutput(ctx) ? ctx.pii : undefined;
      const holdBack = ctx.policy.pii?.holdBackChars ?? 0;
      const shape = this.spec.stream;
      if (shape && shape !== "chat") {
        this.eventState = {
          splitter: new SseSplitter(),
          shape,
          usage: shape.usageReader(),
          pii: session && new EventStreamPii(session, holdBack, shape),
        };
        return { ...headerReply, responseBodyMode: BodySendMode.STREAMED };
      }
      const pii = session && new StreamingPii(session, holdBack);
      const usageChunk = this.clientWantsUsage ? undefined : new UsageChunkRemover();
      this.streamState = { splitter: new SseSplitter(), usageChunk, pii };
      return { ...headerReply, responseBodyMode: BodySendMode.STREAMED };
    }
    if (ok && contentType.startsWith("application/json")) {
      // A body the gateway may rewrite is read whole (up to 8 MiB); any other is passed through as it
      // arrives, so an answer of any size (400 embeddings of 1,024 floats: 8.7 MB) reaches the client.
      // Embeddings carry no text to scan.
      // A model served under another name is renamed in the answer, which needs the whole body too.
      if ((this.spec.output && rewritesOutput(ctx)) || this.renameModel)
        return { ...headerReply, responseBodyMode: BodySendMode.BUFFERED };
      this.passThrough = new JsonCollector(MAX_COLLECTED_RESPONSE_BYTES);
      return { ...headerReply, responseBodyMode: BodySendMode.STREAMED };
    }
    // Error bodies and anything that is not an OpenAI JSON answer pass through without a look.
    ctx.complete = true;
    return { ...headerReply, responseBodyMode: BodySendMode.NONE };
  }

  responseBody(ctx: AuthenticatedContext, chunk: Buffer, endOfStream: boolean): PhaseReply {
    if (this.translation) {
      const reply = this.translation.stream
        ? this.translatedChunk(ctx, this.translation, chunk, endOfStream)
        : this.translatedAnswer(ctx, this.translation, chunk);
      return endOfStream ? this.finished(ctx, reply) : reply;
    }
    if (this.passThrough) {
      this.passThrough.push(chunk);
      if (!endOfStream) return {};
      const parsed = this.passThrough.parse();
      if (parsed.ok) this.readAnswer(ctx, parsed.json);
      else if (!this.passThrough.tooLarge) ctx.reason = "upstream_invalid_json";
      return this.finished(ctx, {});
    }
    const reply = this.streamState
      ? this.streamedChunk(ctx, this.streamState, chunk, endOfStream)
      : this.eventState
        ? this.eventChunk(ctx, this.eventState, chunk, endOfStream)
        : this.bufferedBody(ctx, chunk);
    if (!endOfStream && (this.streamState || this.eventState)) return reply;
    return this.finished(ctx, reply);
  }

  /** The last body reply: the exchange is complete. */
  private finished(ctx: AuthenticatedContext, reply: PhaseReply): PhaseReply {
    ctx.complete = true;
    return reply;
  }

  /** What the gateway reads from a whole JSON answer: its usage, and its text when prompts are logged. */
  private readAnswer(ctx: AuthenticatedContext, parsed: unknown): void {
    ctx.usage = this.spec.answer.usageOf(parsed);
    if (ctx.policy.logPrompts) ctx.completion = this.spec.answer.generatedText(parsed);
  }

  private bufferedBody(ctx: AuthenticatedContext, body: Buffer): PhaseReply {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      ctx.reason = "upstream_invalid_json";
      return {};
    }
    let reply: PhaseReply = {};
    const session = ctx.pii;
    if (session && rewritesOutput(ctx)) {
      if (this.spec.protectAnswer(session, parsed))
        reply = { body: Buffer.from(JSON.stringify(parsed), "utf8") };
    }
    this.readAnswer(ctx, parsed);
    if (this.renameModel) {
      const answer = reply.body ?? body;
      const renamed = this.renameModel(answer);
      if (renamed !== answer) reply = { body: renamed };
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
    ctx: AuthenticatedContext,
    state: StreamState,
    chunk: Buffer,
    endOfStream: boolean,
  ): PhaseReply {
    const kept: Buffer[] = [];
    const send = (raw: Buffer) => kept.push(this.renameModel ? this.renameModel(raw) : raw);
    const keep = (raw: Buffer) => (state.usageChunk ? state.usageChunk.keep(raw).forEach(send) : send(raw));
    for (const event of state.splitter.push(chunk)) {
      if (event.data === "[DONE]") {
        this.flushPii(ctx, state).forEach(keep);
        state.usageChunk?.release().forEach(send);
        kept.push(event.raw);
        continue;
      }
      const wantText = ctx.policy.logPrompts;
      // While a reservation waits for usage, every event's text is kept to be counted if none comes.
      const metering = ctx.metering;
      if (!state.pii && !wantText && !metering && !mayCarryUsage(event.data)) {
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
        ctx.streamedTexts.length = 0;
      } else if (metering) {
        // The text as the server generated it (the PII redactor below may rewrite the event).
        ctx.streamedTexts.push(generatedText(parsed));
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
      this.flushPii(ctx, state).forEach(keep);
      state.usageChunk?.release().forEach(send);
      kept.push(state.splitter.flush());
    }
    const out = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return out.equals(chunk) ? {} : { body: out };
  }

  /**
   * A typed event stream (Responses, Messages): whole events pass through as they complete. Usage is read
   * where the API reports it; while a reservation waits for it, each event's generated text is kept to be
   * counted if none comes. With PII handling on, each event's texts go through the streaming redactor, and
   * text it held back goes out in an extra delta event before the event that ends its stream.
   */
  private eventChunk(
    ctx: AuthenticatedContext,
    state: EventStreamState,
    chunk: Buffer,
    endOfStream: boolean,
  ): PhaseReply {
    const kept: Buffer[] = [];
    const send = (raw: Buffer) => kept.push(this.renameModel ? this.renameModel(raw) : raw);
    // Events carrying text the redactor held back: what the client reads, so the audit's completion too.
    const sendEvent = (event: TypedEvent) => {
      if (ctx.policy.logPrompts) ctx.completion = (ctx.completion ?? "") + state.shape.generatedText(event);
      send(serializeEvent(event));
    };
    for (const event of state.splitter.push(chunk)) {
      const wantText = ctx.policy.logPrompts;
      const metering = ctx.metering;
      if (!state.pii && !wantText && !metering && !mayCarryUsage(event.data)) {
        send(event.raw);
        continue;
      }
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        send(event.raw);
        continue;
      }
      if (typeof data !== "object" || data === null || Array.isArray(data)) {
        send(event.raw);
        continue;
      }
      const parsed: TypedEvent = { name: eventName(event.raw), data: data as Record<string, unknown> };
      const usage = state.usage(parsed);
      if (usage) {
        ctx.usage = usage;
        ctx.streamedTexts.length = 0;
      } else if (metering) {
        ctx.streamedTexts.push(state.shape.generatedText(parsed));
      }
      let raw = event.raw;
      if (state.pii) {
        const { changed, before } = state.pii.apply(parsed);
        before.forEach(sendEvent);
        if (changed) raw = serializeEvent(parsed);
      }
      if (wantText) ctx.completion = (ctx.completion ?? "") + state.shape.generatedText(parsed);
      send(raw);
    }
    if (endOfStream) {
      state.pii?.flush().forEach(sendEvent);
      kept.push(state.splitter.flush());
    }
    const out = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return out.equals(chunk) ? {} : { body: out };
  }

  /** count_tokens on a pool without it: the gateway's own count is the answer (and costs no tokens). */
  private answerFromCount(ctx: AuthenticatedContext, answer: unknown): LocalReply {
    ctx.status = 200;
    ctx.usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    ctx.complete = true;
    return {
      status: 200,
      body: JSON.stringify(answer),
      contentType: "application/json",
      details: "tokens_counted",
      headers: ctx.admission?.headers ?? [],
    };
  }

  /**
   * Response headers of a translated request: a chat stream is converted event by event; any other answer
   * (a chat completion, an error of any content type) is read whole and converted to the client's API.
   */
  private translatedHeaders(
    ctx: AuthenticatedContext,
    translation: Translation,
    headerReply: { setHeaders: ReadonlyArray<readonly [string, string]>; removeHeaders?: string[] },
    ok: boolean,
    contentType: string,
  ): PhaseReply {
    if (ok && ctx.stream && contentType.startsWith("text/event-stream")) {
      const session = rewritesOutput(ctx) ? ctx.pii : undefined;
      translation.stream = {
        splitter: new SseSplitter(),
        converter: translation.chat.streamConverter({
          request: translation.request,
          model: ctx.model?.name,
          promptTokens: translation.promptTokens,
        }),
        pii: session && new StreamingPii(session, ctx.policy.pii?.holdBackChars ?? 0),
        done: false,
      };
      return { ...headerReply, responseBodyMode: BodySendMode.STREAMED };
    }
    return {
      ...headerReply,
      setHeaders: [...headerReply.setHeaders, ["content-type", "application/json"]],
      responseBodyMode: BodySendMode.BUFFERED,
    };
  }

  /**
   * A whole chat answer (or error) of a translated request, in the client's API: usage and output PII are
   * read and applied on the chat shape (every field the client reads comes from one of its fields).
   */
  private translatedAnswer(ctx: AuthenticatedContext, translation: Translation, body: Buffer): PhaseReply {
    const text = body.toString("utf8");
    const status = ctx.status ?? 0;
    const ok = status >= 200 && status < 300;
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // A success that is not JSON cannot be converted: it reaches the client as the server sent it.
      if (ok) {
        ctx.reason = "upstream_invalid_json";
        return {};
      }
    }
    if (!ok)
      return { body: Buffer.from(JSON.stringify(translation.chat.fromChatError(status, parsed)), "utf8") };
    const session = ctx.pii;
    if (session && rewritesOutput(ctx)) processResponseBody(session, parsed);
    ctx.usage = usageOf(parsed);
    if (ctx.policy.logPrompts) ctx.completion = generatedText(parsed);
    const answer = translation.chat.fromChatAnswer(parsed, {
      request: translation.request,
      model: ctx.model?.name,
    });
    return { body: Buffer.from(JSON.stringify(answer), "utf8") };
  }

  /**
   * A chat stream of a translated request: each whole chat event has its usage read, its text kept while
   * a reservation waits for usage, PII applied (on the chat shape, with the chat redactor's hold-back), and
   * is then converted to the client API's events.
   */
  private translatedChunk(
    ctx: AuthenticatedContext,
    translation: Translation,
    chunk: Buffer,
    endOfStream: boolean,
  ): PhaseReply {
    const state = translation.stream!;
    const out: Buffer[] = [];
    const flushPii = () => {
      const held = state.pii?.flushEvent(state.lastEvent);
      if (!held) return;
      if (ctx.policy.logPrompts) ctx.completion = (ctx.completion ?? "") + generatedText(held);
      out.push(state.converter.event(held));
    };
    for (const event of state.splitter.push(chunk)) {
      if (state.done) continue;
      if (event.data === "[DONE]") {
        flushPii();
        out.push(state.converter.done());
        state.done = true;
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(event.data);
      } catch {
        continue; // not a chat event: nothing the client's API could carry
      }
      const usage = usageOf(parsed);
      if (usage) {
        ctx.usage = usage;
        ctx.streamedTexts.length = 0;
      } else if (ctx.metering) {
        ctx.streamedTexts.push(generatedText(parsed));
      }
      state.pii?.apply(parsed);
      if (ctx.policy.logPrompts) ctx.completion = (ctx.completion ?? "") + generatedText(parsed);
      state.lastEvent = parsed;
      out.push(state.converter.event(parsed));
    }
    if (endOfStream && !state.done) {
      // A chat server that ends its stream without [DONE]: the client's stream still closes properly.
      flushPii();
      out.push(state.converter.done());
      state.done = true;
    }
    return { body: Buffer.concat(out) };
  }

  /** Text the redactor still holds, as one extra event shaped like the stream's last one (and audited). */
  private flushPii(ctx: AuthenticatedContext, state: StreamState): Buffer[] {
    const event = state.pii?.flushEvent(state.lastEvent);
    if (!event) return [];
    if (ctx.policy.logPrompts) ctx.completion = (ctx.completion ?? "") + generatedText(event);
    return [Buffer.from(`data: ${JSON.stringify(event)}\n\n`, "utf8")];
  }
}

/** Whether the gateway may change a successful answer's text (PII in responses, placeholders to restore). */
function rewritesOutput(ctx: AuthenticatedContext): boolean {
  const resolved = ctx.pii?.resolved;
  return resolved !== undefined && (resolved.responses || resolved.restore);
}

/**
 * Most of a passed-through JSON answer kept to read its usage (the answer itself reaches the client whole,
 * whatever its size); past it, usage is counted as for a server that reports none.
 */
const MAX_COLLECTED_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Collects a JSON body's chunks, up to a bound, and parses it once complete. */
class JsonCollector {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (!this.tooLarge) this.chunks.push(chunk);
  }

  /** The body was larger than what is kept: it was passed on, but cannot be read. */
  get tooLarge(): boolean {
    return this.size > this.maxBytes;
  }

  /** The parsed body, if it was kept whole and is JSON. */
  parse(): { ok: true; json: unknown } | { ok: false } {
    if (this.tooLarge) return { ok: false };
    try {
      return { ok: true, json: JSON.parse(Buffer.concat(this.chunks, this.size).toString("utf8")) };
    } catch {
      return { ok: false };
    }
  }
}

/** A new processor for the inference endpoint at `path`, per request (processors hold per-request stream state). */
export function inferenceEndpoint(path: string, deps: ProcessorDeps): InferenceProcessor | undefined {
  const spec = INFERENCE_APIS[path];
  return spec && new InferenceProcessor(spec, deps);
}
