/**
 * QuotaService end to end against the in-memory store (and, for the outage paths, a shared store that
 * stands in for an unreachable Redis), with policies written as YAML and a fixed clock.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import type { Identity } from "../auth/index.js";
import type { GatewayError } from "../errors/index.js";
import { gatewayRejectionOf } from "../errors/test-support.js";
import { createMetrics, type GatewayMetrics } from "../metrics/index.js";
import { parsePolicy, sha256Hex, type Model, type Policy } from "../policy/index.js";
import { applicableLimits, auditCost, costMicros, QuotaService, type Admission } from "./index.js";
import { MemoryQuotaStore } from "./memory.js";
import type { Charge, QuotaStore, ReserveResult } from "./store.js";

/** 2026-11-22 12:00 UTC: 12 h before the day ends, 8.5 days before the month ends. */
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

function policyWith(limits: string, quota = ""): Policy {
  return parsePolicy(
    `
version: 1
pools: { pool-a: {} }
models:
  m1: { pool: pool-a, price: { input: 2, output: 6 } }
  m2: { pool: pool-a, price: { input: 0.1, output: 0.3 } }
teams: { t: { models: [m1, m2] }, u: { models: [m1, m2] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
  - { id: k2, team: t, sha256: ${sha256Hex("key-2")} }
  - { id: k3, team: u, sha256: ${sha256Hex("key-3")} }
limits:
${limits}
${quota}
`,
    "p.yaml",
  );
}

const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1", "m2"]) };
const K2: Identity = { keyId: "k2", team: "t", allowedModels: new Set(["m1", "m2"]) };
const K3: Identity = { keyId: "k3", team: "u", allowedModels: new Set(["m1", "m2"]) };

const REDIS = `redis: { url: "redis://redis.invalid:6379" }`;

interface Tokens {
  readonly input: number;
  readonly output: number;
}

/** A QuotaService on a fixed clock, and helpers to admit requests against `policy`. */
function setup(policy: Policy, options: { store?: QuotaStore; shared?: boolean } = {}) {
  const metrics = createMetrics();
  const clock = { now: T0 };
  const service = new QuotaService({
    store: options.store ?? new MemoryQuotaStore(),
    shared: options.shared ?? false,
    metrics,
    logger: pino({ level: "silent" }),
    now: () => clock.now,
  });
  let seq = 0;
  let estimates = 0;
  const admit = (identity: Identity, model = "m1", tokens: Tokens = { input: 100, output: 50 }) =>
    service.admit({
      policy,
      identity,
      model: policy.models.get(model)!,
      requestId: `req-${++seq}`,
      estimate: async () => {
        estimates++;
        return tokens;
      },
    });
  return { service, metrics, clock, admit, estimates: () => estimates };
}

/** Admits and asserts that a reservation was made. */
async function admitted(promise: Promise<Admission | undefined>): Promise<Admission> {
  const admission = await promise;
  assert.ok(admission, "expected a reservation, got no applicable limit");
  return admission;
}

/** Asserts that admission is refused with a GatewayError, and returns it. */
const refused = (promise: Promise<unknown>): Promise<GatewayError> =>
  gatewayRejectionOf(promise, "the request was admitted");

const header = (headers: ReadonlyArray<readonly [string, string]>, name: string) =>
  headers.find(([n]) => n === name)?.[1];

async function gaugeValue(metrics: GatewayMetrics): Promise<number | undefined> {
  return (await metrics.quotaStoreDegraded.get()).values[0]?.value;
}

async function storeErrors(metrics: GatewayMetrics): Promise<number> {
  return (await metrics.quotaStoreErrors.get()).values[0]?.value ?? 0;
}

async function rejections(metrics: GatewayMetrics, limit: string, measure: string): Promise<number> {
  const values = (await metrics.quotaRejections.get()).values;
  return values.find((v) => v.labels.limit === limit && v.labels.measure === measure)?.value ?? 0;
}

