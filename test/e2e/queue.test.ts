/**
 * Pool queues through real Envoy (docs/scheduling.md, "Priority and fair share"): with pool A's slots held
 * by long answers, a higher class is served before a lower one that came first, a team that sent little
 * is served before another team's backlog drains, and requests that cannot be served are shed (429
 * `pool_busy` for a sheddable class, 503 `pool_saturated` otherwise, Retry-After, OpenAI's and Anthropic's
 * shapes); a wait past Envoy's 2 s message_timeout succeeds, a client that leaves frees its place and no
 * slot leaks. Two extproc replicas sharing Redis keep one pool's maxInFlight on the model server.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { sha256Hex } from "../../extproc/policy/index.js";
import { startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { startRedis, type RedisServer } from "../harness/redis.js";
import { anthropic } from "./agents-support.js";
import {
  auditRecordOf,
  auditRecords,
  client,
  extprocMetrics,
  markForwarded,
  sampleValue,
} from "./helpers.js";

const MODEL = "llama-3.1-8b-instruct";
const POOL = "pool-a";
/** 24 words: the demo server then generates exactly max_tokens tokens (when max_tokens ≤ 28). */
const PROMPT = Array.from({ length: 24 }, (_, i) => `word${i}`).join(" ");

/** Keys by their key id; each id's class comes from `priority.rules` (none: `standard`). */
const KEYS = {
  holder: { key: "sk-q-holder", team: "research" },
  critical: { key: "sk-q-critical", team: "research" },
  interactive: { key: "sk-q-interactive", team: "research" },
  batch: { key: "sk-q-batch", team: "research" },
  scavenger: { key: "sk-q-scavenger", team: "research" },
  filler: { key: "sk-q-filler", team: "research" },
  leaver: { key: "sk-q-leaver", team: "research" },
  heavy: { key: "sk-q-heavy", team: "heavy" },
  light: { key: "sk-q-light", team: "light" },
} as const;
type KeyName = keyof typeof KEYS;

/** Pool A: two slots, eight places in the queue; five classes, highest first. */
function queuePolicy(doc: PolicyDoc, queue: PolicyDoc, quota?: PolicyDoc): void {
  doc.teams.heavy = { description: "sends much", models: ["*"] };
  doc.teams.light = { description: "sends little", models: ["*"] };
  for (const [id, { key, team }] of Object.entries(KEYS))
    doc.keys.push({ id: `q-${id}`, team, sha256: sha256Hex(key) });
  doc.pools[POOL].scheduling = { intervalMs: 50, staleAfterIntervals: 10, queue };
  doc.priority = {
    classes: [
      { name: "critical" },
      // Short waits: shed by timeout well before the holders' answers end.
      { name: "interactive", maxWaitMs: 300 },
      { name: "standard" },
      { name: "batch", sheddable: true, maxWaitMs: 4000 },
      { name: "scavenger", sheddable: true, maxWaitMs: 300 },
    ],
    default: "standard",
    rules: ["critical", "interactive", "batch", "scavenger"].map((c) => ({
      scope: { key: `q-${c}` },
      class: c,
    })),
  };
  if (quota) doc.quota = quota;
}

/** What a client saw of one streamed chat request. */
interface Outcome {
  readonly status: number;
  readonly requestId: string | null;
  /** Date.now() at the response headers (the request was admitted before) and at the stream's end. */
  readonly firstByteAt: number;
  readonly endedAt: number;
  readonly text: string;
  readonly error?: InstanceType<typeof OpenAI.APIError>;
}

/** Options of one request: `tokens` generated, `tokenDelayMs` apart (the demo server's per-request delay). */
interface Ask {
  readonly tokens?: number;
  readonly tokenDelayMs?: number;
  readonly content?: string;
  readonly signal?: AbortSignal;
}

