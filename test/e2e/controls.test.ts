/**
 * Controls that one hostile request must not be able to switch off, through real Envoy and extproc with the
 * openai SDK: output-cap fields on every endpoint, the cap actually forwarded, requests that can never fit a
 * limit, hosts that match no environment, cheap refusals before costly scans, and day and month windows
 * that hold to the last second and reset at midnight and on the 1st (on a clock the test owns).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI, { BadRequestError, RateLimitError } from "openai";
import type { ReceivedRequest } from "../model-server/index.js";
import { CLEAR_OF_WINDOW_EDGES, startStack, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { startRedis, type RedisServer } from "../harness/redis.js";
import { applyPolicyChange, auditRecordOf, client, rawRequest } from "./helpers.js";

const KEYS = {
  daily: "sk-test-controls-daily",
  tpm: "sk-test-controls-tpm",
  busy: "sk-test-controls-busy",
  cap: "sk-test-controls-cap",
  day: "sk-test-controls-day",
  month: "sk-test-controls-month",
} as const;
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function controlsPolicy(doc: PolicyDoc): void {
  doc.keys.push(
    { id: "controls-daily", team: "research", sha256: sha256(KEYS.daily) },
    { id: "controls-tpm", team: "research", sha256: sha256(KEYS.tpm) },
    { id: "controls-busy", team: "research", sha256: sha256(KEYS.busy) },
    { id: "controls-cap", team: "research", sha256: sha256(KEYS.cap) },
    { id: "controls-day", team: "research", sha256: sha256(KEYS.day) },
    { id: "controls-month", team: "research", sha256: sha256(KEYS.month) },
  );
  doc.limits.push(
    { id: "daily-1000", scope: { key: "controls-daily" }, tokensPerDay: 1000 },
    { id: "tpm-500", scope: { key: "controls-tpm" }, tokensPerMinute: 500 },
    { id: "one-per-minute", scope: { key: "controls-busy" }, requestsPerMinute: 1 },
    { id: "tpm-5000", scope: { key: "controls-cap" }, tokensPerMinute: 5000 },
    { id: "day-300", scope: { key: "controls-day" }, tokensPerDay: 300 },
    { id: "month-300", scope: { key: "controls-month" }, tokensPerMonth: 300 },
  );
}

let stack: Stack;
let dir: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-controls-"));
  // Day and month windows on a clock the test owns: a run crossing a real midnight cannot reset them.
  stack = await startStack({
    policyFile: writePolicy(dir, controlsPolicy),
    workDir: dir,
    clockAt: CLEAR_OF_WINDOW_EDGES,
  });
});
after(() => stack?.stop());

/** Inference requests pool A received after `since` entries (Envoy's health checks excluded). */
function forwardedSince(since: readonly ReceivedRequest[]): ReceivedRequest[] {
  const seen = new Set(since);
  return stack.pools["pool-a"]!.received.filter((r) => !seen.has(r) && r.path.startsWith("/v1/"));
}

const snapshot = () => [...stack.pools["pool-a"]!.received];

