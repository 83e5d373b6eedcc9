/**
 * Rebuilding day and month windows from audit records: a fresh in-memory store, records as the audit log
 * holds them, a fixed clock, and admissions through QuotaService afterwards.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import type { Identity } from "../auth/index.js";
import { GatewayError } from "../errors/index.js";
import { createMetrics } from "../metrics/index.js";
import { parsePolicy, sha256Hex, type Policy } from "../policy/index.js";
import { QuotaService } from "./index.js";
import { MemoryQuotaStore } from "./memory.js";
import { replayUsage, type UsageRecord } from "./replay.js";

/** 2026-11-22 12:00 UTC. */
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const HOUR = 3_600_000;

const policy: Policy = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models:
  m1: { pool: pool-a, price: { input: 2, output: 6 } }
  m2: { pool: pool-a, price: { input: 0, output: 0.3 } }
teams: { t: { models: [m1] }, u: { models: [m1] }, v: { models: [m2] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
  - { id: k3, team: u, sha256: ${sha256Hex("key-3")} }
  - { id: k4, team: v, sha256: ${sha256Hex("key-4")} }
limits:
  - { id: daily, scope: { team: "*" }, tokensPerDay: 1000 }
  - { id: monthly, scope: { team: t }, tokensPerMonth: 5000, countTokens: output }
  - { id: budget, scope: { key: k1 }, budgetPerMonth: 0.01 }
  - { id: rpm, scope: { key: k1 }, requestsPerMinute: 1 }
  - { id: micro-budget, scope: { key: k4 }, budgetPerMonth: 0.000003 }
`,
  "p.yaml",
);

const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };
const K3: Identity = { keyId: "k3", team: "u", allowedModels: new Set(["m1"]) };

/** An audit record of k1 (or `who`) using m1 at `time` with `input`/`output` tokens. */
const used = (time: number, input: number, output: number, who = K1): UsageRecord => ({
  time: new Date(time).toISOString(),
  key_id: who.keyId,
  team: who.team,
  environment: null,
  served_model: "m1",
  usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
});

/** Replays `records` into a fresh store, then admits a request of `input`+`output` for `who` at NOW. */
async function afterReplay(records: UsageRecord[], who: Identity, input: number, output: number) {
  const store = new MemoryQuotaStore();
  const summary = await replayUsage(store, policy, records, NOW);
  const service = new QuotaService({
    store,
    shared: false,
    metrics: createMetrics(),
    logger: pino({ level: "silent" }),
    now: () => NOW,
  });
  const outcome = await service
    .admit({
      policy,
      identity: who,
      model: policy.models.get("m1")!,
      requestId: "next",
      estimate: async () => ({ input, output }),
    })
    .then(
      () => "admitted",
      (err: GatewayError) => err.message,
    );
  return { summary, outcome };
}

describe("replayUsage", () => {
  it("keeps a spent daily limit spent, to the token", async () => {
    // 600 + 390 = 990 of 1000 today, for team u (only the daily limit applies to it).
    const records = [used(NOW - 2 * HOUR, 500, 100, K3), used(NOW - HOUR, 300, 90, K3)];
    assert.equal((await afterReplay(records, K3, 10, 0)).outcome, "admitted");
    const over = await afterReplay(records, K3, 11, 0);
    assert.match(over.outcome, /limit 'daily', tokens per day\): limit 1000, remaining 10, requested 11/);
    assert.deepEqual(over.summary, { records: 2, replayed: 2 });
  });

  it("skips the days that are over but keeps their tokens in the month", async () => {
    // Yesterday's 4500 output tokens: not today's daily limit, but 4500 of team t's 5000 a month.
    const records = [used(NOW - 24 * HOUR, 0, 900), used(NOW - 13 * HOUR, 0, 3600)];
    const k2 = { ...K1, keyId: "k2" };
    const month = await afterReplay(records, k2, 0, 501);
    assert.match(
      month.outcome,
      /limit 'monthly', tokens per month\): limit 5000, remaining 500, requested 501/,
    );
    assert.equal((await afterReplay(records, k2, 0, 500)).outcome, "admitted");
  });

  it("re-applies monthly spend at the current prices, whether or not it fitted", async () => {
    // 0.01 a month at 6 per million output tokens: 0.006 + 0.0042 spent, more than the budget.
    const records = [used(Date.UTC(2026, 10, 1), 0, 1000), used(NOW - HOUR, 0, 700)];
    const { outcome } = await afterReplay(records, K1, 0, 1);
    assert.match(
      outcome,
      /^Budget exhausted .*\(limit 'budget', spend per month\): limit 0\.01 \w+, remaining 0\.00/,
    );
  });

  it("sums spend per record, each rounded up to a micro as it was charged", async () => {
    // One output token at 0.3 per million: charged 1 micro each, 3 in all (not 1 for the 3 tokens summed).
    const k4: Identity = { keyId: "k4", team: "v", allowedModels: new Set(["m2"]) };
    const records = [1, 2, 3].map((h) => ({ ...used(NOW - h * HOUR, 0, 1, k4), served_model: "m2" }));
    const store = new MemoryQuotaStore();
    await replayUsage(store, policy, records, NOW);
    const service = new QuotaService({
      store,
      shared: false,
      metrics: createMetrics(),
      logger: pino({ level: "silent" }),
      now: () => NOW,
    });
    const next = service.admit({
      policy,
      identity: k4,
      model: policy.models.get("m2")!,
      requestId: "next",
      estimate: async () => ({ input: 0, output: 1 }),
    });
    await assert.rejects(next, /Budget exhausted .*'micro-budget'/);
  });

  it("ignores records without usage, from another month or the future, or for a model policy dropped", async () => {
    const refused = { ...used(NOW - HOUR, 900, 0, K3), usage: null };
    const lastMonth = used(Date.UTC(2026, 9, 31, 23, 59), 900, 0, K3);
    const future = used(NOW + HOUR, 900, 0, K3);
    const dropped = { ...used(NOW - HOUR, 900, 0, K3), served_model: "m-gone" };
    const unknownCaller = { ...used(NOW - HOUR, 900, 0, K3), key_id: null, team: null };
    const records = [refused, lastMonth, future, dropped, unknownCaller];
    const { summary, outcome } = await afterReplay(records, K3, 1000, 0);
    assert.equal(outcome, "admitted");
    assert.deepEqual(summary, { records: 5, replayed: 0 });
  });

  it("does not rebuild per-minute buckets (they refill within a minute)", async () => {
    const { outcome } = await afterReplay([used(NOW - 1000, 1, 1)], K1, 1, 0);
    assert.equal(outcome, "admitted");
  });

  it("counts tokens as each limit does (total for the daily limit, output for the monthly one)", async () => {
    const store = new MemoryQuotaStore();
    await replayUsage(store, policy, [used(NOW - HOUR, 700, 200)], NOW);
    const service = new QuotaService({
      store,
      shared: false,
      metrics: createMetrics(),
      logger: pino({ level: "silent" }),
      now: () => NOW,
    });
    const admission = await service.admit({
      policy,
      identity: { ...K1, keyId: "k2" },
      model: policy.models.get("m1")!,
      requestId: "next",
      estimate: async () => ({ input: 100, output: 0 }),
    });
    // Daily: 900 of 1000 used → 100 fit exactly; monthly (output only): 200 used, 4800 left.
    assert.ok(admission);
    const remaining = await service
      .admit({
        policy,
        identity: { ...K1, keyId: "k2" },
        model: policy.models.get("m1")!,
        requestId: "after",
        estimate: async () => ({ input: 1, output: 0 }),
      })
      .then(
        () => "admitted",
        (err: Error) => err.message,
      );
    assert.match(remaining, /limit 'daily', tokens per day\): limit 1000, remaining 0/);
  });
});
