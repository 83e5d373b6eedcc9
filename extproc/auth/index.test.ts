import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GatewayError } from "../errors/index.js";
import { gatewayErrorOf } from "../errors/test-support.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { authenticate, extractApiKey } from "./index.js";

const KEY = "sk-live-4f1a9c2e7b";
const REVOKED_KEY = "sk-revoked-88d0e1";
const EXPIRING_KEY = "sk-expiring-3c7b55";
const EXPIRES_AT = "2030-01-01T00:00:00Z";
const EXPIRES_MS = Date.parse(EXPIRES_AT);
const NOW = Date.parse("2026-06-01T12:00:00Z");

const policy = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a }, m2: { pool: pool-a } }
teams:
  t: { models: [m1, m2] }
  u: { models: [m2] }
keys:
  - { id: k-live, team: t, sha256: ${sha256Hex(KEY)}, models: [m1] }
  - { id: k-revoked, team: t, sha256: ${sha256Hex(REVOKED_KEY)}, revoked: true }
  - { id: k-expiring, team: u, sha256: ${sha256Hex(EXPIRING_KEY)}, expiresAt: "${EXPIRES_AT}" }
`,
  "p.yaml",
  { env: {} },
);

const headers = (entries: Record<string, string>) => new Map(Object.entries(entries));
const bearer = (key: string) => headers({ authorization: `Bearer ${key}` });

/** Runs authenticate and returns the GatewayError it throws. */
function refusal(h: ReadonlyMap<string, string>, now = NOW): GatewayError {
  const err = gatewayErrorOf(() => authenticate(policy, h, now), "request was authenticated");
  assert.equal(err.status, 401);
  assert.equal(err.type, "authentication_error");
  return err;
}

/** Asserts the error, as the client and the logs see it, does not contain `secret`. */
function assertNoLeak(err: GatewayError, secret: string): void {
  assert.ok(!err.message.includes(secret), err.message);
  assert.ok(!err.toBody().includes(secret), err.toBody());
  assert.ok(!String(err.stack).includes(secret));
}

describe("extractApiKey", () => {
  it("reads a Bearer token", () => {
    assert.equal(extractApiKey(bearer("abc.DEF-123_x")), "abc.DEF-123_x");
  });

  it("accepts the Bearer scheme in any case", () => {
    for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
      assert.equal(extractApiKey(headers({ authorization: `${scheme} k1` })), "k1", scheme);
    }
  });

  it("accepts extra spaces and tabs between the scheme and the token and after it", () => {
    assert.equal(extractApiKey(headers({ authorization: "Bearer    k1" })), "k1");
    assert.equal(extractApiKey(headers({ authorization: "Bearer\tk1" })), "k1");
    assert.equal(extractApiKey(headers({ authorization: "Bearer k1   " })), "k1");
  });

  it("returns undefined for a malformed Authorization header", () => {
    for (const value of [
      "",
      "Bearer",
      "Bearer ",
      "Bearerk1",
      "Basic dXNlcjpwYXNz",
      "Token k1",
      "Bearer k1 k2",
      "Bearer k1, Bearer k2",
      "k1",
      "x Bearer k1",
    ]) {
      assert.equal(extractApiKey(headers({ authorization: value })), undefined, JSON.stringify(value));
    }
  });

  it("falls back to x-api-key, then api-key, when there is no Authorization header", () => {
    assert.equal(extractApiKey(headers({ "x-api-key": "k2" })), "k2");
    assert.equal(extractApiKey(headers({ "api-key": "k3" })), "k3");
    assert.equal(extractApiKey(headers({ "x-api-key": "k2", "api-key": "k3" })), "k2");
  });

  it("prefers Authorization over the other headers", () => {
    assert.equal(
      extractApiKey(headers({ authorization: "Bearer k1", "x-api-key": "k2", "api-key": "k3" })),
      "k1",
    );
  });

  it("does not fall back to another header when Authorization is malformed", () => {
    assert.equal(extractApiKey(headers({ authorization: "Basic abc", "x-api-key": "k2" })), undefined);
  });

  it("returns undefined without any credential header", () => {
    assert.equal(extractApiKey(headers({})), undefined);
    assert.equal(extractApiKey(headers({ ":path": "/v1/models", cookie: "api-key=k" })), undefined);
  });
});

describe("authenticate", () => {
  it("identifies a valid key by its hash", () => {
    const identity = authenticate(policy, bearer(KEY), NOW);
    assert.equal(identity.keyId, "k-live");
    assert.equal(identity.team, "t");
    assert.deepEqual([...identity.allowedModels], ["m1"]);
    assert.deepEqual(Object.keys(identity).sort(), ["allowedModels", "keyId", "team"]);
  });

  it("accepts the key from x-api-key and api-key", () => {
    assert.equal(authenticate(policy, headers({ "x-api-key": KEY }), NOW).keyId, "k-live");
    assert.equal(authenticate(policy, headers({ "api-key": KEY }), NOW).keyId, "k-live");
  });

  it("refuses a request without a key with missing_api_key", () => {
    const err = refusal(headers({}));
    assert.equal(err.code, "missing_api_key");
    assert.equal(
      err.message,
      "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>', as Anthropic's clients do).",
    );
    assert.equal(refusal(headers({ "x-api-key": "" })).code, "missing_api_key");
  });

  it("treats a malformed Authorization header as no key, without echoing it", () => {
    const err = refusal(headers({ authorization: `Basic ${KEY}` }));
    assert.equal(err.code, "missing_api_key");
    assertNoLeak(err, KEY);
  });

  it("refuses an unknown key with invalid_api_key", () => {
    const unknown = "sk-unknown-77aa";
    const err = refusal(bearer(unknown));
    assert.equal(err.code, "invalid_api_key");
    assert.equal(err.message, "Incorrect API key provided.");
    assertNoLeak(err, unknown);
  });

  it("compares keys exactly", () => {
    for (const near of [KEY.toUpperCase(), `${KEY}x`, KEY.slice(0, -1), sha256Hex(KEY)]) {
      assert.equal(refusal(bearer(near)).code, "invalid_api_key", near);
    }
  });

  it("refuses a revoked key with revoked_api_key", () => {
    const err = refusal(bearer(REVOKED_KEY));
    assert.equal(err.code, "revoked_api_key");
    assert.equal(err.message, "API key k-revoked has been revoked.");
    assertNoLeak(err, REVOKED_KEY);
  });

  it("accepts a key up to the millisecond before it expires", () => {
    assert.equal(authenticate(policy, bearer(EXPIRING_KEY), EXPIRES_MS - 1).keyId, "k-expiring");
    assert.equal(authenticate(policy, bearer(EXPIRING_KEY), NOW).team, "u");
  });

  it("refuses a key at exactly its expiry time and after with expired_api_key", () => {
    for (const now of [EXPIRES_MS, EXPIRES_MS + 1, EXPIRES_MS + 365 * 86_400_000]) {
      const err = refusal(bearer(EXPIRING_KEY), now);
      assert.equal(err.code, "expired_api_key");
      assert.equal(err.message, "API key k-expiring expired at 2030-01-01T00:00:00.000Z.");
      assertNoLeak(err, EXPIRING_KEY);
    }
  });

  it("never expires a key without expiresAt", () => {
    assert.equal(authenticate(policy, bearer(KEY), Number.MAX_SAFE_INTEGER).keyId, "k-live");
  });
});

describe("key rotation", () => {
  const OLD = "sk-rotate-old-1111";
  const NEW = "sk-rotate-new-2222";
  const rotating = parsePolicy(
    `