describe("output caps", () => {
  const hostile = [-100_000_000, "abc", 1.5, 0, 1e300, -1];
  const endpoints = [
    {
      path: "/v1/chat/completions",
      body: { model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] },
      fields: ["max_tokens", "max_completion_tokens", "n"],
    },
    {
      path: "/v1/completions",
      body: { model: "llama-3.1-8b-instruct", prompt: "hi" },
      fields: ["max_tokens", "max_completion_tokens", "n", "best_of"],
    },
  ];

  it("refuses every hostile value of every cap field, streamed or not, and forwards nothing", async () => {
    const before = snapshot();
    let refusals = 0;
    for (const { path: url, body, fields } of endpoints) {
      for (const field of fields) {
        for (const value of hostile) {
          for (const stream of [false, true]) {
            const res = await rawRequest(stack, url, {
              headers: { authorization: `Bearer ${KEYS.daily}`, "content-type": "application/json" },
              body: JSON.stringify({ ...body, stream, [field]: value }),
            });
            assert.equal(res.status, 400, `${url} ${field}=${value}: ${res.text}`);
            const error = (res.json as { error: { code: string; param: string } }).error;
            assert.equal(error.code, "invalid_request");
            assert.equal(error.param, field);
            refusals++;
          }
        }
      }
    }
    assert.equal(refusals, 2 * 6 * 7);
    assert.deepEqual(forwardedSince(before), []);
  });

  it("keeps the daily limit after hostile attempts: admitted reservations never exceed it", async () => {
    const sdk = client(stack, KEYS.daily);
    // A stream held open with a hostile cap would once have refunded its reservation while open.
    await assert.rejects(
      sdk.completions.create({
        model: "llama-3.1-8b-instruct",
        prompt: [1, 2, 3],
        stream: true,
        max_completion_tokens: -100_000_000,
      } as never),
      BadRequestError,
    );
    // Token-id prompt: exactly 3 prompt tokens, plus 100 reserved for output. Requests are admitted while
    // what was used plus the reservation fits, so the usage of all admitted ones never exceeds the limit.
    let used = 0;
    let refused = false;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        const answer = await sdk.completions.create({
          model: "llama-3.1-8b-instruct",
          prompt: [1, 2, 3],
          max_tokens: 100,
        });
        used += answer.usage!.total_tokens;
      } catch (err) {
        assert.ok(err instanceof RateLimitError, String(err));
        assert.match(
          err.message,
          /limit 'daily-1000', tokens per day\): limit 1000, remaining \d+, requested 103/,
        );
        refused = true;
      }
    }
    assert.ok(refused, "the daily limit refused at some point");
    assert.ok(used <= 1000 && used + 103 > 1000, `used ${used} of 1000 when refused`);
  });

  it("forwards the cap admission assumed: the model's default without one, the field vLLM reads with both", async () => {
    const sdk = client(stack, KEYS.cap);
    let before = snapshot();
    await sdk.chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "hi" }],
    });
    let [forwarded] = forwardedSince(before);
    assert.equal(JSON.parse(forwarded!.body).max_tokens, 1024, "the model's defaultMaxTokens");

    before = snapshot();
    const { response } = await sdk.completions
      .create({
        model: "llama-3.1-8b-instruct",
        prompt: [1, 2, 3],
        max_tokens: 5,
        max_completion_tokens: 400,
      } as never)
      .withResponse();
    [forwarded] = forwardedSince(before);
    assert.equal(JSON.parse(forwarded!.body).max_tokens, 5);
    // Reserved 3 prompt + 5 output tokens (the field completions read), not 400.
    const remaining = Number(response.headers.get("x-ratelimit-remaining-tokens"));
    assert.ok(remaining >= 5000 - 1024 - 8 && remaining <= 5000 - 8, `remaining ${remaining}`);
  });

  it("refuses at once, with no retry, a request that can never fit a limit", async () => {
    // The SDK retries a 429 twice (and waits Retry-After); this must come back at once and unretried.
    const sdk = new OpenAI({ apiKey: KEYS.tpm, baseURL: stack.baseURL, maxRetries: 2 });
    const before = snapshot();
    const started = Date.now();
    const err = await sdk.chat.completions
      .create({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "word ".repeat(600) }] })
      .catch((e: unknown) => e);
    assert.ok(err instanceof BadRequestError, String(err));
    assert.equal(err.code, "request_exceeds_limit");
    assert.match(err.message, /can never fit the limit 'tpm-500' .*Retrying will not help/);
    assert.equal(err.headers?.get("x-should-retry"), "false");
    assert.ok(Date.now() - started < 5_000, "answered without retries");
    assert.deepEqual(forwardedSince(before), []);
    const record = await auditRecordOf(stack, err.headers?.get("x-request-id") ?? null);
    assert.equal(record.reason, "request_exceeds_limit");
    assert.equal(record.decision, "deny");
  });
});

/** A request with a chosen Host header (the SDK always sends the base URL's host). */
function withHost(
  host: string,
  body: object,
): Promise<{ status: number; json: { error: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: stack.ports.http,
        path: "/v1/chat/completions",
        method: "POST",
        headers: { host, authorization: `Bearer ${KEYS.tpm}`, "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("hosts that match no environment", () => {
  const ssn = { model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "SSN 123-45-6789" }] };

  it("get the default environment's controls (prod's SSN block), or are refused without a default", async () => {
    const prodOnly = (doc: PolicyDoc) => {
      controlsPolicy(doc);
      doc.pii.rules[0].scope = { environment: "prod" };
    };
    await applyPolicyChange(stack, () => writePolicy(dir, prodOnly));
    const blocked = await withHost("evil.example", ssn);
    assert.equal(blocked.status, 400);
    assert.equal(blocked.json.error.code, "pii_blocked");

    await applyPolicyChange(stack, () =>
      writePolicy(dir, (doc) => {
        prodOnly(doc);
        delete doc.defaultEnvironment;
      }),
    );
    const before = snapshot();
    const refused = await withHost("evil.example", ssn);
    assert.equal(refused.status, 421);
    assert.equal(refused.json.error.code, "unknown_host");
    assert.match(refused.json.error.message, /'evil\.example' belongs to no environment/);
    assert.deepEqual(forwardedSince(before), []);
    // A listed host still works, with its own controls.
    assert.equal((await withHost(`127.0.0.1:${stack.ports.http}`, ssn)).status, 400);
    await applyPolicyChange(stack, () => writePolicy(dir, controlsPolicy));
  });
});

describe("cheap refusals first", () => {
  it("refuses a key out of requests before scanning its multi-MB body", async () => {
    const sdk = client(stack, KEYS.busy);
    await sdk.chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 1,
    });
    // 4 MB of text full of e-mail addresses: scanning it would find (and audit) thousands.
    const big = "write to someone@example.com today ".repeat(120_000);
    const err = await sdk.chat.completions
      .create({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: big }] })
      .catch((e: unknown) => e);
    assert.ok(err instanceof RateLimitError, String(err));
    const record = await auditRecordOf(stack, err.headers?.get("x-request-id") ?? null);
    assert.equal(record.reason, "rate_limit_exceeded");
    // Refused before the scan: no PII was looked for, so none is recorded.
    assert.equal(record.pii, undefined);
  });
});

