/**
 * Shutdown and failure through real Envoy: extproc killed under load (fail closed, nothing forwarded
 * unchecked, recovery), SIGTERM draining a stream in flight, extproc hanging, slow and dropping model
 * servers, clients that disconnect (no leaked streams or memory), hostile request bodies (clear 4xx, never
 * a crash or a 5xx), and SSE streams cut at arbitrary bytes reaching the SDK intact.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startModelServer, type ModelServer } from "../model-server/index.js";
import {
  DEMO_KEYS,
  DEMO_POOL_B_KEY,
  POOL_MODELS,
  ROOT,
  startStack,
  waitFor,
  type Stack,
} from "../harness/index.js";
import { writeFallbackEnvoyConfig } from "../harness/envoy-config.js";
import { writePolicy } from "../harness/policy.js";
import {
  accessLogLine,
  allowedLag,
  assertOpenAIError,
  auditRecordOf,
  auditRecords,
  client,
  eventLoopLagMax,
  extprocMetrics,
  forwarded,
  markForwarded,
  openStream,
  passThroughLag,
  rawRequest,
  sampleValue,
  type RawResponse,
  userChat,
} from "./helpers.js";
import { seededRandom } from "../harness/random.js";
import { parseChatStream } from "../harness/sse.js";

let stack: Stack;

before(async () => {
  stack = await startStack();
});
after(() => stack?.stop());

const MODEL = "llama-3.1-8b-instruct";
const JSON_HEADERS = { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" };
const research = (headers: Record<string, string> = {}) => client(stack, DEMO_KEYS.research, headers);
const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify(userChat(MODEL, content, extra));

/** extproc is still running and answering: its process has not exited and a normal request gets a 200. */
async function assertStillServing(): Promise<void> {
  const exited = await Promise.race([stack.extProcExits().then(() => true), sleep(50).then(() => false)]);
  assert.equal(exited, false, "extproc exited");
  const res = await rawRequest(stack, "/v1/chat/completions", {
    headers: JSON_HEADERS,
    body: chat("still there?", { max_tokens: 2 }),
  });
  assert.equal(res.status, 200, res.text.slice(0, 300));
}

const activeStreams = async () => sampleValue(await extprocMetrics(stack), "llm_gateway_active_streams");

/** Envoy's own counters for requests still open (downstream and towards the pools). */
async function envoyActiveRequests(): Promise<number> {
  const stats = await (await fetch(`http://127.0.0.1:${stack.ports.admin}/stats?filter=rq_active$`)).text();
  let total = 0;
  for (const m of stats.matchAll(
    /^(http\.llm_gateway\.downstream_rq_active|cluster\.pool-[ab]\.upstream_rq_active): (\d+)$/gm,
  )) {
    total += Number(m[2]);
  }
  return total;
}

