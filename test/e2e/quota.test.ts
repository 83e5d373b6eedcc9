/**
 * Quotas through real Envoy: admission before forwarding holds limits exactly under concurrency, on one
 * replica (memory store) and on two replicas sharing Redis; reservations reconcile to real usage (also
 * when the server sends none, and when the client disconnects); Redis outages behave as policy says.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI, { APIError, RateLimitError } from "openai";
import { sha256Hex } from "../../extproc/policy/index.js";
import { countTokensSync } from "../../extproc/tokens/index.js";
import { CLEAR_OF_WINDOW_EDGES, freePort, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { startRedis, type RedisServer } from "../harness/redis.js";
import {
  applyPolicyChange,
  auditRecordOf,
  client,
  extprocMetrics,
  openStream,
  sampleValue,
} from "./helpers.js";

/** 24 words: the demo server then always generates exactly max_tokens tokens (when max_tokens ≤ 28). */
const LONG_PROMPT = Array.from({ length: 24 }, (_, i) => `word${i}`).join(" ");
const MODEL = "llama-3.1-8b-instruct";

/** OpenAI's (Go's) duration style of x-ratelimit-reset-*: `250ms`, `1.5s`, `1m0s`, `2h3m0s`. */
const GO_DURATION = /^(\d+h)?(\d+m)?\d+(\.\d+)?m?s$/;

type Outcome = { status: number; error?: unknown; headers?: Headers };

async function call(
  c: OpenAI,
  body: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming>,
): Promise<Outcome> {
  try {
    const { response } = await c.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: LONG_PROMPT }], max_tokens: 10, ...body })
      .withResponse();
    return { status: response.status, headers: response.headers };
  } catch (err) {
    if (err instanceof OpenAI.APIError) return { status: err.status ?? 0, error: err, headers: err.headers };
    throw err;
  }
}

/** Sends `total` requests from `clients` concurrent clients; returns every outcome. */
async function burst(c: OpenAI, total: number, clients: number, body = {}): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        next++;
        outcomes.push(await call(c, body));
      }
    }),
  );
  return outcomes;
}

const tempDir = () => mkdtempSync(path.join(tmpdir(), "llm-gateway-quota-"));

/** Test keys, one per scenario, so no test spends another's quota. All in team research. */
const KEYS = {
  headers: "sk-test-headers",
  rpm: "sk-test-rpm",
  tokens: "sk-test-tokens",
  stream: "sk-test-stream",
  budget: "sk-test-budget",
  concurrency: "sk-test-concurrency",
} as const;

/** Adds the test keys and one limit per scenario; `store` settings go under `quota`. */
function quotaPolicy(doc: PolicyDoc, quota: PolicyDoc = { store: "memory" }): void {
  for (const [name, key] of Object.entries(KEYS))
    doc.keys.push({ id: `t-${name}`, team: "research", sha256: sha256Hex(key) });
  doc.models[MODEL].price = { input: 0, output: 1000 }; // 0.001 per output token
  doc.limits = [
    { id: "headers", scope: { key: "t-headers" }, requestsPerMinute: 20, tokensPerMinute: 100_000 },
    { id: "rpm", scope: { key: "t-rpm" }, requestsPerMinute: 20 },
    { id: "output", scope: { key: "t-tokens", model: MODEL }, tokensPerDay: 200, countTokens: "output" },
    { id: "stream", scope: { key: "t-stream" }, tokensPerDay: 300, countTokens: "output" },
    { id: "budget", scope: { key: "t-budget", model: MODEL }, budgetPerMonth: 0.1 },
    { id: "one-at-a-time", scope: { key: "t-concurrency" }, concurrentRequests: 1 },
  ];
  doc.quota = quota;
}

