/**
 * The processor unit tier: an {@link Exchange} driven with ext_proc messages decoded as the server decodes
 * them, over the real parts that need no process of their own (the in-memory quota store, a worker pool
 * with no threads, which runs every task inline, a real metrics registry) and an audit sink that keeps
 * records in memory.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import {
  accessLog,
  decoded,
  decodeReply,
  headerValue,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  text,
  TOKENS_PER_MINUTE,
  unitDeps,
  unitPolicy,
  type Reply,
} from "../../test/unit/ext-proc.js";
import { SERVED_POOL_HEADER } from "../envoy/headers.js";
import { encodeResponse } from "../envoy/protocol.js";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import { createMetrics, type GatewayMetrics } from "../metrics/index.js";
import { chatCompletionRequest, parseRequestBody } from "../openai/schemas.js";
import { countPromptTokens, MemoryQuotaStore, QuotaService, type AdmissionRequest } from "../quota/index.js";
import type { QuotaStore } from "../quota/store.js";
import { countTokensSync } from "../tokens/count.js";
import { Exchange } from "./index.js";

/** The in-memory store, except that settling fails (a shared store that became unreachable mid-request). */
class UnsettlingStore extends MemoryQuotaStore {
  override settle(): Promise<void> {
    return Promise.reject(new Error("connection lost"));
  }
}

/**
 * A quota service whose settlement rejects, which its contract rules out: a bug there must still not cost
 * the audit record. Admission is the real service's.
 */
class RejectingSettlement extends QuotaService {
  constructor(private readonly real: QuotaService) {
    super({
      store: new MemoryQuotaStore(),
      shared: false,
      metrics: createMetrics(),
      logger: pino({ level: "silent" }),
    });
  }
  override admit(request: AdmissionRequest) {
    return this.real.admit(request);
  }
  override settleExchange(): Promise<undefined> {
    return Promise.reject(new Error("settlement bug"));
  }
}

/** Dependencies and a way to start exchanges over them. */
function setup(policy = unitPolicy(), store: QuotaStore = new MemoryQuotaStore()) {
  const unit = unitDeps(policy, store);
  return { ...unit, exchange: () => new Exchange(unit.deps) };
}
type Setup = ReturnType<typeof setup>;

/** An exchange (a new one by default) whose request (`body`) has been checked and forwarded. */
async function forwarded(s: Setup, body: unknown, exchange = s.exchange()): Promise<Exchange> {
  await send(exchange, requestHeaders());
  await send(exchange, requestBody(body));
  return exchange;
}

/** Hands `message` to the exchange and decodes its answers from the bytes the server would send. */
async function sendAll(exchange: Exchange, message: ProcessingRequestMessage): Promise<Reply[]> {
  return (await exchange.handle(message)).map((reply) => decodeReply(encodeResponse(reply)));
}

/**
 * The answers to `message` as one: each answers its own phase (the held request-headers answer comes with
 * the last body chunk's), and their access-log metadata is merged as Envoy merges it.
 */
async function send(exchange: Exchange, message: ProcessingRequestMessage): Promise<Reply> {
  const replies = await sendAll(exchange, message);
  const merged: Reply = Object.assign({}, ...replies);
  const metadata = replies.flatMap((r) => (accessLog(r) ? [accessLog(r)] : []));
  if (metadata.length > 0) {
    const { dynamicMetadata } = replies.find((r) => r.dynamicMetadata)!;
    merged.dynamicMetadata = dynamicMetadata;
    merged.accessLogMerged = Object.assign({}, ...metadata);
  }
  return merged;
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "m1",
  messages: [{ role: "user", content: "Say hello in five words." }],
  max_tokens: 50,
  ...extra,
});

/** A model server's headers for a stream. */
const SSE_HEADERS = responseHeaders({ ":status": "200", "content-type": "text/event-stream" });

