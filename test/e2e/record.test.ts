/**
 * The audit record is the truth, through real Envoy: a cut stream and a stream without usage are audited
 * with the usage that was charged (marked as counted by the gateway); an upstream error is charged nothing
 * and a request cut before any answer its prompt; with `logPrompts` and PII restore
 * the audit keeps the redacted text the model saw, not the restored values the client got; Envoy's own 413
 * is a refusal, not an upstream answer; and a spent daily limit is still spent after extproc is killed
 * and restarted on the same audit log.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { APIError, RateLimitError } from "openai";
import { TOKENS_PER_MESSAGE, TOKENS_PER_REPLY } from "../../extproc/openai/prompt.js";
import { sha256Hex } from "../../extproc/policy/index.js";
import { countTokensSync } from "../../extproc/tokens/index.js";
import { CLEAR_OF_WINDOW_EDGES, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import {
  auditRecordOf,
  auditRecords,
  client,
  extprocMetrics,
  markForwarded,
  openStream,
  rawRequest,
  sampleValue,
} from "./helpers.js";

const MODEL = "llama-3.1-8b-instruct";
/** 24 words: the demo server then generates exactly max_tokens tokens (when max_tokens ≤ 28). */
const LONG_PROMPT = Array.from({ length: 24 }, (_, i) => `word${i}`).join(" ");
const EMAIL = "jane.roe@example.org";

const KEYS = {
  cut: "sk-test-cut",
  plain: "sk-test-plain",
  replay: "sk-test-replay",
  failed: "sk-test-failed",
  early: "sk-test-early",
} as const;
/** Tokens a day for the cut-stream key (prompt + completion) and the replay team (output only). */
const CUT_DAILY = 2000;
const REPLAY_DAILY = 30;

/** Prompt tokens the gateway estimates for one user message (tokenizer + chat framing). */
const promptEstimate = (content: string): number =>
  countTokensSync(["user", content], "cl100k_base") + TOKENS_PER_MESSAGE + TOKENS_PER_REPLY;

/**
 * Asserts exactly `left` tokens of `key`'s daily limit (CUT_DAILY) are unspent: a request reserving one
 * token more is refused (429; 400 when nothing is spent: it could never fit), one reserving exactly that
 * much is admitted.
 */
async function assertDailyLeft(key: string, left: number): Promise<void> {
  const c = client(stack, key);
  const call = (max_tokens: number) =>
    c.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }], max_tokens }).then(
      () => 200,
      (err: APIError) => err.status,
    );
  const rest = left - promptEstimate("x");
  assert.equal(await call(rest + 1), left < CUT_DAILY ? 429 : 400, `more than ${left} tokens left`);
  assert.equal(await call(rest), 200, `fewer than ${left} tokens left`);
}

let stack: Stack;
before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-record-"));
  const policyFile = writePolicy(dir, (doc) => {
    doc.audit.logPrompts = true;
    doc.teams.replay = { models: [MODEL] };
    doc.keys.push(
      { id: "t-cut", team: "research", sha256: sha256Hex(KEYS.cut) },
      { id: "t-plain", team: "research", sha256: sha256Hex(KEYS.plain) },
      { id: "t-replay", team: "replay", sha256: sha256Hex(KEYS.replay) },
      { id: "t-failed", team: "research", sha256: sha256Hex(KEYS.failed) },
      { id: "t-early", team: "research", sha256: sha256Hex(KEYS.early) },
    );
    doc.limits.push(
      { id: "cut-daily", scope: { key: "t-cut" }, tokensPerDay: CUT_DAILY },
      { id: "replay-daily", scope: { team: "replay" }, tokensPerDay: REPLAY_DAILY, countTokens: "output" },
      { id: "failed-daily", scope: { key: "t-failed" }, tokensPerDay: CUT_DAILY },
      { id: "early-daily", scope: { key: "t-early" }, tokensPerDay: CUT_DAILY },
    );
  });
  // Daily windows on a clock the test owns (restarts continue it): no real midnight falls between spending
  // a limit and checking it.
  stack = await startStack({ policyFile, workDir: dir, clockAt: CLEAR_OF_WINDOW_EDGES });
});
after(() => stack?.stop());