describe("extproc killed mid-load", () => {
  it("forwards nothing unchecked, answers a clear 500 while down and 200s again after a restart", async () => {
    const body = JSON.stringify({
      model: "chat-default",
      messages: [{ role: "user", content: "under load" }],
      max_tokens: 2,
    });
    const mark = markForwarded(stack);
    interface Outcome {
      readonly startedAt: number;
      readonly endedAt: number;
      readonly res?: RawResponse;
      readonly error?: string;
    }
    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        const startedAt = performance.now();
        try {
          const res = await rawRequest(stack, "/v1/chat/completions", { headers: JSON_HEADERS, body });
          outcomes.push({ startedAt, endedAt: performance.now(), res });
        } catch (err) {
          outcomes.push({
            startedAt,
            endedAt: performance.now(),
            error: String((err as Error).cause ?? err),
          });
        }
      }
    };
    const ok = (since: number) => outcomes.filter((o) => o.startedAt > since && o.res?.status === 200).length;
    const workers = Array.from({ length: 8 }, worker);
    let down = false;
    try {
      await waitFor("40 answers before the kill", async () => ok(0) >= 40, 30_000);
      const killingAt = performance.now();
      await stack.killExtProc();
      down = true;
      const killedAt = performance.now();
      assert.deepEqual(await stack.extProcExits(), [{ code: null, signal: "SIGKILL" }]);
      await waitFor(
        "16 requests sent while extproc is down",
        async () => outcomes.filter((o) => o.startedAt > killedAt).length >= 16,
        30_000,
      );
      const restartingAt = performance.now();
      await stack.startExtProc();
      down = false;
      const upAt = performance.now();
      await waitFor("40 answers after the restart", async () => ok(upAt) >= 40, 30_000);
      running = false;
      await Promise.all(workers);

      // Every request got an HTTP answer: a 200, or the fail-closed 500 as OpenAI JSON.
      assert.deepEqual(
        outcomes.filter((o) => o.error !== undefined).map((o) => o.error),
        [],
      );
      // A request in flight at the kill had been checked and forwarded: its 500 says the answer could not
      // be delivered. Every other refusal says the request was not forwarded.
      const inFlight = (o: Outcome) => o.startedAt < killedAt && o.endedAt > killingAt;
      for (const o of outcomes) {
        if (o.res!.status === 200) continue;
        const { code } = assertOpenAIError(o.res!, 500);
        const allowed = inFlight(o)
          ? ["answer_undeliverable", "gateway_policy_unavailable"]
          : ["gateway_policy_unavailable"];
        assert.ok(allowed.includes(String(code)), `${code}: ${o.res!.text}`);
      }
      const whileDown = outcomes.filter((o) => o.startedAt > killedAt && o.endedAt < restartingAt);
      assert.ok(whileDown.length >= 16, `${whileDown.length} requests while down`);
      assert.deepEqual(
        whileDown.map((o) => o.res!.status),
        whileDown.map(() => 500),
        "a request was answered 200 while extproc was down",
      );
      const afterRestart = outcomes.filter((o) => o.startedAt > upAt);
      assert.deepEqual(
        afterRestart.map((o) => o.res!.status),
        afterRestart.map(() => 200),
        "extproc is back but requests still fail",
      );

      // Everything a model server received went through extproc: its alias resolved and the body rewritten,
      // the client's key removed (pool B gets its own credential), content-length matching the new body.
      const received = mark.all();
      for (const { pool, req } of received) {
        const sent = JSON.parse(req.body) as { model: string };
        assert.equal(
          sent.model,
          pool === "pool-a" ? "llama-3.1-8b-instruct" : "llama-3.1-8b-instruct-v2",
          "a request reached a model server without extproc resolving its alias",
        );
        assert.equal(
          req.headers.authorization,
          pool === "pool-a" ? undefined : `Bearer ${DEMO_POOL_B_KEY}`,
          "the client's key reached a model server",
        );
        assert.equal(req.headers["x-api-key"], undefined);
        assert.equal(Number(req.headers["content-length"]), Buffer.byteLength(req.body));
      }
      // Every 200 was served by a model server; the only extra receipts are requests in flight at the kill
      // (checked and forwarded, then failed closed when their response could not be checked).
      const answered = outcomes.filter((o) => o.res?.status === 200).length;
      assert.ok(received.length >= answered, `${received.length} received < ${answered} answered`);
      assert.ok(
        received.length - answered <= 8,
        `${received.length - answered} forwarded requests more than answered (8 clients)`,
      );
    } finally {
      running = false;
      await Promise.all(workers);
      if (down) await stack.startExtProc(); // for the tests that follow
    }
  });
});