/** Checks the RPM and output-token caps hold exactly with 25 concurrent clients. */
async function assertExactLimits(stack: Stack): Promise<void> {
  const started = Date.now();
  const rpm = await burst(client(stack, KEYS.rpm), 60, 25);
  const elapsedMinutes = (Date.now() - started) / 60_000;
  const admitted = rpm.filter((o) => o.status === 200).length;
  // A token bucket of 20/min: 20 at once, plus what refilled while the burst ran (none in under 3 s).
  const statuses = rpm.map((o) => `${o.status} ${(o.error as APIError | undefined)?.code ?? ""}`);
  assert.ok(
    admitted >= 20 && admitted <= 20 + Math.floor(20 * elapsedMinutes),
    `admitted ${admitted}: ${statuses.join(", ")}`,
  );
  for (const o of rpm.filter((x) => x.status !== 200)) {
    assert.equal(o.status, 429);
    assert.ok(o.error instanceof RateLimitError);
    assert.equal((o.error as RateLimitError).code, "rate_limit_exceeded");
    assert.ok(Number(o.headers?.get("retry-after")) >= 1);
  }

  // 200 output tokens a day, 10 per request (reserved 10, generated exactly 10): exactly 20 requests.
  const tokens = await burst(client(stack, KEYS.tokens), 50, 25);
  assert.equal(tokens.filter((o) => o.status === 200).length, 20);
  assert.equal(tokens.filter((o) => o.status === 429).length, 30);
}

describe("quotas with the in-memory store", () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    dir = tempDir();
    stack = await startStack({
      policyFile: writePolicy(dir, (doc) => quotaPolicy(doc)),
      workDir: dir,
      clockAt: CLEAR_OF_WINDOW_EDGES,
    });
  });
  after(() => stack?.stop());

  it("sends OpenAI's rate-limit headers on every response, 429s included", async () => {
    const c = client(stack, KEYS.headers);
    // 20 requests a minute: the 20 admitted count down, the 21st is refused.
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 21; i++) outcomes.push(await call(c, {}));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      [...Array.from({ length: 20 }, () => 200), 429],
    );
    for (const o of outcomes) {
      assert.equal(o.headers!.get("x-ratelimit-limit-requests"), "20");
      assert.equal(o.headers!.get("x-ratelimit-limit-tokens"), "100000");
      assert.match(o.headers!.get("x-ratelimit-reset-requests")!, GO_DURATION);
      assert.match(o.headers!.get("x-ratelimit-reset-tokens")!, GO_DURATION);
      const tokensLeft = Number(o.headers!.get("x-ratelimit-remaining-tokens"));
      assert.ok(Number.isInteger(tokensLeft) && tokensLeft >= 0 && tokensLeft <= 100_000, String(tokensLeft));
    }
    // The first admission took its reservation from a full bucket (later ones refill at 100,000 a minute).
    assert.ok(Number(outcomes[0]!.headers!.get("x-ratelimit-remaining-tokens")) < 100_000);
    assert.deepEqual(
      outcomes.map((o) => o.headers!.get("x-ratelimit-remaining-requests")),
      [...Array.from({ length: 20 }, (_, i) => String(19 - i)), "0"],
    );
    assert.ok(Number(outcomes[20]!.headers!.get("retry-after")) >= 1);
  });

  it("holds request and token limits exactly under 25 concurrent clients", async () => {
    await assertExactLimits(stack);
  });

  it("reconciles a stream to its real usage, counting the text when the server sends no usage", async () => {
    // Reserves 250 output tokens; the server generates 6 and reports no usage: the streamed text is counted.
    const noUsage = client(stack, KEYS.stream, { "x-demo-omit-usage": "1" });
    const { data: stream, response } = await noUsage.chat.completions
      .create({
        model: MODEL,
        messages: [{ role: "user", content: "one two" }],
        max_tokens: 250,
        stream: true,
      })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    const charged = countTokensSync([text], "cl100k_base");
    assert.ok(charged > 0 && charged < 50);
    // extproc settles as it writes the stream's audit record, in the same turn of its event loop (the
    // memory store and a count this short run inline), and the record reaches the file only after that.
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    // The audit records what was charged, counted by the gateway.
    assert.equal(record.usage_source, "counted");
    assert.equal(record.usage?.completion_tokens, charged);
    const c = client(stack, KEYS.stream);
    const short = [{ role: "user" as const, content: "x" }];
    // One token more than is left is refused (and takes nothing)...
    assert.equal((await call(c, { max_tokens: 300 - charged + 1, messages: short })).status, 429);
    // ...exactly what is left fits: the reservation of 250 was replaced by the real count.
    assert.equal((await call(c, { max_tokens: 300 - charged, messages: short })).status, 200);
  });

  it("stops spending at the monthly budget, each refusal counted on /metrics by limit and measure", async () => {
    const rejections = async (measure: string) =>
      sampleValue(await extprocMetrics(stack), "llm_gateway_quota_rejections_total", {
        limit: "budget",
        measure,
      });
    const before = { spend: await rejections("spend"), tokens: await rejections("tokens") };
    // 0.10 at 0.001 per output token, 10 tokens per request: exactly 10 requests.
    const outcomes = await burst(client(stack, KEYS.budget), 14, 4);
    assert.equal(outcomes.filter((o) => o.status === 200).length, 10);
    const refused = outcomes.filter((o) => o.status === 429);
    assert.equal(refused.length, 4);
    for (const o of refused) assert.equal((o.error as RateLimitError).code, "insufficient_quota");
    assert.equal((await rejections("spend")) - before.spend, 4);
    assert.equal((await rejections("tokens")) - before.tokens, 0);
  });

  it("frees a concurrency slot when the client disconnects mid-stream", async () => {
    const stream = await openStream(
      stack,
      KEYS.concurrency,
      { model: MODEL, messages: [{ role: "user", content: "slow" }], max_tokens: 20 },
      { "x-demo-token-delay-ms": "100" },
    );
    const c = client(stack, KEYS.concurrency);
    const blocked = await call(c, {});
    assert.equal(blocked.status, 429, "a second concurrent request was admitted");
    assert.match((blocked.error as Error).message, /concurrent requests/);
    stream.abort();
    await auditRecordOf(stack, stream.requestId);
    await waitFor("slot freed", async () => (await call(c, {})).status === 200);
  });

  it("applies store settings (quota:) on restart only; everything else at once", async () => {
    const c = client(stack, KEYS.concurrency);
    // A Redis store nobody listens on, failing closed: in force, every limited request would be a 503.
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    await applyPolicyChange(stack, () =>
      writePolicy(dir, (doc) => {
        quotaPolicy(doc, { store: "redis", redis: { url: deadRedis }, onStoreFailure: "fail-closed" });
        doc.limits.find((l: PolicyDoc) => l.id === "one-at-a-time").concurrentRequests = 2;
      }),
    );
    // The reload applied the limits (two at a time now) but kept the memory store.
    const streams = await Promise.all(
      [0, 1].map(() =>
        openStream(
          stack,
          KEYS.concurrency,
          { model: MODEL, messages: [{ role: "user", content: "slow" }], max_tokens: 20 },
          { "x-demo-token-delay-ms": "100" },
        ),
      ),
    );
    for (const stream of streams) stream.abort();
    for (const stream of streams) await auditRecordOf(stack, stream.requestId);
    await waitFor("slots freed", async () => (await call(c, {})).status === 200);
    // Restarted, extproc uses the store the policy names.
    await stack.stopExtProc();
    await stack.startExtProc();
    const down = await call(c, {});
    assert.equal(down.status, 503);
    assert.equal((down.error as APIError).code, "quota_store_unavailable");
    await applyPolicyChange(stack, () => writePolicy(dir, (doc) => quotaPolicy(doc)));
    await stack.stopExtProc();
    await stack.startExtProc();
    assert.equal((await call(c, {})).status, 200);
  });
});