/** A shared store (Redis) that can be taken down: while down every call fails as a lost connection would. */
class FlakyStore implements QuotaStore {
  down = false;
  reserves = 0;
  settles = 0;
  private readonly inner = new MemoryQuotaStore();

  async reserve(requestId: string, charges: readonly Charge[], now: number): Promise<ReserveResult> {
    this.reserves++;
    if (this.down) throw new Error("connect ECONNREFUSED 10.0.0.5:6379");
    return this.inner.reserve(requestId, charges, now);
  }

  async check(charges: readonly Charge[], now: number): Promise<ReserveResult> {
    if (this.down) throw new Error("connect ECONNREFUSED 10.0.0.5:6379");
    return this.inner.check(charges, now);
  }

  async settle(
    requestId: string,
    charges: readonly Charge[],
    actual: readonly number[],
    now: number,
  ): Promise<void> {
    this.settles++;
    if (this.down) throw new Error("connect ECONNREFUSED 10.0.0.5:6379");
    return this.inner.settle(requestId, charges, actual, now);
  }

  async close(): Promise<void> {}
}

describe("applicableLimits", () => {
  const policy = policyWith(`
  - { id: by-key, scope: { key: k1 }, requestsPerMinute: 1 }
  - { id: by-team, scope: { team: t }, requestsPerMinute: 1 }
  - { id: by-model, scope: { model: m2 }, requestsPerMinute: 1 }
  - { id: every-key, scope: { key: "*" }, requestsPerMinute: 1 }
  - { id: key-on-model, scope: { key: k1, model: m1 }, requestsPerMinute: 1 }
  - { id: team-u-any-model, scope: { team: u, model: "*" }, requestsPerMinute: 1 }
`);
  const ids = (identity: Identity, model: string) =>
    applicableLimits(policy, identity, policy.models.get(model)!).map((rule) => rule.id);

  it("matches every scope field that is set, in policy order", () => {
    assert.deepEqual(ids(K1, "m1"), ["by-key", "by-team", "every-key", "key-on-model"]);
    assert.deepEqual(ids(K1, "m2"), ["by-key", "by-team", "by-model", "every-key"]);
    assert.deepEqual(ids(K2, "m1"), ["by-team", "every-key"]);
    assert.deepEqual(ids(K3, "m2"), ["by-model", "every-key", "team-u-any-model"]);
    assert.deepEqual(ids(K3, "m1"), ["every-key", "team-u-any-model"]);
  });

  it("finds nothing when the policy has no limits or none matches", () => {
    const none = policyWith("  []");
    assert.deepEqual(applicableLimits(none, K1, none.models.get("m1")!), []);
    const other = policyWith("  - { id: only-k2, scope: { key: k2, model: m2 }, requestsPerMinute: 1 }");
    assert.deepEqual(applicableLimits(other, K1, other.models.get("m2")!), []);
    assert.deepEqual(applicableLimits(other, K2, other.models.get("m1")!), []);
  });
});