describe("SIGTERM: graceful shutdown", () => {
  it("finishes a stream in flight intact, writes its audit record, refuses new requests and exits 0", async () => {
    const words = Array.from({ length: 16 }, (_, i) => `w${i}`);
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { ...JSON_HEADERS, "x-demo-token-delay-ms": "100" },
      body: chat(words.join(" "), { stream: true, max_tokens: 64 }),
    });
    assert.equal(res.status, 200);
    const requestId = res.headers.get("x-request-id");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const first = await reader.read();
    text += decoder.decode(first.value, { stream: true });
    // 20 tokens at 100 ms: half a second in, the stream is well under way.
    await sleep(500);
    stack.signalExtProc("SIGTERM");
    const exited = stack.extProcExits();
    try {
      // New requests while it drains are refused (fail closed), not forwarded.
      await sleep(300);
      const mark = markForwarded(stack);
      const refused = await rawRequest(stack, "/v1/chat/completions", {
        headers: JSON_HEADERS,
        body: chat("late"),
      });
      assertOpenAIError(refused, 500, "gateway_policy_unavailable");
      assert.deepEqual(mark.all(), [], "a request was forwarded while extproc was shutting down");

      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        text += decoder.decode(chunk.value, { stream: true });
      }
      const stream = parseChatStream(text);
      assert.equal(stream.content, `This is ${MODEL} answering: ${words.join(" ")}`);
      assert.deepEqual(stream.finishReasons, ["stop"]);
      assert.equal(stream.last, "[DONE]");
      assert.ok(text.endsWith("data: [DONE]\n\n"));

      assert.deepEqual(await exited, [{ code: 0, signal: null }]);
      const record = await auditRecordOf(stack, requestId);
      assert.equal(record.status, 200);
      assert.equal(record.reason, "ok");
      assert.equal(record.stream, true);
      assert.deepEqual(record.usage, { prompt_tokens: 16, completion_tokens: 20, total_tokens: 36 });
    } finally {
      await exited;
      await stack.startExtProc(); // for the tests that follow
    }
    await assertStillServing();
  });
});

describe("extproc hangs", () => {
  it("fails closed with an OpenAI JSON 5xx when extproc does not answer in time, and recovers", async () => {
    const mark = markForwarded(stack);
    stack.signalExtProc("SIGSTOP");
    let res: RawResponse;
    try {
      res = await rawRequest(stack, "/v1/chat/completions", { headers: JSON_HEADERS, body: chat("anyone?") });
    } finally {
      stack.signalExtProc("SIGCONT");
    }
    assert.deepEqual(mark.all(), [], "a request was forwarded while extproc hung");
    // Envoy gives up after its 2 s message_timeout: docs/errors.md's 504, as OpenAI JSON.
    assertOpenAIError(res, 504, "gateway_policy_unavailable");
    await assertStillServing();
  });
});

describe("slow model server", () => {
  it("waits for a non-streaming answer that takes 3 s", async () => {
    const started = performance.now();
    const answer = await research({ "x-demo-delay-ms": "3000" }).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "take your time" }],
    });
    assert.ok(performance.now() - started >= 3000);
    assert.equal(answer.choices[0]!.message.content, `This is ${MODEL} answering: take your time`);
  });

  it("does not cut a healthy stream that lasts more than 5 s", async () => {
    const words = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const started = performance.now();
    const stream = await research({ "x-demo-token-delay-ms": "250" }).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: words.join(" ") }],
      stream: true,
      max_tokens: 24,
    });
    let text = "";
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    const elapsed = performance.now() - started;
    assert.ok(elapsed > 5000, `the stream took ${elapsed} ms`);
    assert.equal(text, `This is ${MODEL} answering: ${words.join(" ")}`);
    assert.equal(finish, "length");
  });
});