/** A fresh redis-server and two extproc replicas sharing it, with the test limits and `quota` settings. */
async function startRedisStack(quota: PolicyDoc): Promise<{ redis: RedisServer; stack: Stack }> {
  const redis = await startRedis();
  const dir = tempDir();
  const policyFile = writePolicy(dir, (doc) =>
    // 2 s per command, not the default 250 ms: on a loaded 2-core machine a burst of 25 clients can keep a
    // command waiting longer, and these tests are about exact counts, not about Redis being slow.
    quotaPolicy(doc, { store: "redis", redis: { url: redis.url, commandTimeoutMs: 2000 }, ...quota }),
  );
  // An advancing owned clock: Redis expires window keys relative to it (window end + grace − now).
  const stack = await startStack({
    policyFile,
    workDir: dir,
    extprocReplicas: 2,
    clockAt: CLEAR_OF_WINDOW_EDGES,
  });
  return { redis, stack };
}

async function stopRedisStack(redis: RedisServer | undefined, stack: Stack | undefined): Promise<void> {
  await stack?.stop();
  await redis?.stop();
}

describe("quotas shared through Redis by two extproc replicas", () => {
  let redis: RedisServer;
  let stack: Stack;
  before(async () => {
    ({ redis, stack } = await startRedisStack({ onStoreFailure: "fail-closed" }));
  });
  after(() => stopRedisStack(redis, stack));

  it("holds request and token limits exactly across replicas", async () => {
    await assertExactLimits(stack);
    // Both replicas took part.
    const perReplica = await Promise.all(
      stack.metricsPorts.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()),
    );
    for (const text of perReplica)
      assert.ok(sampleValue(text, "llm_gateway_requests_total", { status: "200" }) > 0);
  });

  it("revokes an identity on every replica within a second through Redis, across restarts, and reinstates it", async () => {
    const { runCli } = await import("../../extproc/cli/main.js");
    const out = { write: () => true };
    // A key with requests to spare (the exact-limits test spent t-rpm's): reinstated, it must get a 200.
    const c = client(stack, KEYS.headers);
    const refusedEverywhere = async () => {
      // Ten requests in a row spread over both replicas (Envoy balances streams round robin).
      const statuses = await Promise.all(Array.from({ length: 10 }, () => call(c, {}).then((o) => o.status)));
      return statuses.every((s) => s === 401);
    };
    assert.equal(
      await runCli(["key", "revoke", "--id", "t-headers", "--redis", redis.url], { out, err: out } as never),
      0,
    );
    // Timed from the moment the revocation is in Redis (the CLI has returned), not from the CLI's connect.
    const revokedAt = Date.now();
    await waitFor("revoked on every replica", refusedEverywhere, 5000);
    const elapsed = Date.now() - revokedAt;
    assert.ok(elapsed < 1000, `refused on every replica ${elapsed} ms after the revocation`);
    // The revocation lives in Redis, not in the replicas: restarted, they still refuse the identity.
    await stack.stopExtProc();
    await stack.startExtProc();
    assert.ok(await refusedEverywhere(), "a restarted replica forgot the revocation");
    assert.equal(
      await runCli(["key", "reinstate", "--id", "t-headers", "--redis", redis.url], {
        out,
        err: out,
      } as never),
      0,
    );
    let reinstated = 0;
    await waitFor("reinstated", async () => (reinstated = (await call(c, {})).status) !== 401, 5000);
    assert.equal(reinstated, 200);
  });

  it("fails closed with 503 while Redis is down, and recovers by itself", async () => {
    const c = client(stack, KEYS.headers);
    await redis.kill();
    const down = await call(c, {});
    assert.equal(down.status, 503);
    assert.equal((down.error as APIError).code, "quota_store_unavailable");
    assert.equal(sampleValue(await extprocMetrics(stack), "llm_gateway_quota_store_degraded") > 0, true);
    await redis.restart();
    await waitFor("recovery", async () => (await call(c, {})).status === 200, 15_000);
    await waitFor("degraded gauge cleared on both replicas", async () => {
      await call(c, {});
      return sampleValue(await extprocMetrics(stack), "llm_gateway_quota_store_degraded") === 0;
    });
  });
});