describe("costMicros", () => {
  const policy = policyWith("  []");
  const m1 = policy.models.get("m1")!; // 2 per million input tokens, 6 per million output tokens
  const priced = (input: number, output: number): Model => ({ ...m1, price: { input, output } });

  it("charges price per million tokens, in millionths of the currency", () => {
    assert.equal(costMicros(m1, 1_000_000, 0), 2_000_000);
    assert.equal(costMicros(m1, 0, 1_000_000), 6_000_000);
    assert.equal(costMicros(m1, 1000, 500), 5000);
    assert.equal(costMicros(m1, 0, 0), 0);
  });

  it("prices an audit record's usage in the policy's currency, only when there is usage and a price", () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 500 };
    assert.deepEqual(auditCost(m1, "EUR", usage), { micros: 5000, currency: "EUR" });
    assert.equal(auditCost(m1, "EUR", null), undefined);
    assert.equal(auditCost({ ...m1, price: undefined }, "EUR", usage), undefined);
    assert.equal(auditCost(undefined, "EUR", usage), undefined);
  });

  it("rounds a fraction of a millionth up", () => {
    const mini = priced(0.15, 0.6);
    assert.equal(costMicros(mini, 1, 0), 1);
    assert.equal(costMicros(mini, 10, 1), 3); // 1.5 + 0.6 = 2.1
    assert.equal(costMicros(mini, 20, 0), 3); // exactly 3: nothing to round
  });

  it("is free for an unpriced model", () => {
    assert.equal(costMicros({ ...m1, price: undefined }, 1_000_000, 1_000_000), 0);
  });

  it("does not round floating-point noise up to an extra millionth", () => {
    // Sample-policy prices (0.10 in, 0.30 out): 24 × 0.1 + 2 × 0.3 is exactly 3 micros, but in binary
    // floating point it is 3.0000000000000004, which Math.ceil turns into 4.
    const llama = priced(0.1, 0.3);
    assert.equal(costMicros(llama, 24, 2), 3);
    assert.equal(costMicros(priced(1.1, 0), 100, 0), 110);
  });
});