describe("large answers", () => {
  it("passes a JSON answer over 8 MiB through to the client, with its usage read", async () => {
    const sdk = client(stack, KEYS.cap);
    const input = Array.from({ length: 400 }, (_, i) => `passage ${i} about gateways`);
    const { data, response } = await sdk.embeddings
      .create({ model: "bge-small-en-v1.5", input, dimensions: 1024, encoding_format: "float" })
      .withResponse();
    assert.equal(data.data.length, 400);
    assert.equal(data.data[399]!.embedding.length, 1024);
    assert.ok(Number(response.headers.get("content-length")) > 8 * 1024 * 1024, "larger than Envoy's buffer");
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.equal(record.status, 200);
    assert.equal(record.reason, "ok");
    assert.deepEqual(record.usage, data.usage && { ...data.usage, completion_tokens: 0 });
  });
});

describe("day and month windows at their edges (owned clock), in memory and in Redis", () => {
  // The same limits on a second stack whose extproc keeps them in Redis. Redis expires a window's key
  // relative to extproc's clock (window end + 1 h grace − now), so the key outlives a frozen last second.
  let redis: RedisServer;
  let redisStack: Stack;
  before(async () => {
    redis = await startRedis();
    const redisDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-controls-redis-"));
    const policyFile = writePolicy(redisDir, (doc) => {
      controlsPolicy(doc);
      doc.quota = { store: "redis", redis: { url: redis.url } };
    });
    redisStack = await startStack({ policyFile, workDir: redisDir, clockAt: CLEAR_OF_WINDOW_EDGES });
  });
  after(async () => {
    await redisStack?.stop();
    await redis?.stop();
  });

  /** 24 words: the demo server then generates exactly max_tokens (25), so each request spends ~50 tokens. */
  const spend = {
    model: "llama-3.1-8b-instruct",
    prompt: Array.from({ length: 24 }, (_, i) => `w${i}`).join(" "),
    max_tokens: 25,
  };

  /** Requests sent one by one until one is refused. */
  async function spendUntilRefused(sdk: OpenAI): Promise<{ admitted: string[]; refusal: RateLimitError }> {
    const admitted: string[] = [];
    for (let i = 0; i < 20; i++) {
      try {
        const { response } = await sdk.completions.create(spend).withResponse();
        admitted.push(response.headers.get("x-request-id")!);
      } catch (err) {
        assert.ok(err instanceof RateLimitError, String(err));
        return { admitted, refusal: err };
      }
    }
    throw new Error("20 requests admitted against a limit of 300 tokens");
  }

  /** What a request costs the key now: admitted (its audit time) or refused. */
  async function attempt(on: Stack, sdk: OpenAI): Promise<{ status: number; time: string }> {
    const outcome = await sdk.completions
      .create(spend)
      .withResponse()
      .then(
        ({ response }) => ({ status: response.status, requestId: response.headers.get("x-request-id") }),
        (err: unknown) => {
          assert.ok(err instanceof RateLimitError, String(err));
          return { status: 429, requestId: err.headers?.get("x-request-id") ?? null };
        },
      );
    return { status: outcome.status, time: (await auditRecordOf(on, outcome.requestId)).time };
  }

  const windows = [
    { name: "day", key: KEYS.day, limit: "day-300", measure: "tokens per day", end: Date.UTC(2026, 5, 16) },
    {
      name: "month",
      key: KEYS.month,
      limit: "month-300",
      measure: "tokens per month",
      end: Date.UTC(2026, 6, 1),
    },
  ];
  const stores = [
    { store: "memory", on: () => stack },
    { store: "redis", on: () => redisStack },
  ];
  for (const [{ name, key, limit, measure, end }, { store, on }] of windows.flatMap((w) =>
    stores.map((s) => [w, s] as const),
  )) {
    it(`${store}: a ${name} window spent 1 s before its end stays spent until then, and resets once the clock crosses it`, async () => {
      const stack = on();
      const clock = stack.clock!;
      const sdk = client(stack, key);
      const lastSecond = new Date(end - 1000).toISOString();
      // The clock stands at 1 s before the window's end for the whole burst, however long it takes here.
      await clock.set(end - 1000, { frozen: true });
      const { admitted, refusal } = await spendUntilRefused(sdk);
      assert.ok(admitted.length >= 2, `admitted ${admitted.length}`);
      assert.match(refusal.message, new RegExp(`limit '${limit}', ${measure}\\): limit 300`));
      for (const id of admitted) assert.equal((await auditRecordOf(stack, id)).time, lastSecond);
      // Real time passes; the owned clock does not: still the same window, still spent.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(await attempt(stack, sdk), { status: 429, time: lastSecond });

      // Across the edge: a new window, the whole limit again.
      await clock.set(end + 1000);
      const next = await spendUntilRefused(sdk);
      assert.equal(next.admitted.length, admitted.length, "the new window admits what the old one did");
      for (const id of next.admitted)
        assert.ok(Date.parse((await auditRecordOf(stack, id)).time) >= end, "admitted in the new window");
    });
  }
});