/** One streamed chat completion through the gateway with the OpenAI SDK; a refusal is returned, not thrown. */
async function ask(stack: Stack, who: KeyName, options: Ask = {}): Promise<Outcome> {
  const { tokens = 2, tokenDelayMs = 0, content = PROMPT, signal } = options;
  const headers: Record<string, string> = tokenDelayMs
    ? { "x-demo-token-delay-ms": String(tokenDelayMs) }
    : {};
  try {
    const { data, response } = await client(stack, KEYS[who].key, headers)
      .chat.completions.create(
        { model: MODEL, messages: [{ role: "user", content }], max_tokens: tokens, stream: true },
        { signal },
      )
      .withResponse();
    const firstByteAt = Date.now();
    let text = "";
    for await (const chunk of data) text += chunk.choices[0]?.delta.content ?? "";
    return {
      status: response.status,
      requestId: response.headers.get("x-request-id"),
      firstByteAt,
      endedAt: Date.now(),
      text,
    };
  } catch (err) {
    if (!(err instanceof OpenAI.APIError) || err instanceof OpenAI.APIUserAbortError) throw err;
    const at = Date.now();
    return {
      status: err.status ?? 0,
      requestId: err.headers?.get("x-request-id") ?? null,
      firstByteAt: at,
      endedAt: at,
      text: "",
      error: err,
    };
  }
}

/** Checks a refusal's OpenAI shape and Retry-After; returns the error's message. */
function assertShed(outcome: Outcome, status: number, code: string, type: string): string {
  const { error } = outcome;
  assert.ok(error, `refused, not ${outcome.status}`);
  assert.equal(error.status, status, error.message);
  assert.equal(error.code, code, error.message);
  assert.equal(error.type, type, error.message);
  if (status === 429) assert.ok(error instanceof OpenAI.RateLimitError);
  const retryAfter = error.headers?.get("retry-after") ?? "";
  assert.match(retryAfter, /^[1-9]\d*$/, "Retry-After in whole seconds");
  return error.message;
}

