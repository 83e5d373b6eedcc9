import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { loadPolicy, parsePolicy, PolicyError, sha256Hex } from "./index.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const SAMPLE = path.join(ROOT, "deploy/policy.yaml");
const ENVOY = path.join(ROOT, "envoy/envoy.yaml");
const ENV = { POOL_B_API_KEY: "secret-b" };

const minimal = (extra = "") => `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
${extra}`;

function problemsOf(text: string): string[] {
  try {
    parsePolicy(text, "p.yaml", { env: ENV });
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.message.split("\n");
  }
  assert.fail("policy was accepted");
}

describe("policy", () => {
  it("loads the sample policy and checks it against the Envoy config", () => {
    const policy = loadPolicy(SAMPLE, { envoyConfigFile: ENVOY, env: ENV });
    assert.deepEqual([...policy.pools.keys()], ["pool-a", "pool-b"]);
    assert.equal(policy.pools.get("pool-b")!.upstreamAuthorization, "Bearer secret-b");
    assert.equal(policy.pools.get("pool-a")!.upstreamAuthorization, undefined);
    const research = policy.keysBySha256.get(sha256Hex("sk-demo-research"))!;
    assert.equal(research.team, "research");
    assert.ok(research.allowedModels.has("chat-default") && research.allowedModels.has("bge-small-en-v1.5"));
    const support = policy.keysBySha256.get(sha256Hex("sk-demo-support"))!;
    assert.deepEqual([...support.allowedModels], ["chat-default"]);
    assert.equal(policy.aliases.get("chat-default")!.totalWeight, 100);
    assert.equal(
      policy.keysBySha256.get(sha256Hex("sk-demo-expired"))!.expiresAt,
      Date.parse("2025-01-01T00:00:00Z"),
    );
  });

  it("names the file, the path and the problem for schema errors", () => {
    const problems = problemsOf(minimal().replace(`sha256: ${sha256Hex("key-1")}`, "sha256: ABC"));
    assert.deepEqual(problems, [
      "p.yaml: keys[0].sha256: must be 64 lowercase hex characters (SHA-256 of the key)",
    ]);
    assert.deepEqual(problemsOf(minimal().replace("version: 1", "version: 2")), [
      "p.yaml: version: Invalid input: expected 1",
    ]);
  });

  it("reports every broken cross-reference", () => {
    const text = minimal(`
aliases:
  a1: [{ model: nope, weight: 1 }]
  m1: [{ model: m1, weight: 1 }]
`)
      .replace("models: { m1: { pool: pool-a } }", "models: { m1: { pool: pool-a }, m2: { pool: pool-x } }")
      .replace("teams: { t: { models: [m1] } }", "teams: { t: { models: [m1, ghost] } }")
      .replace("team: t,", "team: t2,");
    assert.deepEqual(problemsOf(text), [
      'p.yaml: models.m2.pool: unknown pool "pool-x"',
      'p.yaml: aliases.a1[0].model: unknown model "nope"',
      "p.yaml: aliases.a1: weights must add up to more than 0",
      "p.yaml: aliases.m1: an alias cannot have the name of a model",
      'p.yaml: teams.t.models[1]: unknown model or alias "ghost"',
      'p.yaml: keys[0].team: unknown team "t2"',
    ]);
  });

  it("refuses key models outside the team's, duplicate ids and unset credentials", () => {
    const text = minimal(`  - { id: k1, team: t, sha256: ${sha256Hex("key-2")}, models: [m2] }`)
      .replace("models: { m1: { pool: pool-a } }", "models: { m1: { pool: pool-a }, m2: { pool: pool-a } }")
      .replace("pools: { pool-a: {} }", "pools: { pool-a: { upstreamApiKey: { env: MISSING_VAR } } }");
    assert.deepEqual(problemsOf(text), [
      "p.yaml: pools.pool-a.upstreamApiKey: environment variable MISSING_VAR is not set",
      'p.yaml: keys[1].id: duplicate key id "k1"',
      'p.yaml: keys[1].models[0]: "m2" is not allowed for team "t"',
    ]);
  });

  it("checks limits: scopes, wildcards, prices for budgets, a cap set, the Redis address", () => {
    const text = minimal(`
limits:
  - { id: per-team, scope: { team: "*" }, tokensPerDay: 1000 }
  - { id: per-team, scope: { key: nobody, model: m9 }, requestsPerMinute: 1 }
  - { id: spend, scope: { team: t }, budgetPerMonth: 5 }
  - { id: nothing, scope: { team: t } }
quota: { store: redis }
`);
    assert.deepEqual(problemsOf(text), [
      'p.yaml: limits[1].id: duplicate limit id "per-team"',
      'p.yaml: limits[1].scope.key: unknown key id "nobody"',
      'p.yaml: limits[1].scope.model: unknown model "m9" (limits count served models, not aliases)',
      'p.yaml: limits[2].budgetPerMonth: model "m1" has no price, so spend on it cannot be counted',
      "p.yaml: limits[3]: sets no limit",
      "p.yaml: quota.redis: store redis needs redis.url, redis.sentinels or redis.cluster",
    ]);
    const ok = parsePolicy(
      minimal("limits: [{ id: l, scope: { team: '*', model: m1 }, requestsPerMinute: 5 }]"),
      "p.yaml",
    );
    assert.deepEqual(ok.limits[0]!.scope, { team: "*", model: "m1" });
    assert.equal(ok.quota.store, "memory");
  });

  it("reports YAML syntax errors with their position", () => {
    const [problem] = problemsOf("version: 1\npools: [\n");
    assert.match(problem!, /^p\.yaml: invalid YAML: .*\(3:1\)/s);
  });

  it("refuses pools Envoy does not route", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "policy-test-"));
    const file = path.join(dir, "p.yaml");
    writeFileSync(file, minimal().replace("pools: { pool-a: {} }", "pools: { pool-a: {}, pool-z: {} }"));
    assert.throws(
      () => loadPolicy(file, { envoyConfigFile: ENVOY, env: ENV }),
      (err: Error) =>
        err.message === `${file}: pools.pool-z: ${ENVOY} has no route matching x-gateway-pool: pool-z`,
    );
  });
});