describe("QuotaService", () => {
  it("admits without a reservation, and without estimating, when no limit applies", async () => {
    const policy = policyWith("  - { id: team-u, scope: { team: u }, requestsPerMinute: 1 }");
    const { service } = setup(policy);
    const result = await service.admit({
      policy,
      identity: K1,
      model: policy.models.get("m1")!,
      requestId: "r1",
      estimate: () => assert.fail("estimate must not be called when no limit applies"),
    });
    assert.equal(result, undefined);
  });

  it("estimates once, reserves, and reports OpenAI's x-ratelimit-* headers", async () => {
    const policy = policyWith(
      "  - { id: per-key, scope: { key: k1 }, requestsPerMinute: 10, tokensPerMinute: 1000 }",
    );
    const { admit, estimates } = setup(policy);
    const first = await admitted(admit(K1, "m1", { input: 100, output: 50 }));
    assert.equal(estimates(), 1);
    assert.equal(first.reservedInput, 100);
    assert.equal(first.reservedOutput, 50);
    assert.equal(first.model.name, "m1");
    assert.deepEqual(
      first.charges.map((c) => [c.kind, c.limit, c.amount]),
      [
        ["bucket", 10, 1],
        ["bucket", 1000, 150],
      ],
    );
    // One request refills every 6 s, one token every 60 ms.
    assert.deepEqual(first.headers, [
      ["x-ratelimit-limit-requests", "10"],
      ["x-ratelimit-remaining-requests", "9"],
      ["x-ratelimit-reset-requests", "6s"],
      ["x-ratelimit-limit-tokens", "1000"],
      ["x-ratelimit-remaining-tokens", "850"],
      ["x-ratelimit-reset-tokens", "9s"],
    ]);
    const second = await admitted(admit(K1, "m1", { input: 100, output: 50 }));
    assert.deepEqual(second.headers, [
      ["x-ratelimit-limit-requests", "10"],
      ["x-ratelimit-remaining-requests", "8"],
      ["x-ratelimit-reset-requests", "12s"],
      ["x-ratelimit-limit-tokens", "1000"],
      ["x-ratelimit-remaining-tokens", "700"],
      ["x-ratelimit-reset-tokens", "18s"],
    ]);
  });

  it("reports the tightest bucket per measure when several rules apply", async () => {
    const policy = policyWith(`
  - { id: key-wide, scope: { key: k1 }, requestsPerMinute: 100, tokensPerMinute: 1000 }
  - { id: team-wide, scope: { team: t }, requestsPerMinute: 5, tokensPerMinute: 100000 }
`);
    const { admit } = setup(policy);
    const admission = await admitted(admit(K1));
    assert.equal(admission.charges.length, 4);
    // Requests: the team's 4 of 5 left; tokens: the key's 850 of 1000 left.
    assert.deepEqual(admission.headers, [
      ["x-ratelimit-limit-requests", "5"],
      ["x-ratelimit-remaining-requests", "4"],
      ["x-ratelimit-reset-requests", "12s"],
      ["x-ratelimit-limit-tokens", "1000"],
      ["x-ratelimit-remaining-tokens", "850"],
      ["x-ratelimit-reset-tokens", "9s"],
    ]);
  });

  it("picks the tightest bucket by what remains, not by its limit", async () => {
    const policy = policyWith(`
  - { id: key-wide, scope: { key: k1 }, requestsPerMinute: 100 }
  - { id: on-m2, scope: { model: m2 }, requestsPerMinute: 5 }
`);
    const { admit } = setup(policy);
    for (let i = 0; i < 97; i++) await admitted(admit(K1, "m1"));
    const admission = await admitted(admit(K1, "m2"));
    // key-wide: 2 of 100 left; on-m2: 4 of 5 left.
    assert.deepEqual(admission.headers, [
      ["x-ratelimit-limit-requests", "100"],
      ["x-ratelimit-remaining-requests", "2"],
      ["x-ratelimit-reset-requests", "58.8s"],
    ]);
  });

  it("sends no x-ratelimit-* headers without a per-minute limit", async () => {
    const policy = policyWith("  - { id: daily, scope: { key: k1 }, tokensPerDay: 10000 }");
    const { admit } = setup(policy);
    assert.deepEqual((await admitted(admit(K1))).headers, []);
  });

  it("refuses with 429 rate_limit_exceeded, Retry-After and the limit's name", async () => {
    const policy = policyWith("  - { id: per-key, scope: { key: k1 }, requestsPerMinute: 2 }");
    const { admit, clock, metrics } = setup(policy);
    await admitted(admit(K1));
    await admitted(admit(K1));
    const err = await refused(admit(K1));
    assert.equal(err.code, "rate_limit_exceeded");
    assert.equal(err.status, 429);
    assert.equal(err.type, "rate_limit_error");
    assert.match(err.message, /limit 'per-key'/);
    assert.equal(
      err.message,
      "Rate limit reached for key=k1 (limit 'per-key', requests per minute): limit 2, remaining 0, requested 1. Retry after 30s.",
    );
    // A request refills every 30 s; the bucket is full again in a minute.
    assert.deepEqual(err.headers, [
      ["retry-after", "30"],
      ["x-ratelimit-limit-requests", "2"],
      ["x-ratelimit-remaining-requests", "0"],
      ["x-ratelimit-reset-requests", "1m0s"],
    ]);
    assert.equal(await rejections(metrics, "per-key", "requests"), 1);

    // 200 ms before the next request fits: Retry-After rounds up to one second, never 0.
    clock.now = T0 + 29_800;
    const soon = await refused(admit(K1));
    assert.equal(header(soon.headers, "retry-after"), "1");
    assert.match(soon.message, /Retry after 1s\.$/);
    // Refused requests took nothing: exactly one fits at T0 + 30 s.
    clock.now = T0 + 30_000;
    await admitted(admit(K1));
    await refused(admit(K1));
    assert.equal(await rejections(metrics, "per-key", "requests"), 3);
  });

  it("refuses at once, with no invitation to retry, a request larger than a limit's whole capacity", async () => {
    const policy = policyWith(
      "  - { id: tpm, scope: { team: t }, tokensPerMinute: 1000 }\n  - { id: budget, scope: { team: t }, budgetPerMonth: 0.001 }",
    );
    const { admit, metrics } = setup(policy);
    const err = await refused(admit(K2, "m1", { input: 1500, output: 500 }));
    assert.equal(err.status, 400);
    assert.equal(err.code, "request_exceeds_limit");
    assert.equal(
      err.message,
      "This request can never fit the limit 'tpm' for team=t (tokens per minute): it needs 2000 and the whole limit is 1000. Retrying will not help: lower max_tokens or shorten the input.",
    );
    assert.deepEqual(err.headers, [["x-should-retry", "false"]]);
    // m1 costs 2 + 6 per million: 100 in + 200 out = 1400 micros, more than the 0.001 budget (1000 micros).
    const spend = await refused(admit(K2, "m1", { input: 100, output: 200 }));
    assert.equal(spend.code, "request_exceeds_limit");
    assert.equal(
      spend.message,
      "This request can never fit the limit 'budget' for team=t (spend per month): it needs 0.0014 USD and the whole limit is 0.001 USD. Retrying will not help: lower max_tokens or shorten the input.",
    );
    // Nothing was reserved by either: a request that fits is still admitted in full.
    await admitted(admit(K2, "m1", { input: 100, output: 0 }));
    assert.equal(await rejections(metrics, "tpm", "tokens"), 1);
    assert.equal(await rejections(metrics, "budget", "spend"), 1);
  });

  it("prechecks without reserving: refuses a spent window or a full slot, admits what could fit", async () => {
    const policy = policyWith(
      "  - { id: day, scope: { key: k1 }, tokensPerDay: 200 }\n  - { id: conc, scope: { key: k2 }, concurrentRequests: 1 }",
    );
    const { service, admit, metrics } = setup(policy);
    const request = (identity: Identity) => ({
      policy,
      identity,
      model: policy.models.get("m1")!,
      requestId: "pre",
    });
    await service.precheck(request(K1));
    await admitted(admit(K1, "m1", { input: 150, output: 50 }));
    const spent = await refused(service.precheck(request(K1)));
    assert.equal(spent.code, "rate_limit_exceeded");
    assert.match(spent.message, /limit 'day', tokens per day\): limit 200, remaining 0/);
    // Prechecks took no slot: the one slot is still free for a real admission, then full.
    await service.precheck(request(K2));
    await service.precheck(request(K2));
    await admitted(admit(K2));
    assert.equal((await refused(service.precheck(request(K2)))).code, "rate_limit_exceeded");
    assert.equal(await rejections(metrics, "conc", "concurrency"), 1);
  });

  it("refuses an exhausted budget with 429 insufficient_quota until the month ends", async () => {
    // m1 costs 2 + 6 per million tokens: 1000 in + 1000 out = 8000 micros of a 10000-micro budget.
    const policy = policyWith("  - { id: team-budget, scope: { team: t }, budgetPerMonth: 0.01 }");
    const { admit, clock, metrics } = setup(policy);
    const first = await admitted(admit(K1, "m1", { input: 1000, output: 1000 }));
    assert.deepEqual(
      first.charges.map((c) => [c.kind, c.limit, c.amount]),
      [["window", 10_000, 8000]],
    );
    const err = await refused(admit(K2, "m1", { input: 1000, output: 1000 }));
    assert.equal(err.code, "insufficient_quota");
    assert.equal(err.status, 429);
    assert.equal(err.type, "insufficient_quota");
    assert.equal(
      err.message,
      "Budget exhausted for team=t (limit 'team-budget', spend per month): limit 0.01 USD, remaining 0.002 USD, requested 0.008 USD. Retry after 734400s.",
    );
    // 8.5 days to the end of November (UTC).
    assert.deepEqual(err.headers, [["retry-after", "734400"]]);
    assert.equal(await rejections(metrics, "team-budget", "spend"), 1);
    // A cheaper request still fits in what is left.
    await admitted(admit(K2, "m1", { input: 1000, output: 0 }));
    // December brings a new budget.
    clock.now = Date.UTC(2026, 11, 1);
    await admitted(admit(K2, "m1", { input: 1000, output: 1000 }));
  });

  it("keeps a separate counter per value for '*' and one shared counter for a named value", async () => {
    const policy = policyWith(`
  - { id: each-key, scope: { key: "*" }, requestsPerMinute: 1 }
  - { id: team-t, scope: { team: t, model: m2 }, requestsPerMinute: 1 }
`);
    const { admit } = setup(policy);
    await admitted(admit(K1, "m1"));
    await admitted(admit(K2, "m1"));
    await admitted(admit(K3, "m1"));
    const err = await refused(admit(K1, "m1"));
    assert.match(err.message, /^Rate limit reached for key=k1 \(limit 'each-key'/);

    const other = setup(policy);
    await admitted(other.admit(K1, "m2"));
    // k2 has its own each-key counter, but shares team t's counter on m2 with k1.
    const shared = await refused(other.admit(K2, "m2"));
    assert.match(shared.message, /^Rate limit reached for team=t, model=m2 \(limit 'team-t'/);
  });

  it("resets daily and monthly token limits at UTC midnight and at the first of the month", async () => {
    const policy = policyWith(`
  - { id: daily, scope: { key: k1 }, tokensPerDay: 1000 }
  - { id: monthly, scope: { key: k2 }, tokensPerMonth: 1000 }
`);
    const { admit, clock } = setup(policy);
    await admitted(admit(K1, "m1", { input: 500, output: 100 }));
    await admitted(admit(K2, "m1", { input: 500, output: 100 }));
    const day = await refused(admit(K1, "m1", { input: 500, output: 100 }));
    assert.match(
      day.message,
      /\(limit 'daily', tokens per day\): limit 1000, remaining 400, requested 600\./,
    );
    assert.equal(header(day.headers, "retry-after"), "43200");
    const month = await refused(admit(K2, "m1", { input: 500, output: 100 }));
    assert.match(month.message, /\(limit 'monthly', tokens per month\)/);
    assert.equal(header(month.headers, "retry-after"), "734400");

    clock.now = Date.UTC(2026, 10, 23) - 1;
    await refused(admit(K1, "m1", { input: 500, output: 100 }));
    clock.now = Date.UTC(2026, 10, 23);
    await admitted(admit(K1, "m1", { input: 500, output: 100 }));
    await refused(admit(K2, "m1", { input: 500, output: 100 }));
    clock.now = Date.UTC(2026, 11, 1);
    await admitted(admit(K2, "m1", { input: 500, output: 100 }));
  });

  it("counts input, output or total tokens as each rule says", async () => {
    const policy = policyWith(`
  - { id: in, scope: { key: k1 }, tokensPerMinute: 1000, countTokens: input }
  - { id: out, scope: { key: k2 }, tokensPerMinute: 1000, countTokens: output }
  - { id: all, scope: { key: k3 }, tokensPerMinute: 1000 }
`);
    const { admit, service } = setup(policy);
    const usage = { input: 100, output: 40 };
    const remaining = (a: Admission) => header(a.headers, "x-ratelimit-remaining-tokens");
    const a1 = await admitted(admit(K1, "m1", usage));
    const a2 = await admitted(admit(K2, "m1", usage));
    const a3 = await admitted(admit(K3, "m1", usage));
    assert.deepEqual(
      [a1, a2, a3].map((a) => a.charges[0]!.amount),
      [100, 40, 140],
    );
    assert.deepEqual([a1, a2, a3].map(remaining), ["900", "960", "860"]);
    // Settling with the actual usage counts the same side: 10 in, 20 out.
    for (const a of [a1, a2, a3]) await service.settle(a, 10, 20);
    const b1 = await admitted(admit(K1, "m1", usage));
    const b2 = await admitted(admit(K2, "m1", usage));
    const b3 = await admitted(admit(K3, "m1", usage));
    assert.deepEqual([b1, b2, b3].map(remaining), [`${1000 - 10 - 100}`, `${1000 - 20 - 40}`, "830"]);
  });

  it("settles a token reservation to actual usage, so later requests get the refund", async () => {
    const policy = policyWith("  - { id: tpm, scope: { key: k1 }, tokensPerMinute: 1000 }");
    const { admit, service } = setup(policy);
    const a = await admitted(admit(K1, "m1", { input: 100, output: 800 }));
    // 100 tokens left: a second request of 900 does not fit yet.
    await refused(admit(K1, "m1", { input: 100, output: 800 }));
    await service.settle(a, 60, 40);
    const b = await admitted(admit(K1, "m1", { input: 100, output: 800 }));
    assert.equal(header(b.headers, "x-ratelimit-remaining-tokens"), "0");
  });

  it("settles daily windows and budgets too", async () => {
    const policy = policyWith(`
  - { id: daily, scope: { key: k1 }, tokensPerDay: 1000 }
  - { id: budget, scope: { key: k2 }, budgetPerMonth: 0.01 }
`);
    const { admit, service } = setup(policy);
    const day = await admitted(admit(K1, "m1", { input: 800, output: 100 }));
    await refused(admit(K1, "m1", { input: 800, output: 100 }));
    await service.settle(day, 50, 50);
    await admitted(admit(K1, "m1", { input: 800, output: 100 }));

    const spend = await admitted(admit(K2, "m1", { input: 1000, output: 1000 })); // 8000 of 10000
    await refused(admit(K2, "m1", { input: 1000, output: 1000 }));
    await service.settle(spend, 1000, 0); // actually 2000
    await admitted(admit(K2, "m1", { input: 1000, output: 1000 })); // 2000 + 8000 = 10000
    await refused(admit(K2, "m1", { input: 1, output: 0 }));
  });

  it("frees a concurrency slot when the request settles", async () => {
    const policy = policyWith("  - { id: one-at-a-time, scope: { key: k1 }, concurrentRequests: 1 }");
    const { admit, service } = setup(policy);
    const a = await admitted(admit(K1));
    const err = await refused(admit(K1));
    assert.equal(err.code, "rate_limit_exceeded");
    assert.match(
      err.message,
      /\(limit 'one-at-a-time', concurrent requests\): limit 1, remaining 0, requested 1\./,
    );
    assert.equal(header(err.headers, "retry-after"), "1");
    await service.settle(a, 100, 50);
    await admitted(admit(K1));
  });

  describe("with a shared store that fails", () => {
    it("fails closed with 503 quota_store_unavailable, and recovers", async () => {
      const policy = policyWith(
        "  - { id: per-key, scope: { key: k1 }, requestsPerMinute: 10 }",
        `quota: { store: redis, ${REDIS}, onStoreFailure: fail-closed }`,
      );
      const store = new FlakyStore();
      const { admit, metrics } = setup(policy, { store, shared: true });
      assert.equal(await gaugeValue(metrics), 0);
      store.down = true;
      const err = await refused(admit(K1));
      assert.equal(err.code, "quota_store_unavailable");
      assert.equal(err.status, 503);
      assert.equal(err.type, "server_error");
      assert.equal(await gaugeValue(metrics), 1);
      assert.match(
        await metrics.registry.getSingleMetricAsString("llm_gateway_quota_store_degraded"),
        /^llm_gateway_quota_store_degraded 1$/m,
      );
      await refused(admit(K1));
      assert.equal(await storeErrors(metrics), 2);
      // Requests no limit applies to never touch the store.
      const reserves = store.reserves;
      assert.equal(await admit(K2), undefined);
      assert.equal(store.reserves, reserves);

      store.down = false;
      const admission = await admitted(admit(K1));
      assert.equal(admission.store, store);
      assert.equal(await gaugeValue(metrics), 0);
      assert.match(
        await metrics.registry.getSingleMetricAsString("llm_gateway_quota_store_degraded"),
        /^llm_gateway_quota_store_degraded 0$/m,
      );
    });

    it("fails closed with a store that is not shared, whatever the policy says", async () => {
      const policy = policyWith(
        "  - { id: per-key, scope: { key: k1 }, requestsPerMinute: 10 }",
        "quota: { onStoreFailure: local, replicas: 2 }",
      );
      const store = new FlakyStore();
      store.down = true;
      const { admit } = setup(policy, { store, shared: false });
      assert.equal((await refused(admit(K1))).code, "quota_store_unavailable");
    });

    it("falls back to local counters with each limit divided among the replicas", async () => {
      const policy = policyWith(
        "  - { id: per-key, scope: { key: k1 }, requestsPerMinute: 10 }",
        `quota: { store: redis, ${REDIS}, onStoreFailure: local, replicas: 2 }`,
      );
      const store = new FlakyStore();
      const { admit, metrics } = setup(policy, { store, shared: true });
      store.down = true;
      for (let i = 0; i < 5; i++) {
        const admission = await admitted(admit(K1));
        assert.notEqual(admission.store, store);
        assert.equal(admission.charges[0]!.limit, 5);
        assert.equal(header(admission.headers, "x-ratelimit-limit-requests"), "5");
        assert.equal(header(admission.headers, "x-ratelimit-remaining-requests"), String(4 - i));
      }
      const err = await refused(admit(K1));
      assert.equal(err.code, "rate_limit_exceeded");
      assert.match(err.message, /limit 'per-key'.*limit 5, remaining 0/);
      assert.equal(header(err.headers, "x-ratelimit-limit-requests"), "5");
      assert.equal(await gaugeValue(metrics), 1);
      assert.equal(await storeErrors(metrics), 6);

      // The store answers again: its own (untouched) counters and the full limit apply.
      store.down = false;
      const back = await admitted(admit(K1));
      assert.equal(back.store, store);
      assert.equal(back.charges[0]!.limit, 10);
      assert.equal(header(back.headers, "x-ratelimit-remaining-requests"), "9");
      assert.equal(await gaugeValue(metrics), 0);
      assert.match(
        await metrics.registry.getSingleMetricAsString("llm_gateway_quota_store_degraded"),
        /^llm_gateway_quota_store_degraded 0$/m,
      );
    });

    it("rounds each replica's share down, but never below one", async () => {
      const policy = policyWith(
        `
  - { id: rpm, scope: { key: k1 }, requestsPerMinute: 10 }
  - { id: slots, scope: { key: k2 }, concurrentRequests: 2 }
`,
        `quota: { store: redis, ${REDIS}, onStoreFailure: local, replicas: 3 }`,
      );
      const store = new FlakyStore();
      store.down = true;
      const { admit } = setup(policy, { store, shared: true });
      for (let i = 0; i < 3; i++) await admitted(admit(K1));
      await refused(admit(K1));
      const slot = await admitted(admit(K2));
      assert.equal(slot.charges[0]!.limit, 1);
      await refused(admit(K2));
    });

    it("settles a local admission locally, even after the store is back", async () => {
      const policy = policyWith(
        "  - { id: slots, scope: { key: k1 }, concurrentRequests: 2 }",
        `quota: { store: redis, ${REDIS}, onStoreFailure: local, replicas: 2 }`,
      );
      const store = new FlakyStore();
      const { admit, service } = setup(policy, { store, shared: true });
      store.down = true;
      const local = await admitted(admit(K1));
      await refused(admit(K1)); // one local slot of two
      store.down = false;
      await service.settle(local, 100, 50);
      assert.equal(store.settles, 0);
      store.down = true;
      await admitted(admit(K1)); // the local slot was freed
    });

    it("never throws from settle: a failed settle marks the store degraded", async () => {
      const policy = policyWith(
        "  - { id: tpm, scope: { key: k1 }, tokensPerMinute: 1000 }",
        `quota: { store: redis, ${REDIS}, onStoreFailure: fail-closed }`,
      );
      const store = new FlakyStore();
      const { admit, service, metrics } = setup(policy, { store, shared: true });
      const admission = await admitted(admit(K1));
      store.down = true;
      await service.settle(admission, 10, 10);
      assert.equal(store.settles, 1);
      assert.equal(await storeErrors(metrics), 1);
      assert.equal(await gaugeValue(metrics), 1);
      store.down = false;
      await admitted(admit(K1));
      assert.equal(await gaugeValue(metrics), 0);
    });
  });
});