describe("pool queues on one replica", () => {
  let stack: Stack;
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    sampleValue(await extprocMetrics(stack), name, { pool: POOL, ...labels });
  const waiting = () => metric("llm_gateway_queue_waiting");
  const untilWaiting = (n: number) =>
    waitFor(`${n} waiting in the queue`, async () => (await waiting()) === n, 5_000);
  /**
   * Holds both slots with answers of `tokens` tokens 100 ms apart (one per entry), resolving once both are
   * admitted; `done` resolves with their outcomes.
   */
  const hold = async (...tokens: number[]): Promise<{ done: Promise<Outcome[]> }> => {
    const done = Promise.all(tokens.map((t) => ask(stack, "holder", { tokens: t, tokenDelayMs: 100 })));
    await waitFor(
      "the holders admitted",
      async () => (await metric("llm_gateway_queue_in_flight")) === tokens.length,
      5_000,
    );
    return { done };
  };
  const shedCount = (cls: string, reason: string) =>
    metric("llm_gateway_queue_shed_total", { class: cls, reason });

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-queue-"));
    const policyFile = writePolicy(dir, (doc) =>
      queuePolicy(doc, { maxInFlight: 2, maxDepth: 8, maxWaitMs: 5000 }),
    );
    stack = await startStack({ policyFile, workDir: dir });
  });
  after(() => stack?.stop());

  it("serves a critical request before a batch one that queued first", async () => {
    const waitCountBefore = await metric("llm_gateway_queue_wait_seconds_count", { class: "critical" });
    // One slot frees after ~0.8 s, the other after ~1.8 s.
    const held = await hold(8, 18);
    const batch = ask(stack, "batch");
    await untilWaiting(1);
    // It holds its slot a second: the batch request waits for the other holder's.
    const critical = ask(stack, "critical", { tokens: 10, tokenDelayMs: 100 });
    await untilWaiting(2);
    const [[h1, h2], b, c] = await Promise.all([held.done, batch, critical]);
    for (const o of [h1!, h2!, b, c]) assert.equal(o.status, 200, o.error?.message);
    // The critical one took the first free slot; the batch one, first in the queue, the second.
    assert.ok(c.firstByteAt < b.firstByteAt, "critical admitted first");
    assert.ok(
      c.firstByteAt < Math.max(h1!.endedAt, h2!.endedAt),
      "critical admitted at the first slot freed",
    );
    assert.ok(b.firstByteAt - c.firstByteAt >= 500, `a slot apart: ${b.firstByteAt - c.firstByteAt} ms`);
    const [bRecord, cRecord] = await Promise.all([
      auditRecordOf(stack, b.requestId),
      auditRecordOf(stack, c.requestId),
    ]);
    assert.equal(bRecord.class, "batch");
    assert.equal(cRecord.class, "critical");
    // Each waited for its slot; the batch one, there first, the longer.
    assert.ok(cRecord.queued_ms! >= 400, `critical queued ${cRecord.queued_ms} ms`);
    assert.ok(bRecord.queued_ms! > cRecord.queued_ms! + 500, `batch queued ${bRecord.queued_ms} ms`);
    const holderRecord = await auditRecordOf(stack, h1!.requestId);
    assert.deepEqual([holderRecord.class, holderRecord.queued_ms! < 50], ["standard", true]);
    assert.equal(
      (await metric("llm_gateway_queue_wait_seconds_count", { class: "critical" })) - waitCountBefore,
      1,
    );
  });

  it("serves a team that sent little before another team's backlog drains", async () => {
    const held = await hold(8, 8);
    // Six of the heavy team's requests wait, then two of the light team's; each answer takes ~200 ms.
    const short = { tokens: 4, tokenDelayMs: 50 };
    const heavy = Array.from({ length: 6 }, () => ask(stack, "heavy", short));
    await untilWaiting(6);
    const light = Array.from({ length: 2 }, () => ask(stack, "light", short));
    await untilWaiting(8);
    const [, heavyDone, lightDone] = await Promise.all([held.done, Promise.all(heavy), Promise.all(light)]);
    for (const o of [...heavyDone, ...lightDone]) assert.equal(o.status, 200, o.error?.message);
    const heavyStarts = heavyDone.map((o) => o.firstByteAt).sort((a, b) => a - b);
    const lightLast = Math.max(...lightDone.map((o) => o.firstByteAt));
    // Two at a time: the light team's two go in the first two rounds, beside the heavy team's first two (in
    // arrival order they would go last, after all six).
    assert.ok(
      lightLast < heavyStarts[2]!,
      `light team served by ${lightLast - heavyStarts[0]!} ms, heavy team's third at ${heavyStarts[2]! - heavyStarts[0]!} ms`,
    );
    const records = await Promise.all(
      [...heavyDone, ...lightDone].map((o) => auditRecordOf(stack, o.requestId)),
    );
    assert.ok(records.every((r) => r.class === "standard" && r.queued_ms! > 0));
  });

  it("sheds what cannot be served in its class's wait: 429 pool_busy when sheddable, 503 pool_saturated otherwise", async () => {
    const before = await Promise.all([
      shedCount("scavenger", "timeout"),
      shedCount("interactive", "timeout"),
    ]);
    const held = await hold(15, 15);
    const started = Date.now();
    const anthropicShed = anthropic(stack, KEYS.scavenger.key)
      .messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: "user", content: PROMPT }] })
      .then(
        () => assert.fail("the Messages request was served"),
        (err: unknown) => err,
      );
    const [scavenger, interactive, messagesErr] = await Promise.all([
      ask(stack, "scavenger"),
      ask(stack, "interactive"),
      anthropicShed,
    ]);
    const elapsed = Date.now() - started;
    assert.match(
      assertShed(scavenger, 429, "pool_busy", "rate_limit_error"),
      /no slot came free within 300 ms/,
    );
    assert.match(
      assertShed(interactive, 503, "pool_saturated", "server_error"),
      /priority class interactive/,
    );
    assert.ok(messagesErr instanceof Anthropic.RateLimitError, String(messagesErr));
    assert.equal((messagesErr.error as { error?: { type?: string } }).error?.type, "rate_limit_error");
    assert.match(messagesErr.headers?.get("retry-after") ?? "", /^[1-9]\d*$/);
    // Refused after their 300 ms, long before a slot came free (~1.5 s).
    assert.ok(elapsed >= 300 && elapsed < 1200, `refused after ${elapsed} ms`);
    const after = await Promise.all([shedCount("scavenger", "timeout"), shedCount("interactive", "timeout")]);
    assert.deepEqual([after[0] - before[0], after[1] - before[1]], [2, 1]);
    const record = await auditRecordOf(stack, scavenger.requestId);
    assert.deepEqual(
      [record.status, record.reason, record.class, record.queued_ms],
      [429, "pool_busy", "scavenger", undefined],
    );
    for (const o of await held.done) assert.equal(o.status, 200);
  });

  it("refuses at once when the queue is full, and lets a higher class push a sheddable one out", async () => {
    const counts = () =>
      Promise.all([
        shedCount("batch", "queue_full"),
        shedCount("batch", "displaced"),
        shedCount("standard", "queue_full"),
      ]);
    const before = await counts();
    const held = await hold(20, 20);
    // The queue's eight places: seven standard requests, then one batch request (last in order).
    const fillers = Array.from({ length: 7 }, () => ask(stack, "filler"));
    await untilWaiting(7);
    const pushedOut = ask(stack, "batch");
    await untilWaiting(8);

    // Another batch request: nothing below it to push out.
    let started = Date.now();
    const fullBatch = await ask(stack, "batch");
    assert.match(
      assertShed(fullBatch, 429, "pool_busy", "rate_limit_error"),
      /its queue is full \(8 waiting\)/,
    );
    assert.ok(Date.now() - started < 500, "refused at once");

    // A critical request takes the batch request's place.
    const critical = ask(stack, "critical");
    const displaced = await pushedOut;
    assert.match(
      assertShed(displaced, 429, "pool_busy", "rate_limit_error"),
      /a request of a higher priority class took its place/,
    );
    await untilWaiting(8);

    // Now the queue holds no sheddable request: a standard one is refused at once, with 503.
    started = Date.now();
    const fullStandard = await ask(stack, "filler");
    assert.match(assertShed(fullStandard, 503, "pool_saturated", "server_error"), /its queue is full/);
    assert.ok(Date.now() - started < 500, "refused at once");
    const after = await counts();
    assert.deepEqual(
      after.map((n, i) => n - before[i]!),
      [1, 1, 1],
      "shed: batch queue_full, batch displaced, standard queue_full",
    );

    // Everyone who kept a place is served once the holders end.
    for (const o of [...(await held.done), ...(await Promise.all(fillers)), await critical])
      assert.equal(o.status, 200, o.error?.message);
    assert.equal(await waiting(), 0);
  });

  it("serves a request that waited longer than Envoy's 2 s message_timeout", async () => {
    const held = await hold(25, 25);
    const started = Date.now();
    const waited = await ask(stack, "filler");
    assert.equal(waited.status, 200, waited.error?.message);
    assert.ok(waited.text.startsWith("This is"), waited.text);
    assert.ok(Date.now() - started > 2000, `served after ${Date.now() - started} ms`);
    const record = await auditRecordOf(stack, waited.requestId);
    assert.ok(record.queued_ms! > 2000, `queued ${record.queued_ms} ms`);
    assert.deepEqual([record.status, record.reason, record.class], [200, "ok", "standard"]);
    await held.done;
  });

  it("frees the place of a client that leaves while queued", async () => {
    // One slot frees after ~1 s, the other after ~2.5 s.
    const held = await hold(10, 25);
    const since = markForwarded(stack);
    const leaving = new AbortController();
    const left = ask(stack, "leaver", { content: `leaving ${PROMPT}`, signal: leaving.signal }).then(
      () => assert.fail("the leaving request was answered"),
      (err: unknown) => err,
    );
    await untilWaiting(1);
    const next = ask(stack, "filler");
    await untilWaiting(2);
    leaving.abort();
    assert.ok((await left) instanceof OpenAI.APIUserAbortError);
    await untilWaiting(1);
    const [holders, served] = await Promise.all([held.done, next]);
    assert.equal(served.status, 200, served.error?.message);
    // First in the queue once the other left: it took the first slot freed, not the second.
    assert.ok(
      served.firstByteAt < Math.max(...holders.map((h) => h.endedAt)) - 500,
      "admitted at the first slot freed",
    );
    const gone = auditRecords(stack).filter((r) => r.key_id === "q-leaver");
    assert.equal(gone.length, 1);
    assert.deepEqual(
      [gone[0]!.reason, gone[0]!.class, gone[0]!.queued_ms, gone[0]!.status],
      ["closed_before_response", "standard", undefined, null],
    );
    assert.ok(
      since.all().every((f) => !f.req.body.includes("leaving word0")),
      "the request that left never reached the model server",
    );
    assert.equal(await waiting(), 0);
  });

  it("leaks no slot: after all of it, maxInFlight requests go through at once", async () => {
    await waitFor("nothing in flight", async () => (await metric("llm_gateway_queue_in_flight")) === 0);
    assert.equal(await waiting(), 0);
    // Each holds its slot ~400 ms: a slot still taken would make one of them wait that long.
    const burst = await Promise.all([0, 1].map(() => ask(stack, "filler", { tokens: 8, tokenDelayMs: 50 })));
    for (const o of burst) {
      assert.equal(o.status, 200, o.error?.message);
      const record = await auditRecordOf(stack, o.requestId);
      assert.ok(record.queued_ms! < 50, `queued ${record.queued_ms} ms`);
    }
    assert.ok(Math.abs(burst[0]!.firstByteAt - burst[1]!.firstByteAt) < 200, "both ran at once");
  });

  it("reports waits and sheds by class and reason", async () => {
    const text = await extprocMetrics(stack);
    const of = (name: string, labels: Record<string, string>) =>
      sampleValue(text, name, { pool: POOL, ...labels });
    // Every queued request that was served was counted with its wait; the batch one waited over a second.
    assert.ok(of("llm_gateway_queue_wait_seconds_sum", { class: "batch" }) > 1);
    assert.ok(of("llm_gateway_queue_wait_seconds_count", { class: "standard" }) >= 20);
    for (const [cls, reason, n] of [
      ["scavenger", "timeout", 2],
      ["interactive", "timeout", 1],
      ["batch", "queue_full", 1],
      ["batch", "displaced", 1],
      ["standard", "queue_full", 1],
      ["critical", "timeout", 0],
    ] as const)
      assert.equal(of("llm_gateway_queue_shed_total", { class: cls, reason }), n, `${cls} ${reason}`);
    assert.equal(of("llm_gateway_queue_waiting", {}), 0);
    assert.equal(of("llm_gateway_queue_in_flight", {}), 0);
  });
});