version: 1
pools: { p: {} }
models: { m: { pool: p } }
teams: { t: { models: [m] } }
keys:
  - id: ci-bot
    team: t
    credentials:
      - { sha256: ${sha256Hex(OLD)}, expiresAt: "2026-07-01T00:00:00Z" }
      - { sha256: ${sha256Hex(NEW)}, notBefore: "2026-06-15T00:00:00Z" }
`,
    "rotation.yaml",
  );
  const at = (iso: string) => Date.parse(iso);

  it("accepts both secrets of one identity while their windows overlap", () => {
    for (const key of [OLD, NEW]) {
      assert.equal(authenticate(rotating, bearer(key), at("2026-06-20T00:00:00Z")).keyId, "ci-bot");
    }
  });

  it("refuses the new secret before notBefore and the old one after expiresAt", () => {
    assert.throws(
      () => authenticate(rotating, bearer(NEW), at("2026-06-14T23:59:59Z")),
      (err: GatewayError) =>
        err.code === "inactive_api_key" && err.status === 401 && !err.message.includes(NEW),
    );
    assert.equal(authenticate(rotating, bearer(NEW), at("2026-06-15T00:00:00Z")).keyId, "ci-bot");
    assert.throws(
      () => authenticate(rotating, bearer(OLD), at("2026-07-01T00:00:00Z")),
      (err: GatewayError) => err.code === "expired_api_key",
    );
  });

  it("refuses a key entry with both or neither of sha256 and credentials", () => {
    assert.throws(
      () =>
        parsePolicy(
          "version: 1\npools: { p: {} }\nmodels: { m: { pool: p } }\nteams: { t: { models: [m] } }\nkeys: [{ id: k, team: t }]\n",
          "p.yaml",
        ),
      /p\.yaml: keys\[0\]: set either sha256 or credentials/,
    );
  });
});