describe("usage of streams the server did not report", () => {
  it("audits a stream the client cut with exactly the usage it was charged, marked as counted", async () => {
    const content = LONG_PROMPT;
    // The first generated words (PII scanning holds the last 64 characters back), then the client leaves.
    const stream = await openStream(
      stack,
      KEYS.cut,
      { model: MODEL, messages: [{ role: "user", content }], max_tokens: 20 },
      { "x-demo-token-delay-ms": "100" },
      '"content":"This',
    );
    stream.abort();
    const record = await auditRecordOf(stack, stream.requestId);
    assert.equal(record.reason, "closed_during_response");
    assert.equal(record.usage_source, "counted");
    const usage = record.usage!;
    assert.ok(usage, "a charged stream was audited without usage");
    assert.equal(usage.prompt_tokens, promptEstimate(content));
    // Counted from what was streamed until the cut: some, not the whole 20-word answer.
    const whole = `This is ${MODEL} answering: ${LONG_PROMPT.split(" ").slice(0, 16).join(" ")}`;
    const wholeTokens = countTokensSync([whole], "cl100k_base");
    assert.ok(usage.completion_tokens > 0 && usage.completion_tokens < wholeTokens, JSON.stringify(usage));
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    // What the audit says was used is what the quota charged: exactly the rest of the daily limit fits.
    await assertDailyLeft(KEYS.cut, CUT_DAILY - usage.total_tokens);
  });

  it("audits a stream whose server sends no usage with the counted usage, and server usage as such", async () => {
    const c = client(stack, KEYS.plain, { "x-demo-omit-usage": "1" });
    const { data: stream, response } = await c.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "one two" }], stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.equal(record.reason, "ok");
    assert.equal(record.usage_source, "counted");
    const counted = countTokensSync([text], "cl100k_base");
    const prompt = promptEstimate("one two");
    assert.deepEqual(record.usage, {
      prompt_tokens: prompt,
      completion_tokens: counted,
      total_tokens: prompt + counted,
    });

    const { data, response: reported } = await client(stack, KEYS.plain)
      .chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "one two" }] })
      .withResponse();
    const served = await auditRecordOf(stack, reported.headers.get("x-request-id"));
    assert.equal(served.usage_source, "server");
    assert.deepEqual(served.usage, data.usage);
  });
});