describe("model server drops the connection", () => {
  it("before responding: a clear 503 as OpenAI JSON, audited as an upstream error", async () => {
    const res = await rawRequest(stack, "/v1/chat/completions", {
      headers: { ...JSON_HEADERS, "x-demo-drop": "before-response" },
      body: chat("drop me"),
    });
    assertOpenAIError(res, 503, "upstream_unavailable");
    const record = await auditRecordOf(stack, res.headers.get("x-request-id"));
    assert.equal(record.decision, "allow");
    assert.equal(record.status, 503);
    assert.equal(record.reason, "upstream_error");
    assert.equal(record.served_model, MODEL);
    assert.equal(record.usage, null);
  });

  it("mid-stream: the client's stream ends with an error, it is audited and no stream is left open", async () => {
    const words = Array.from({ length: 16 }, (_, i) => `d${i}`);
    const full = `This is ${MODEL} answering: ${words.join(" ")}`;
    const { data: stream, response } = await research({
      "x-demo-drop": "mid-stream",
      "x-demo-token-delay-ms": "20",
    })
      .chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: words.join(" ") }],
        stream: true,
      })
      .withResponse();
    let text = "";
    let raised: unknown;
    try {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    } catch (err) {
      raised = err;
    }
    assert.ok(raised !== undefined, `the SDK saw a complete stream: ${JSON.stringify(text)}`);
    assert.ok(full.startsWith(text) && text.length < full.length, JSON.stringify(text));
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.ok(["closed_during_response", "upstream_error"].includes(record.reason), record.reason);
    assert.equal(record.status, 200);
    // Charged what was generated before the drop, counted by the gateway.
    assert.equal(record.usage_source, "counted");
    assert.ok(record.usage!.completion_tokens > 0);
    await waitFor("active streams back to 0", async () => (await activeStreams()) === 0);
  });
});

describe("a model pool down, with a fallback pool in policy", () => {
  let failover: Stack;
  let restarted: ModelServer | undefined;
  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-fallback-"));
    const envoyConfig = path.join(dir, "envoy-fallback.yaml");
    writeFallbackEnvoyConfig(path.join(ROOT, "envoy/envoy.yaml"), envoyConfig, "pool-a", "pool-c");
    const policyFile = writePolicy(dir, (doc) => {
      doc.pools["pool-a"].fallback = ["pool-c"];
      doc.pools["pool-c"] = { description: "standby for pool-a" };
    });
    failover = await startStack({
      envoyConfig,
      policyFile,
      extraPools: [{ name: "pool-c", models: POOL_MODELS["pool-a"] }],
    });
  });
  after(async () => {
    await restarted?.close();
    await failover?.stop();
  });

  /** Sends one plain and one streamed chat; returns the pool of each audit record. */
  const roundTrip = async (): Promise<Array<{ pool: string | null; fallback_from?: string }>> => {
    const sdk = client(failover, DEMO_KEYS.research);
    const { data: plain, response } = await sdk.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    assert.equal(plain.model, MODEL);
    assert.equal(
      response.headers.get("x-gateway-served-pool"),
      null,
      "the internal header reached the client",
    );
    const { data: stream, response: streamed } = await sdk.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }], stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.equal(text, `This is ${MODEL} answering: hi`);
    const records = await Promise.all(
      [response, streamed].map((r) => auditRecordOf(failover, r.headers.get("x-request-id"))),
    );
    // Envoy's access log names the same pool as the audit record.
    const logged = await accessLogLine(failover, response.headers.get("x-request-id"));
    assert.equal(logged.pool, records[0]!.pool);
    return records;
  };

  it("serves from the model's own pool while it is up", async () => {
    for (const record of await roundTrip()) {
      assert.equal(record.pool, "pool-a");
      assert.equal(record.fallback_from, undefined);
    }
    assert.deepEqual(
      forwarded(failover).filter((f) => f.pool === "pool-c"),
      [],
    );
  });

  it("fails over at once when the pool dies: no failed request, audited with the pool that answered", async () => {
    await failover.pools["pool-a"]!.close();
    // The first requests find pool A refusing connections before any health check noticed: Envoy's retry
    // goes to the next pool (previous_priorities), so not one request fails.
    for (let i = 0; i < 5; i++) {
      for (const record of await roundTrip()) {
        assert.equal(record.pool, "pool-c");
        assert.equal(record.fallback_from, "pool-a");
      }
    }
  });

  it("returns to the model's own pool once its health checks pass again", async () => {
    restarted = await startModelServer({
      name: "pool-a",
      port: failover.ports.poolA,
      models: POOL_MODELS["pool-a"],
      tokenDelayMs: 0,
    });
    // Envoy health-checks every 5 s and needs one success: back within two intervals.
    await waitFor("pool A to serve again", async () => (await roundTrip())[0]!.pool === "pool-a", 12_000);
  });
});