describe("pool queues shared through Redis by two extproc replicas", () => {
  let redis: RedisServer;
  let stack: Stack;

  before(async () => {
    redis = await startRedis();
    const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-queue-redis-"));
    const policyFile = writePolicy(dir, (doc) =>
      queuePolicy(
        doc,
        { maxInFlight: 2, maxDepth: 16, maxWaitMs: 10_000 },
        {
          store: "redis",
          redis: { url: redis.url, commandTimeoutMs: 2000 },
          onStoreFailure: "fail-closed",
          replicas: 2,
        },
      ),
    );
    stack = await startStack({
      policyFile,
      workDir: dir,
      extprocReplicas: 2,
      // Up to eight sequences at once on the server, so only the gateway's queue limits them; 20 ms a token.
      capacity: { [POOL]: { maxSequences: 8, decodeMsPerToken: 20, prefillMsPerToken: 0 } },
    });
  });
  after(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  it("keeps one pool's maxInFlight across both replicas", async () => {
    const server = stack.pools[POOL]!.capacity!;
    // Ten streamed requests of ~400 ms at once, spread over both replicas by Envoy.
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => ask(stack, "filler", { tokens: 20 })),
    );
    for (const o of outcomes) {
      assert.equal(o.status, 200, o.error?.message);
      assert.equal(o.text.split(" ").length, 20, o.text);
    }
    // The server's own high-water mark: never more than the pool's two, and two were reached.
    assert.equal(server.snapshot().peakRunning, 2);
    const records = await Promise.all(outcomes.map((o) => auditRecordOf(stack, o.requestId)));
    // Both replicas admitted some of them: the limit held across them, not within each.
    const [first, second] = stack.auditLogs.map(
      (file) =>
        records.filter((r) =>
          auditRecords({ ...stack, auditLogs: [file] }).some((x) => x.request_id === r.request_id),
        ).length,
    );
    assert.ok(first! > 0 && second! > 0, `replicas admitted ${first} and ${second}`);
    // Five rounds of two: the last ones waited about four answers' time.
    const queued = records.map((r) => r.queued_ms!).sort((a, b) => a - b);
    assert.ok(queued[9]! >= 1200, `longest wait ${queued[9]} ms`);
    assert.ok(queued.filter((q) => q > 200).length >= 6, `waits ${queued.join(", ")}`);
    const text = await extprocMetrics(stack);
    assert.equal(sampleValue(text, "llm_gateway_queue_waiting", { pool: POOL }), 0);
    assert.equal(sampleValue(text, "llm_gateway_queue_in_flight", { pool: POOL }), 0);
  });
});