const sse = (events: unknown[]): string =>
  events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`).join("");

const delta = (content: string) => ({
  id: "c1",
  object: "chat.completion.chunk",
  created: 1,
  model: "m1",
  choices: [{ index: 0, delta: { content }, finish_reason: null }],
});

const usageChunk = (prompt: number, completion: number) => ({
  id: "c1",
  object: "chat.completion.chunk",
  created: 1,
  model: "m1",
  choices: [],
  usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
});

/** Tokens a probe request sees left in the key's per-minute bucket, after reserving one of its own. */
async function tokensLeft(s: Setup): Promise<number> {
  const admission = await s.deps.quota.admit({
    policy: s.policy,
    identity: { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) },
    model: s.policy.models.get("m1")!,
    requestId: "probe",
    estimate: async () => ({ input: 1, output: 0 }),
  });
  const remaining = admission?.headers.find(([name]) => name === "x-ratelimit-remaining-tokens")?.[1];
  assert.ok(remaining !== undefined, "the probe got no x-ratelimit-remaining-tokens");
  return Number(remaining) + 1;
}

/** The prompt estimate of `body` as admission makes it. */
const promptEstimate = (s: Setup, body: unknown) =>
  countPromptTokens(
    parseRequestBody(Buffer.from(JSON.stringify(body)), chatCompletionRequest),
    s.policy.models.get("m1")!,
    async (texts, encoding) => countTokensSync(texts, encoding),
  );

async function counterValue(
  metrics: GatewayMetrics,
  name: keyof GatewayMetrics,
  labels: Record<string, string>,
) {
  const metric = metrics[name] as { get(): Promise<{ values: Array<{ labels: object; value: number }> }> };
  const values = (await metric.get()).values;
  const hit = values.find((v) =>
    Object.entries(labels).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want),
  );
  return hit?.value ?? 0;
}

describe("Exchange: a streamed chat completion", () => {
  it("forwards the request to the model's pool with its access-log metadata, and asks for the usage chunk", async () => {
    const s = setup();
    const exchange = s.exchange();
    // The headers answer waits for the body: it decides the route.
    assert.deepEqual(await sendAll(exchange, requestHeaders()), []);

    const forwarded = await send(exchange, requestBody(chat({ stream: true })));
    const headers = forwarded.requestHeaders?.response?.headerMutation;
    assert.equal(headers?.removeHeaders?.includes("authorization"), true);
    assert.equal(headerValue(headers?.setHeaders, "x-gateway-pool"), "pool-a");
    // The body goes on chunked: the client's length is dropped, none is set.
    assert.equal(headers?.removeHeaders?.includes("content-length"), true);
    assert.equal(headerValue(headers?.setHeaders, "content-length"), undefined);
    const common = forwarded.requestBody?.response;
    const body = JSON.parse(text(common?.bodyMutation?.body)) as { stream_options?: unknown };
    assert.deepEqual(body.stream_options, { include_usage: true });
    assert.deepEqual(accessLog(forwarded), {
      key_id: "k1",
      team: "t",
      requested_model: "m1",
      served_model: "m1",
      pool: "pool-a",
    });
  });

  it("strips the usage chunk the client did not ask for, reads the usage from it and charges it", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat({ stream: true }));
    const headers = await send(exchange, SSE_HEADERS);
    assert.equal(headers.modeOverride, undefined, "Envoy streams every body: no mode to switch");
    const first = await send(exchange, responseBody(sse([delta("Hello"), delta(" there")]), false));
    assert.equal(
      first.responseBody?.response?.bodyMutation ?? undefined,
      undefined,
      "text events pass unchanged",
    );
    const last = await send(exchange, responseBody(sse([usageChunk(17, 2), "[DONE]"]), true));
    assert.equal(text(last.responseBody?.response?.bodyMutation?.body), "data: [DONE]\n\n");
    assert.deepEqual(accessLog(last), { prompt_tokens: 17, completion_tokens: 2, total_tokens: 19 });
    assert.equal(exchange.finished, true);

    const [record] = await s.audit.records();
    assert.equal(s.audit.written.length, 1);
    assert.deepEqual(record!.usage, { prompt_tokens: 17, completion_tokens: 2, total_tokens: 19 });
    assert.equal(record!.usage_source, "server");
    assert.equal(record!.reason, "ok");
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE - 19);
    assert.equal(await counterValue(s.metrics, "tokens", { model: "m1", type: "prompt" }), 17);
  });

  it("passes the usage chunk to a client that asked for it", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat({ stream: true, stream_options: { include_usage: true } }));
    await send(exchange, SSE_HEADERS);
    const last = await send(exchange, responseBody(sse([delta("Hi"), usageChunk(17, 1), "[DONE]"]), true));
    assert.equal(last.responseBody?.response?.bodyMutation ?? undefined, undefined);
  });

  it("charges the prompt estimate and the counted text when the server sends no usage", async () => {
    const s = setup();
    const exchange = s.exchange();
    const request = chat({ stream: true, stream_options: { include_usage: true } });
    await send(exchange, requestHeaders());
    await send(exchange, requestBody(request));
    await send(exchange, SSE_HEADERS);
    await send(exchange, responseBody(sse([delta("Hello, how "), delta("are you")]), false));
    await send(exchange, responseBody(sse([delta(" today?"), "[DONE]"]), true));

    const [record] = await s.audit.records();
    const prompt = await promptEstimate(s, request);
    const completion = countTokensSync(["Hello, how ", "are you", " today?"], "cl100k_base");
    assert.deepEqual(record!.usage, {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
    });
    assert.equal(record!.usage_source, "counted");
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE - prompt - completion);
  });

  it("writes the audit record exactly once when the stream is cut mid-response, charging the text seen", async () => {
    const s = setup();
    const exchange = s.exchange();
    const request = chat({ stream: true });
    await send(exchange, requestHeaders());
    await send(exchange, requestBody(request));
    await send(exchange, SSE_HEADERS);
    await send(exchange, responseBody(sse([delta("Partial answer")]), false));
    assert.equal(exchange.finished, false);
    exchange.close();
    exchange.close(new Error("stream error after close"));

    assert.equal(s.audit.written.length, 1);
    const [record] = await s.audit.records();
    assert.equal(record!.reason, "closed_during_response");
    assert.equal(record!.status, 200);
    const prompt = await promptEstimate(s, request);
    const completion = countTokensSync(["Partial answer"], "cl100k_base");
    assert.equal(record!.usage_source, "counted");
    assert.equal(record!.usage?.prompt_tokens, prompt);
    assert.equal(record!.usage?.completion_tokens, completion);
    assert.equal(await counterValue(s.metrics, "requests", { api: "chat.completions", status: "200" }), 1);
  });

  it("charges the prompt of a request cut before any response", async () => {
    const s = setup();
    const exchange = s.exchange();
    const request = chat();
    await send(exchange, requestHeaders());
    await send(exchange, requestBody(request));
    exchange.close();

    const [record] = await s.audit.records();
    const prompt = await promptEstimate(s, request);
    assert.equal(record!.reason, "closed_before_response");
    assert.equal(record!.status, null);
    assert.deepEqual(record!.usage, { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt });
    assert.equal(record!.usage_source, "counted");
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE - prompt);
  });

  it("charges nothing for an upstream error and releases the reservation", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat());
    const reply = await send(
      exchange,
      responseHeaders({ ":status": "500", "content-type": "application/json" }),
    );
    assert.equal(reply.modeOverride, undefined);
    assert.equal(exchange.finished, true);

    const [record] = await s.audit.records();
    assert.equal(record!.reason, "upstream_error");
    assert.equal(record!.usage, null);
    assert.equal(record!.usage_source, undefined);
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE);
  });
});

describe("Exchange: settlement", () => {
  it("writes the record with the usage when the quota store fails to settle", async () => {
    const s = setup(unitPolicy(), new UnsettlingStore());
    const exchange = await forwarded(s, chat({ stream: true }));
    await send(exchange, SSE_HEADERS);
    await send(exchange, responseBody(sse([delta("Hi"), usageChunk(17, 1), "[DONE]"]), true));
    assert.equal(s.audit.written.length, 1);
    const [record] = await s.audit.records();
    assert.deepEqual(record!.usage, { prompt_tokens: 17, completion_tokens: 1, total_tokens: 18 });
    assert.equal(await counterValue(s.metrics, "quotaStoreErrors", {}), 1);
  });
});

describe("Exchange: settlement that fails", () => {
  it("still writes the record, with the server's usage, when settlement rejects", async () => {
    const s = setup();
    const rejecting = new Exchange({ ...s.deps, quota: new RejectingSettlement(s.deps.quota) });
    const exchange = await forwarded(s, chat({ stream: true }), rejecting);
    await send(exchange, SSE_HEADERS);
    await send(exchange, responseBody(sse([delta("Hi"), usageChunk(17, 1), "[DONE]"]), true));
    const [record] = await s.audit.records();
    assert.equal(s.audit.written.length, 1);
    assert.deepEqual(record!.usage, { prompt_tokens: 17, completion_tokens: 1, total_tokens: 18 });
    assert.equal(record!.usage_source, "server");
  });
});

describe("Exchange: a buffered answer", () => {
  it("charges the server's usage from a JSON answer passed through", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat());
    const headers = await send(
      exchange,
      responseHeaders({ ":status": "200", "content-type": "application/json" }),
    );
    assert.equal(headers.modeOverride, undefined);
    const answer = {
      id: "c1",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello!" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 15, completion_tokens: 3, total_tokens: 18 },
    };
    const json = JSON.stringify(answer);
    await send(exchange, responseBody(json.slice(0, 20), false));
    const last = await send(exchange, responseBody(json.slice(20), true));
    assert.deepEqual(accessLog(last), { prompt_tokens: 15, completion_tokens: 3, total_tokens: 18 });
    const [record] = await s.audit.records();
    assert.deepEqual(record!.usage, answer.usage);
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE - 18);
  });
});

describe("Exchange: the fallback pool", () => {
  it("reads which pool answered from the served-pool header, removes it, and records it", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat());
    const reply = await send(
      exchange,
      responseHeaders({
        ":status": "200",
        "content-type": "application/json",
        [SERVED_POOL_HEADER]: "pool-b",
      }),
    );
    assert.deepEqual(reply.responseHeaders?.response?.headerMutation?.removeHeaders, [SERVED_POOL_HEADER]);
    assert.deepEqual(accessLog(reply), { pool: "pool-b" });
    exchange.close();
    const [record] = await s.audit.records();
    assert.equal(record!.pool, "pool-b");
    assert.equal(record!.fallback_from, "pool-a");
  });

  it("removes the header but ignores a pool that is not one of the model's fallbacks", async () => {
    const s = setup();
    const exchange = await forwarded(s, chat());
    const reply = await send(
      exchange,
      responseHeaders({
        ":status": "200",
        "content-type": "application/json",
        [SERVED_POOL_HEADER]: "pool-a",
      }),
    );
    assert.deepEqual(reply.responseHeaders?.response?.headerMutation?.removeHeaders, [SERVED_POOL_HEADER]);
    assert.equal(accessLog(reply), undefined);
    exchange.close();
    const [record] = await s.audit.records();
    assert.equal(record!.pool, "pool-a");
    assert.equal(record!.fallback_from, undefined);
  });
});

describe("Exchange: refusals", () => {
  it("answers an unknown key with a local 401 in OpenAI's error shape", async () => {
    const s = setup();
    const exchange = s.exchange();
    const reply = await send(
      exchange,
      requestHeaders("/v1/chat/completions", { authorization: "Bearer sk-nobody" }),
    );
    const local = reply.immediateResponse;
    assert.equal(local?.status?.code, 401);
    assert.equal(local?.details, "llm_gateway_invalid_api_key");
    assert.equal(headerValue(local?.headers?.setHeaders, "content-type"), "application/json");
    const body = JSON.parse(text(local?.body)) as { error: Record<string, unknown> };
    assert.equal(body.error.code, "invalid_api_key");
    assert.equal(body.error.type, "authentication_error");
    assert.equal(typeof body.error.message, "string");
    assert.equal(body.error.param, null);
    assert.equal(accessLog(reply), undefined, "nothing is known about the caller");
    assert.equal(exchange.finished, true);
    const [record] = await s.audit.records();
    assert.equal(record!.decision, "deny");
    assert.equal(record!.reason, "invalid_api_key");
    assert.equal(record!.key_id, null);
  });

  it("answers a model the key may not use with a local 403 that names the caller in the access log", async () => {
    const s = setup();
    const exchange = s.exchange();
    await send(exchange, requestHeaders());
    const reply = await send(exchange, requestBody(chat({ model: "m2" })));
    const local = reply.immediateResponse;
    assert.equal(local?.status?.code, 403);
    assert.equal(local?.details, "llm_gateway_model_not_allowed");
    const body = JSON.parse(text(local?.body)) as { error: Record<string, unknown> };
    assert.equal(body.error.code, "model_not_allowed");
    assert.equal(body.error.type, "permission_error");
    assert.deepEqual(accessLog(reply), { key_id: "k1", team: "t", requested_model: "m2" });
    const [record] = await s.audit.records();
    assert.equal(record!.status, 403);
    assert.equal(record!.reason, "model_not_allowed");
    assert.equal(record!.usage, null);
    assert.equal(
      await counterValue(s.metrics, "requests", { status: "403", decision: "deny", model: "m2" }),
      1,
    );
  });

  it("labels the metric of a model outside policy with no model name", async () => {
    const s = setup();
    const exchange = s.exchange();
    await send(exchange, requestHeaders());
    const reply = await send(exchange, requestBody(chat({ model: "made-up-by-client" })));
    assert.equal(reply.immediateResponse?.status?.code, 404);
    const [record] = await s.audit.records();
    assert.equal(record!.requested_model, "made-up-by-client");
    assert.equal(await counterValue(s.metrics, "requests", { status: "404", model: "" }), 1);
  });

  it("refuses a guardrail's token cap and counts the trigger, without charging", async () => {
    const s = setup(unitPolicy("guardrails:\n  - { scope: {}, maxInputTokens: 5 }"));
    const exchange = s.exchange();
    await send(exchange, requestHeaders());
    const reply = await send(exchange, requestBody(chat()));
    assert.equal(reply.immediateResponse?.status?.code, 400);
    assert.equal(reply.immediateResponse?.details, "llm_gateway_input_too_long");
    const [record] = await s.audit.records();
    assert.equal(record!.reason, "input_too_long");
    assert.equal(
      await counterValue(s.metrics, "guardrailTriggers", { guardrail: "input_too_long", action: "block" }),
      1,
    );
    assert.equal(await tokensLeft(s), TOKENS_PER_MINUTE);
  });

  it("refuses a body over 8 MiB with a local 413 request_too_large as it arrives", async () => {
    const s = setup();
    const exchange = s.exchange();
    await send(exchange, requestHeaders());
    const chunk = decoded({ requestBody: { body: Buffer.alloc(4 * 1024 * 1024, 0x20), endOfStream: false } });
    assert.deepEqual(await sendAll(exchange, chunk), []);
    assert.deepEqual(await sendAll(exchange, chunk), []);
    const reply = await send(
      exchange,
      decoded({ requestBody: { body: Buffer.from(" "), endOfStream: true } }),
    );
    assert.equal(reply.immediateResponse?.status?.code, 413);
    assert.equal(reply.immediateResponse?.details, "llm_gateway_request_too_large");
    const [record] = await s.audit.records();
    assert.equal(record!.decision, "deny");
    assert.equal(record!.reason, "request_too_large");
    assert.equal(record!.key_id, "k1");
  });

  it("audits an answer Envoy gave itself before forwarding as a refusal", async () => {
    const s = setup();
    const exchange = s.exchange();
    await send(exchange, requestHeaders());
    await send(exchange, responseHeaders({ ":status": "503", "content-type": "text/plain" }, false));
    const [record] = await s.audit.records();
    assert.equal(record!.decision, "deny");
    assert.equal(record!.reason, "envoy_local_reply");
  });
});