describe("clients that disconnect", () => {
  /** Opens a stream, reads its first bytes and aborts it; returns its request id. */
  async function abortedStream(content: string): Promise<string> {
    const stream = await openStream(
      stack,
      DEMO_KEYS.research,
      { model: MODEL, messages: [{ role: "user", content }], max_tokens: 24 },
      { "x-demo-token-delay-ms": "50" },
    );
    stream.abort();
    return stream.requestId;
  }

  /** extproc's heap in use: the lowest of a few samples, so garbage not yet collected counts less. */
  async function heapUsed(): Promise<number> {
    let lowest = Infinity;
    for (let i = 0; i < 6; i++) {
      lowest = Math.min(lowest, sampleValue(await extprocMetrics(stack), "nodejs_heap_size_used_bytes"));
      await sleep(250);
    }
    return lowest;
  }

  const words = Array.from({ length: 20 }, (_, i) => `word${i}`).join(" ");

  it("50 streams aborted mid-way: every one audited, no stream left open in extproc or Envoy", async () => {
    const ids = await Promise.all(Array.from({ length: 50 }, () => abortedStream(words)));
    await waitFor("active streams back to 0", async () => (await activeStreams()) === 0);
    await waitFor("Envoy requests back to 0", async () => (await envoyActiveRequests()) === 0);
    await waitFor("50 audit records", async () => {
      const mine = auditRecords(stack).filter((r) => ids.includes(r.request_id));
      return mine.length === 50;
    });
    const reasons = auditRecords(stack)
      .filter((r) => ids.includes(r.request_id))
      .map((r) => r.reason);
    assert.deepEqual(
      reasons,
      ids.map(() => "closed_during_response"),
    );
  });

  it("hundreds of aborted streams do not grow extproc's heap without bound", async (t) => {
    const prompt = `${words} `.repeat(20); // ~2.5 KB a request
    const run = async (count: number, concurrency: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next++ < count) await abortedStream(prompt);
        }),
      );
    };
    await run(50, 10); // warm up: code paths compiled, pools and buffers at their working size
    await waitFor("active streams back to 0", async () => (await activeStreams()) === 0);
    await sleep(1000);
    const baseline = await heapUsed();
    await run(400, 10);
    await waitFor("active streams back to 0", async () => (await activeStreams()) === 0);
    await sleep(2000);
    const after = await heapUsed();
    const growthMb = (after - baseline) / 2 ** 20;
    t.diagnostic(`heap used ${(baseline / 2 ** 20).toFixed(1)} MB -> ${(after / 2 ** 20).toFixed(1)} MB`);
    assert.ok(growthMb < 50, `heap grew by ${growthMb.toFixed(1)} MB over 400 aborted streams`);
  });
});