describe("what a request that did not end well is charged", () => {
  it("charges an upstream error nothing: audited without usage, the whole daily limit still there", async () => {
    const failing = client(stack, KEYS.failed, { "x-demo-status": "503" });
    // Each reserves its prompt + 200 output tokens: ten of them are more than the 2000-token limit.
    for (let i = 0; i < 10; i++) {
      const err = await failing.chat.completions
        .create({ model: MODEL, messages: [{ role: "user", content: LONG_PROMPT }], max_tokens: 200 })
        .then(
          () => assert.fail("the injected 503 was answered 200"),
          (e: unknown) => e,
        );
      assert.ok(err instanceof APIError && err.status === 503, String(err));
      const record = await auditRecordOf(stack, err.headers?.get("x-request-id") ?? null);
      assert.equal(record.reason, "upstream_error");
      assert.equal(record.usage, null);
    }
    await assertDailyLeft(KEYS.failed, CUT_DAILY);
  });

  it("charges a request the client cut before any response its prompt, audited as closed_before_response", async () => {
    const mark = markForwarded(stack);
    const controller = new AbortController();
    const pending = fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${KEYS.early}`,
        "content-type": "application/json",
        "x-demo-delay-ms": "3000",
      },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: LONG_PROMPT }],
        max_tokens: 20,
      }),
      signal: controller.signal,
    }).catch((err: unknown) => err);
    // Forwarded (the model server has it, and answers in 3 s): the client leaves before any answer.
    await waitFor("the request forwarded", async () => mark.all().length === 1);
    const requestId = String(mark.one().req.headers["x-request-id"]);
    controller.abort();
    assert.ok((await pending) instanceof Error, "the client was answered before it left");
    const record = await auditRecordOf(stack, requestId);
    assert.equal(record.reason, "closed_before_response");
    assert.equal(record.status, null);
    const prompt = promptEstimate(LONG_PROMPT);
    assert.deepEqual(record.usage, { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt });
    await assertDailyLeft(KEYS.early, CUT_DAILY - prompt);
  });
});

describe("prompts in the audit (logPrompts) with PII restore", () => {
  const prompt = `Write to ${EMAIL} today`;

  it("keeps the redacted completion and request, while the client gets the restored value", async () => {
    const c = client(stack, KEYS.plain);
    const { data, response } = await c.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: prompt }] })
      .withResponse();
    assert.match(data.choices[0]!.message.content!, new RegExp(EMAIL.replaceAll(".", "\\.")));
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.match(record.completion!, /Write to <EMAIL_1> today/);
    const body = record.request_body as { messages: Array<{ content: string }> };
    assert.equal(body.messages[0]!.content, "Write to <EMAIL_1> today");

    const { data: stream, response: streamed } = await c.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: prompt }], stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.ok(text.includes(EMAIL), text);
    const streamRecord = await auditRecordOf(stack, streamed.headers.get("x-request-id"));
    assert.equal(streamRecord.completion, text.replace(EMAIL, "<EMAIL_1>"));
    assert.ok(!readFileSync(stack.auditLog, "utf8").includes(EMAIL), "the audit log holds the address");
  });
});

describe("Envoy's own answers", () => {
  it("audits a body over Envoy's buffer limit as a refusal (413 request_too_large), not an upstream error", async () => {
    const before = sampleValue(await extprocMetrics(stack), "llm_gateway_requests_total", {
      status: "413",
      decision: "deny",
    });
    const body = JSON.stringify({
      model: MODEL,
      messages: [{ role: "user", content: "x".repeat(8 * 1024 * 1024 + 10) }],
    });
    const res = await rawRequest(stack, "/v1/chat/completions", {
      headers: { authorization: `Bearer ${KEYS.plain}`, "content-type": "application/json" },
      body,
    });
    assert.equal(res.status, 413);
    let record: ReturnType<typeof auditRecords>[number] | undefined;
    await waitFor("the 413's audit record", async () => {
      record = auditRecords(stack).find((r) => r.status === 413);
      return record !== undefined;
    });
    assert.equal(record!.decision, "deny");
    assert.equal(record!.reason, "request_too_large");
    assert.equal(record!.key_id, "t-plain");
    assert.equal(record!.latency_ms.upstream, null);
    assert.equal(record!.usage, null);
    await waitFor(
      "the refusal counted",
      async () =>
        sampleValue(await extprocMetrics(stack), "llm_gateway_requests_total", {
          status: "413",
          decision: "deny",
        }) ===
        before + 1,
    );
  });
});

describe("quota windows after a crash (memory store)", () => {
  it("still refuses a team whose daily limit was spent before extproc was SIGKILLed", async () => {
    const c = client(stack, KEYS.replay);
    const call = () =>
      c.chat.completions
        .create({ model: MODEL, messages: [{ role: "user", content: LONG_PROMPT }], max_tokens: 10 })
        .withResponse()
        .then(
          ({ response }) => ({ status: response.status, id: response.headers.get("x-request-id") }),
          (err: APIError) => ({ status: err.status, id: null, error: err }),
        );
    // 30 output tokens a day, 10 per request: three requests, then 429.
    const spent = [await call(), await call(), await call()];
    assert.deepEqual(
      spent.map((o) => o.status),
      [200, 200, 200],
    );
    assert.equal((await call()).status, 429);
    // The records are on disk (written every 50 ms) before the crash.
    for (const o of spent) await auditRecordOf(stack, o.id);
    await stack.killExtProc();
    await stack.startExtProc();
    const after = await call();
    assert.equal(after.status, 429, "the restarted extproc forgot the spent daily limit");
    const error = (after as { error: RateLimitError }).error;
    assert.ok(error instanceof RateLimitError);
    assert.match(error.message, /limit 'replay-daily', tokens per day/);
    // The replay charged what was used, not more: a team with room left is still served.
    const other = await client(stack, KEYS.plain).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "still there?" }],
      max_tokens: 5,
    });
    assert.equal(other.choices.length, 1);
  });
});