describe("local fallback while Redis is down", () => {
  let redis: RedisServer;
  let stack: Stack;
  before(async () => {
    ({ redis, stack } = await startRedisStack({ onStoreFailure: "local", replicas: 2 }));
  });
  after(() => stopRedisStack(redis, stack));

  it("admits against each replica's share of the limit, then returns to Redis", async () => {
    await redis.kill();
    // 200 output tokens split over 2 replicas: 100 each, 10 per request: exactly 10 on each replica (Envoy
    // spreads the 50 requests over both, so each sees far more than 10).
    const outcomes = await burst(client(stack, KEYS.tokens), 50, 25);
    assert.equal(outcomes.filter((o) => o.status === 200).length, 20);
    assert.equal(outcomes.filter((o) => o.status === 429).length, 30);
    const admittedPerReplica = await Promise.all(
      stack.metricsPorts.map(async (port) =>
        sampleValue(
          await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
          "llm_gateway_requests_total",
          {
            status: "200",
          },
        ),
      ),
    );
    assert.deepEqual(admittedPerReplica, [10, 10]);
    assert.ok(sampleValue(await extprocMetrics(stack), "llm_gateway_quota_store_errors_total") > 0);
    await redis.restart();
    // Back on Redis (empty after the restart): the full daily limit applies again.
    // Recovery is noticed on the next request each replica handles.
    await waitFor(
      "back on redis",
      async () => {
        const ok = (await call(client(stack, KEYS.rpm), {})).status === 200;
        return ok && sampleValue(await extprocMetrics(stack), "llm_gateway_quota_store_degraded") === 0;
      },
      15_000,
    );
  });
});