describe("hostile request bodies: a clear 4xx as OpenAI JSON, never a crash or a 5xx", () => {
  /** `n` arrays nested in one another: inside the body's object, the body nests n + 1 levels. */
  const nested = (n: number) => "[".repeat(n) + "]".repeat(n);
  const nestedArrays = nested(100_000);
  const hello = '"messages":[{"role":"user","content":"hi"}]';

  interface Case {
    readonly name: string;
    readonly body: string | Buffer;
    readonly headers?: Record<string, string>;
    /** Expected status and code, or a check of its own. */
    readonly expect: readonly [number, string?] | ((res: RawResponse) => void);
  }
  /** Refused before parsing: bodies may nest at most 64 levels (README; MAX_DEPTH in extproc/openai/schemas.ts). */
  const tooDeep = (res: RawResponse) => {
    assertOpenAIError(res, 400, "invalid_json");
    assert.match((res.json as { error: { message: string } }).error.message, /levels deep; at most 64/);
  };
  const answered = (res: RawResponse) => {
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal((res.json as { object: string }).object, "chat.completion");
  };
  const cases: Case[] = [
    {
      name: "100k nested arrays where a field is validated",
      body: `{"model":"${MODEL}","messages":[{"role":"user","content":${nestedArrays}}]}`,
      expect: tooDeep,
    },
    {
      name: "100k nested arrays in a field the gateway passes through",
      body: `{"model":"${MODEL}",${hello},"vendor_field":${nestedArrays}}`,
      expect: tooDeep,
    },
    {
      name: "100k nested arrays in a request the gateway rewrites (alias resolved)",
      body: `{"model":"chat-default",${hello},"vendor_field":${nestedArrays}}`,
      expect: tooDeep,
    },
    {
      name: "100k nested arrays in a stream request (the gateway adds stream_options)",
      body: `{"model":"${MODEL}","stream":true,${hello},"vendor_field":${nestedArrays}}`,
      expect: tooDeep,
    },
    {
      name: "exactly 64 levels of nesting (the limit) are answered",
      body: `{"model":"${MODEL}",${hello},"vendor_field":${nested(63)}}`,
      expect: answered,
    },
    {
      name: "65 levels of nesting are refused",
      body: `{"model":"${MODEL}",${hello},"vendor_field":${nested(64)}}`,
      expect: tooDeep,
    },
    {
      name: "invalid UTF-8 bytes in a string",
      body: Buffer.concat([
        Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":"a`),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xc0, 0xa2]),
        Buffer.from('"}]}'),
      ]),
      expect: [400, "invalid_json"],
    },
    {
      name: "multipart/form-data",
      body: `--x\r\nContent-Disposition: form-data; name="model"\r\n\r\n${MODEL}\r\n--x--\r\n`,
      headers: { "content-type": "multipart/form-data; boundary=x" },
      expect: [415, "unsupported_content_type"],
    },
    {
      name: "application/x-www-form-urlencoded",
      body: `model=${MODEL}&messages=hi`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      expect: [415, "unsupported_content_type"],
    },
    { name: "an empty body", body: "", expect: [400, "missing_body"] },
    { name: "a body of whitespace", body: " \r\n\t ", expect: [400, "invalid_json"] },
    {
      name: "a body that is a JSON array",
      body: `[{"model":"${MODEL}",${hello}}]`,
      expect: [400, "invalid_json"],
    },
    { name: "a body that is JSON null", body: "null", expect: [400, "invalid_json"] },
    { name: "a body that is a JSON string", body: '"hello"', expect: [400, "invalid_json"] },
    {
      name: "raw control characters in a string",
      body: `{"model":"${MODEL}","messages":[{"role":"user","content":"a\u0001b\u001bc\u007f"}]}`,
      expect: [400, "invalid_json"],
    },
    {
      name: "escaped control characters (valid JSON)",
      body: chat("a\u0001b\u001bc\u007f\u0085\u2028"),
      expect: answered,
    },
    {
      name: "raw NUL bytes in a string",
      body: `{"model":"${MODEL}","messages":[{"role":"user","content":"a\u0000b"}]}`,
      expect: [400, "invalid_json"],
    },
    { name: "a body of NUL bytes", body: Buffer.alloc(64), expect: [400, "invalid_json"] },
    {
      name: "an escaped NUL in the model name",
      body: JSON.stringify({ model: `${MODEL}\u0000`, messages: [{ role: "user", content: "hi" }] }),
      expect: [404, "model_not_found"],
    },
    {
      name: "lone UTF-16 surrogates (escaped)",
      body: `{"model":"${MODEL}","messages":[{"role":"user","content":"a\\ud800b\\udc00"}]}`,
      expect: answered,
    },
    {
      name: "__proto__ and constructor members",
      body: `{"__proto__":{"model":"x","admin":true},"constructor":{"prototype":{"admin":true}},"model":"${MODEL}","messages":[{"role":"user","content":"hi","__proto__":{"content":5}}]}`,
      expect: answered,
    },
    {
      name: "a number with 100k digits",
      body: `{"model":"${MODEL}",${hello},"n":${"9".repeat(100_000)}}`,
      expect: (res) => {
        assertOpenAIError(res, 400, "invalid_request");
        assert.equal((res.json as { error: { param: string } }).error.param, "n");
      },
    },
    {
      name: "100k tiny messages (valid)",
      body: JSON.stringify({
        model: MODEL,
        messages: Array.from({ length: 100_000 }, (_, i) => ({
          role: i % 2 ? "assistant" : "user",
          content: "a",
        })),
        max_tokens: 1,
      }),
      expect: answered,
    },
  ];

  for (const { name, body, headers, expect } of cases) {
    it(name, async () => {
      const res = await rawRequest(stack, "/v1/chat/completions", {
        headers: { ...JSON_HEADERS, ...headers },
        body,
      });
      if (typeof expect === "function") expect(res);
      else assertOpenAIError(res, expect[0], expect[1]);
      await assertStillServing();
    });
  }

  it("JSON with duplicate keys: refused, or forwarded only as the gateway understood it", async () => {
    // extproc reads the last "model"; a model server whose parser keeps the first (or rejects duplicates)
    // must not be handed a body that means something else than what was authorized and audited.
    const body = `{"model":"gpt-unknown","model":"${MODEL}",${hello}}`;
    const mark = markForwarded(stack);
    const res = await rawRequest(stack, "/v1/chat/completions", { headers: JSON_HEADERS, body });
    if (res.status !== 200) {
      assertOpenAIError(res, 400, "invalid_json");
    } else {
      const [sent, ...more] = mark.all();
      assert.equal(more.length, 0);
      const models = [...sent!.req.body.matchAll(/"model"\s*:\s*("(?:[^"\\]|\\.)*")/g)].map((m) =>
        JSON.parse(m[1]!),
      );
      assert.deepEqual(models, [MODEL], `forwarded body: ${sent!.req.body}`);
    }
    await assertStillServing();
  });

  it("a 6 MB single-string prompt is answered, without stalling other clients meanwhile", async (t) => {
    const text = "a".repeat(6 * 1024 * 1024);
    const big = chat(text, { max_tokens: 1 });
    const controlBefore = await passThroughLag(stack, DEMO_KEYS.research, MODEL, text);
    await eventLoopLagMax(stack); // resets the maximum
    let done = false;
    const bigAnswer = rawRequest(stack, "/v1/chat/completions", { headers: JSON_HEADERS, body: big });
    const finished = () => (done = true);
    bigAnswer.then(finished, finished);
    // Other clients' small requests, one after another for as long as the big one is being handled.
    const others: Array<{ readonly res: RawResponse; readonly ms: number }> = [];
    while (!done) {
      await sleep(100);
      const started = performance.now();
      const res = await rawRequest(stack, "/v1/chat/completions", {
        headers: JSON_HEADERS,
        body: chat("small", { max_tokens: 1 }),
      });
      others.push({ res, ms: performance.now() - started });
    }
    const lag = await eventLoopLagMax(stack);
    const res = await bigAnswer;
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal((res.json as { object: string }).object, "chat.completion");
    const controlAfter = await passThroughLag(stack, DEMO_KEYS.research, MODEL, text);
    const slowest = Math.max(...others.map((o) => o.ms));
    const ms = (seconds: number) => `${(seconds * 1000).toFixed(0)} ms`;
    t.diagnostic(
      `${others.length} small requests meanwhile, slowest ${slowest.toFixed(0)} ms; extproc's event loop held ` +
        `at most ${ms(lag)} (control: ${ms(controlBefore)} before, ${ms(controlAfter)} after)`,
    );
    assert.ok(others.length > 0, "no small request was sent while the big one was handled");
    const failed = others
      .filter((o) => o.res.status !== 200)
      .map(
        ({ res: r }) =>
          `${r.status} ${r.headers.get("content-type")} ${JSON.stringify(r.text.slice(0, 120))}`,
      );
    assert.deepEqual(
      failed,
      [],
      `${failed.length} of ${others.length} small requests failed while extproc worked on the 6 MB prompt`,
    );
    // Counting and scanning 6 MB inline holds extproc's event loop for seconds (small requests then get
    // Envoy's 504 after its 2 s message_timeout); on workers only the body's parse is left on it, about what
    // the control costs. Compared with the control rather than a fixed time: load slows both alike.
    const allowed = allowedLag(controlBefore, controlAfter);
    assert.ok(
      lag < allowed,
      `extproc's event loop stalled for ${ms(lag)}; the control allows ${ms(allowed)}`,
    );
    await assertStillServing();
  });
});

describe("SSE split anywhere", () => {
  const REPLY = 'Grüße — café é! 日本 and 日本語, "quoted" \\ 😀 data: [DONE]\n\ndata: {}';
  const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
  const offsets = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i).join(",");
  const responseBodyMessages = async () =>
    sampleValue(await extprocMetrics(stack), "llm_gateway_processing_duration_seconds_count", {
      phase: "response_body",
    });

  /** Streams REPLY with the given fault headers through the SDK; returns text, usage and the request id. */
  async function streamReply(headers: Record<string, string>, includeUsage = false) {
    const { data: stream, response } = await research({
      "x-demo-reply": encodeURIComponent(REPLY),
      ...headers,
    })
      .chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "split" }],
        stream: true,
        ...(includeUsage && { stream_options: { include_usage: true } }),
      })
      .withResponse();
    let text = "";
    const usages: unknown[] = [];
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usages.push(chunk.usage);
    }
    return { text, usages, requestId: response.headers.get("x-request-id") };
  }

  const expectedUsage = { prompt_tokens: 1, completion_tokens: words(REPLY), total_tokens: 1 + words(REPLY) };

  it("a reply cut into one event per character (é, 日本, 😀 halves) arrives exactly", async () => {
    const { text } = await streamReply({ "x-demo-split": offsets(1, REPLY.length - 1) });
    assert.equal(text, REPLY);
  });

  it("a stream cut at every byte (inside data:, inside UTF-8 characters) arrives exactly, usage read", async () => {
    const before = await responseBodyMessages();
    const { text, usages, requestId } = await streamReply({ "x-demo-byte-split": offsets(1, 1500) });
    assert.equal(text, REPLY);
    assert.deepEqual(usages, [], "the usage chunk the client did not ask for reached it");
    // The cuts really reached extproc as separate body messages, not re-joined on the way.
    const messages = (await responseBodyMessages()) - before;
    assert.ok(messages >= 200, `only ${messages} response body messages`);
    const record = await auditRecordOf(stack, requestId);
    assert.deepEqual(record.usage, expectedUsage);
  });

  it("the same with the usage chunk requested by the client", async () => {
    const { text, usages } = await streamReply({ "x-demo-byte-split": offsets(1, 1500) }, true);
    assert.equal(text, REPLY);
    assert.deepEqual(usages, [expectedUsage]);
  });

  it("random cuts of both kinds (seeded) always re-assemble", async () => {
    const next = seededRandom(20_261_122);
    const random = (n: number) => Math.floor(next() * n);
    for (let round = 0; round < 6; round++) {
      const chars = Array.from({ length: random(12) }, () => 1 + random(REPLY.length - 1)).join(",");
      const bytes = Array.from({ length: 20 + random(80) }, () => 1 + random(1500)).join(",");
      const { text } = await streamReply({ "x-demo-split": chars, "x-demo-byte-split": bytes });
      assert.equal(text, REPLY, `x-demo-split: ${chars}; x-demo-byte-split: ${bytes}`);
    }
  });
});
