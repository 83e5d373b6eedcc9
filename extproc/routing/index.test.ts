import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { authenticate, type Identity } from "../auth/index.js";
import type { GatewayError } from "../errors/index.js";
import { gatewayErrorOf } from "../errors/test-support.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { listAllowedModels, resolveModel } from "./index.js";

const policy = parsePolicy(
  `
version: 1
pools: { pool-a: {}, pool-b: {} }
models:
  m-big: { pool: pool-a, upstreamModel: big-v2 }
  m-small: { pool: pool-b }
  m-off: { pool: pool-b }
aliases:
  chat:
    - { model: m-big, weight: 90 }
    - { model: m-small, weight: 10 }
  sparse:
    - { model: m-off, weight: 0 }
    - { model: m-big, weight: 1 }
    - { model: m-off, weight: 0 }
    - { model: m-small, weight: 1 }
    - { model: m-off, weight: 0 }
teams:
  all: { models: ["*"] }
  few: { models: [chat, m-small] }
keys:
  - { id: k-all, team: all, sha256: ${sha256Hex("key-all")} }
  - { id: k-few, team: few, sha256: ${sha256Hex("key-few")} }
`,
  "p.yaml",
  { env: {} },
);

const identityOf = (key: string): Identity =>
  authenticate(policy, new Map([["authorization", `Bearer ${key}`]]), 0);
const ALL = identityOf("key-all");
const FEW = identityOf("key-few");

/** A `random` that returns `values` in order and fails the test if called more often. */
function sequence(...values: number[]): () => number {
  return () => {
    const next = values.shift();
    assert.ok(next !== undefined, "random() called more often than expected");
    return next;
  };
}

const never = () => assert.fail("random() must not be called for a model");

function refusal(identity: Identity, requested: string): GatewayError {
  const err = gatewayErrorOf(
    () => resolveModel(policy, identity, requested, () => 0),
    `${requested} was resolved`,
  );
  assert.equal(err.param, "model");
  return err;
}

const pick = (identity: Identity, requested: string, random: number) =>
  resolveModel(policy, identity, requested, () => random).name;

describe("resolveModel", () => {
  it("answers 404 model_not_found for a name that is neither a model nor an alias", () => {
    for (const name of ["nope", "", "M-BIG", "big-v2", "pool-a", "*"]) {
      for (const identity of [ALL, FEW]) {
        const err = refusal(identity, name);
        assert.equal(err.code, "model_not_found", name);
        assert.equal(err.status, 404, name);
        assert.equal(err.message, `The model '${name}' does not exist.`);
      }
    }
  });

  it("answers 403 model_not_allowed for a model or alias the key may not use", () => {
    for (const name of ["m-big", "m-off", "sparse"]) {
      const err = refusal(FEW, name);
      assert.equal(err.code, "model_not_allowed", name);
      assert.equal(err.status, 403, name);
      assert.equal(err.type, "permission_error");
      assert.equal(err.message, `API key k-few (team few) is not allowed to use model '${name}'.`);
    }
  });

  it("returns an allowed model itself", () => {
    const model = resolveModel(policy, ALL, "m-big", never);
    assert.equal(model, policy.models.get("m-big"));
    assert.equal(model.name, "m-big");
    assert.equal(model.upstreamModel, "big-v2");
    assert.equal(model.pool.name, "pool-a");
    assert.equal(resolveModel(policy, FEW, "m-small", never), policy.models.get("m-small"));
  });

  it("picks alias targets by weight", () => {
    const random = sequence(0, 0.5, 0.899, 0.8999999, 0.9, 0.95, 0.999, 0.9999999999);
    const picked = Array.from({ length: 8 }, () => resolveModel(policy, FEW, "chat", random));
    assert.deepEqual(
      picked.map((m) => m.name),
      ["m-big", "m-big", "m-big", "m-big", "m-small", "m-small", "m-small", "m-small"],
    );
    assert.equal(picked[0], policy.models.get("m-big"));
    assert.equal(picked[4], policy.models.get("m-small"));
  });

  it("calls random once per alias resolution", () => {
    let calls = 0;
    resolveModel(policy, ALL, "chat", () => {
      calls++;
      return 0.3;
    });
    assert.equal(calls, 1);
  });

  it("splits the unit interval in proportion to the weights", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const name = pick(ALL, "chat", i / 1000);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { "m-big": 900, "m-small": 100 });
  });

  it("never picks a target with weight 0", () => {
    assert.equal(pick(ALL, "sparse", 0), "m-big");
    assert.equal(pick(ALL, "sparse", 0.4999999), "m-big");
    assert.equal(pick(ALL, "sparse", 0.5), "m-small");
    assert.equal(pick(ALL, "sparse", 0.9999999999), "m-small");
    for (let i = 0; i < 1000; i++)
      assert.notEqual(pick(ALL, "sparse", i / 1000), "m-off", `random ${i / 1000}`);
  });

  it("falls back to the last target with a weight when random() reaches 1", () => {
    assert.equal(pick(ALL, "sparse", 1), "m-small");
    assert.equal(pick(ALL, "chat", 1), "m-small");
  });

  it("authorises the alias name, not the models behind it", () => {
    // k-few may use "chat" but not "m-big" directly; the alias still routes to m-big.
    assert.equal(pick(FEW, "chat", 0), "m-big");
    assert.equal(refusal(FEW, "m-big").code, "model_not_allowed");
  });
});

describe("listAllowedModels", () => {
  it("lists every model and alias for a key allowed everything, sorted", () => {
    assert.deepEqual(listAllowedModels(policy, ALL), ["chat", "m-big", "m-off", "m-small", "sparse"]);
  });

  it("lists only what the key may use", () => {
    assert.deepEqual(listAllowedModels(policy, FEW), ["chat", "m-small"]);
  });

  it("sorts and leaves out names the policy does not define", () => {
    const identity: Identity = {
      keyId: "k",
      team: "t",
      allowedModels: new Set(["sparse", "m-small", "ghost", "chat", "big-v2", "m-big"]),
    };
    assert.deepEqual(listAllowedModels(policy, identity), ["chat", "m-big", "m-small", "sparse"]);
  });

  it("returns an empty list for a key without models", () => {
    assert.deepEqual(listAllowedModels(policy, { keyId: "k", team: "t", allowedModels: new Set() }), []);
  });
});
