import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Identity } from "../auth/index.js";
import { parsePolicy, PolicyError, sha256Hex, type Policy } from "../policy/index.js";
import { mask, PiiSession, resolvePii } from "./index.js";

const ENV = { PII_KEY: "hmac-key-one", PII_KEY_2: "hmac-key-two" };

/** A minimal valid policy with the given `pii:` section (YAML, indented by two spaces). */
const policyYaml = (pii: string, hmacEnv = "PII_KEY") => `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a }, m2: { pool: pool-a } }
teams:
  t: { models: [m1, m2] }
  research: { models: [m1, m2] }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
  - { id: k2, team: research, sha256: ${sha256Hex("key-2")} }
pii:
  hmacKey: { env: ${hmacEnv} }
${pii}`;

const policy = (pii: string, hmacEnv?: string): Policy =>
  parsePolicy(policyYaml(pii, hmacEnv), "p.yaml", { env: ENV });

const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1", "m2"]) };
const K2: Identity = { keyId: "k2", team: "research", allowedModels: new Set(["m1", "m2"]) };

function session(p: Policy, identity: Identity = K1, model = "m1"): PiiSession {
  const resolved = resolvePii(p.pii, identity, model);
  assert.ok(resolved, "some PII handling applies");
  return new PiiSession(p.pii!, resolved);
}

/** One rule for every request, with the given actions. */
const oneRule = (actions: string, extra = "") => `
  custom:
    - { entity: PROJECT_CODENAME, words: [Bluebird, Nightjar] }
    - { entity: EMPLOYEE_ID, regex: "EMP-[0-9]{6}" }
  rules:
    - actions: { ${actions} }
${extra}`;

const REDACT_ALL = policy(
  oneRule(
    "EMAIL: redact, PHONE: redact, US_SSN: block, CREDIT_CARD: mask, IBAN: mask, IPV4: log, " +
      "PROJECT_CODENAME: redact, EMPLOYEE_ID: hash",
    "      restore: true\n      responses: true",
  ),
);

describe("PiiSession actions", () => {
  it("redact: one placeholder per value, numbered per entity type, stable within the session", () => {
    const s = session(REDACT_ALL);
    assert.equal(
      s.redactRequest("Mail a@example.com and b@example.org, again a@example.com; call +44 20 7946 0958"),
      "Mail <EMAIL_1> and <EMAIL_2>, again <EMAIL_1>; call <PHONE_1>",
    );
    assert.equal(s.redactRequest("cc b@example.org, +1 415 555 2671"), "cc <EMAIL_2>, <PHONE_2>");
    assert.deepEqual(s.request, {
      EMAIL: { count: 4, action: "redact" },
      PHONE: { count: 2, action: "redact" },
    });
    // Another request starts from 1 again.
    assert.equal(session(REDACT_ALL).redactRequest("b@example.org"), "<EMAIL_1>");
  });

  it("redact: custom word-list and regex detectors", () => {
    const s = session(REDACT_ALL);
    const employee = s.redactRequest("EMP-123456");
    assert.match(employee, /^<EMPLOYEE_ID_[0-9a-f]{16}>$/);
    assert.equal(
      s.redactRequest("Project bluebird (and NIGHTJAR, not Bluebirds) for EMP-123456, EMP-1234567"),
      `Project <PROJECT_CODENAME_1> (and <PROJECT_CODENAME_2>, not Bluebirds) for ${employee}, ${employee}7`,
    );
  });

  it("mask: keeps the last four letters or digits and every separator", () => {
    const s = session(REDACT_ALL);
    assert.equal(
      s.redactRequest("card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00."),
      "card **** **** **** 1111, IBAN **** **** **** **** **30 00.",
    );
    assert.equal(s.redactRequest("4111-1111-1111-1111"), "****-****-****-1111");
    assert.deepEqual(s.request, {
      CREDIT_CARD: { count: 2, action: "mask" },
      IBAN: { count: 1, action: "mask" },
    });
    assert.equal(mask("abc"), "abc");
    assert.equal(mask("a.b.c.d.e"), "*.b.c.d.e");
  });

  it("hash: an HMAC pseudonym, stable across sessions with one key, different with another", () => {
    const p = policy(oneRule("EMAIL: hash"));
    const first = session(p).redactRequest("to a@example.com");
    assert.match(first, /^to <EMAIL_[0-9a-f]{16}>$/);
    assert.equal(session(p).redactRequest("to a@example.com"), first);
    assert.equal(session(policy(oneRule("EMAIL: hash"))).redactRequest("to a@example.com"), first);
    assert.notEqual(session(p).redactRequest("to b@example.com"), first);
    const otherKey = policy(oneRule("EMAIL: hash"), "PII_KEY_2");
    const second = session(otherKey).redactRequest("to a@example.com");
    assert.match(second, /^to <EMAIL_[0-9a-f]{16}>$/);
    assert.notEqual(second, first);
  });

  it("hash needs an hmacKey", () => {
    const yaml = policyYaml(oneRule("EMAIL: hash")).replace("  hmacKey: { env: PII_KEY }\n", "");
    assert.throws(
      () => parsePolicy(yaml, "p.yaml", { env: ENV }),
      (err: unknown) =>
        err instanceof PolicyError && err.message === "p.yaml: pii.hmacKey: the hash action needs an hmacKey",
    );
  });

  it("block: leaves the text, records the blocked types", () => {
    const s = session(REDACT_ALL);
    const text = "my SSN is 123-45-6789, mail a@example.com";
    assert.equal(s.redactRequest(text), "my SSN is 123-45-6789, mail <EMAIL_1>");
    assert.deepEqual([...s.blocked], ["US_SSN"]);
    assert.deepEqual(s.request.US_SSN, { count: 1, action: "block" });
    assert.deepEqual([...session(REDACT_ALL).blocked], []);
  });

  it("log: leaves the text and counts", () => {
    const s = session(REDACT_ALL);
    assert.equal(s.redactRequest("hosts 10.0.0.1 and 10.0.0.2"), "hosts 10.0.0.1 and 10.0.0.2");
    assert.deepEqual(s.request, { IPV4: { count: 2, action: "log" } });
    assert.deepEqual([...s.blocked], []);
  });

  it("looks only for entities with an action", () => {
    const s = session(policy(oneRule("EMAIL: redact")));
    assert.equal(
      s.redactRequest("a@example.com 10.0.0.1 123-45-6789 4111 1111 1111 1111"),
      "<EMAIL_1> 10.0.0.1 123-45-6789 4111 1111 1111 1111",
    );
    assert.deepEqual(Object.keys(s.request), ["EMAIL"]);
  });
});

describe("resolvePii", () => {
  const scoped = policy(`
  rules:
    - actions: { EMAIL: redact, IPV4: log, PHONE: redact }
      restore: true
    - scope: { team: research }
      actions: { EMAIL: mask, IPV4: off }
      responses: true
    - scope: { team: research, model: m2 }
      actions: { EMAIL: hash }
      restore: false
    - scope: { key: k1, model: m2 }
      actions: { EMAIL: off, PHONE: off, IPV4: off }
`);

  it("merges matching rules in order: later ones override per entity and flag", () => {
    const base = resolvePii(scoped.pii, K1, "m1")!;
    assert.deepEqual(Object.fromEntries(base.actions), { EMAIL: "redact", IPV4: "log", PHONE: "redact" });
    assert.equal(base.restore, true);
    assert.equal(base.responses, false);

    const research = resolvePii(scoped.pii, K2, "m1")!;
    assert.deepEqual(Object.fromEntries(research.actions), { EMAIL: "mask", PHONE: "redact" });
    assert.deepEqual([...research.enabled].sort(), ["EMAIL", "PHONE"]);
    assert.equal(research.restore, true);
    assert.equal(research.responses, true);

    const researchM2 = resolvePii(scoped.pii, K2, "m2")!;
    assert.equal(researchM2.actions.get("EMAIL"), "hash");
    assert.equal(researchM2.restore, false);
    assert.equal(researchM2.responses, true);
  });

  it('"off" removes an entity; nothing left means no PII handling', () => {
    assert.equal(resolvePii(scoped.pii, K1, "m2"), undefined);
    assert.equal(resolvePii(undefined, K1, "m1"), undefined);
    const s = session(scoped, K2, "m1");
    assert.equal(s.redactRequest("10.0.0.1 a@example.com"), "10.0.0.1 *@******e.com");
    assert.deepEqual(Object.keys(s.request), ["EMAIL"]);
  });
});

describe("responses and restore", () => {
  it("restores placeholders made for the request, not those made for model output", () => {
    const s = session(REDACT_ALL);
    assert.equal(s.redactRequest("write to a@example.com"), "write to <EMAIL_1>");
    // The model repeats the placeholder and adds an address of its own.
    assert.equal(
      s.processResponse("Sure, I wrote to <EMAIL_1>. Copy to c@example.net."),
      "Sure, I wrote to a@example.com. Copy to <EMAIL_2>.",
    );
    // A placeholder made for output stays a placeholder, even when the model later repeats it.
    assert.equal(
      s.processResponse("As said: <EMAIL_2>, <EMAIL_1>, <EMAIL_7>"),
      "As said: <EMAIL_2>, a@example.com, <EMAIL_7>",
    );
    assert.equal(s.restore("<EMAIL_2>"), "<EMAIL_2>");
    assert.deepEqual(s.response, { EMAIL: { count: 1, action: "redact" } });
  });

  it("restores hash pseudonyms made for the request", () => {
    const s = session(REDACT_ALL);
    const redacted = s.redactRequest("badge EMP-123456");
    const placeholder = redacted.slice("badge ".length);
    assert.equal(s.processResponse(`Badge ${placeholder} is active`), "Badge EMP-123456 is active");
  });

  // processResponse scans before it restores, and the body of a long pseudonym (CREDIT_CARD_ + 16 hex digits:
  // 28 characters, mixed case and digits) is a HIGH_ENTROPY token: redacted, it can no longer be restored.
  it("restores hash pseudonyms when HIGH_ENTROPY is redacted in responses", () => {
    const p = policy(
      oneRule("CREDIT_CARD: hash, HIGH_ENTROPY: redact", "      restore: true\n      responses: true"),
    );
    const s = session(p);
    const pseudonym = s.redactRequest("4111 1111 1111 1111");
    assert.match(pseudonym, /^<CREDIT_CARD_[0-9a-f]{16}>$/);
    assert.equal(s.processResponse(`Charged ${pseudonym}.`), "Charged 4111 1111 1111 1111.");
  });

  it("redacts output values the request never had, and a value it had goes back restored", () => {
    const s = session(REDACT_ALL);
    s.redactRequest("from a@example.com");
    assert.equal(
      s.processResponse("a@example.com wrote to b@example.com"),
      "a@example.com wrote to <EMAIL_2>",
    );
  });

  it("a blocked entity in model output is redacted instead (output cannot be refused)", () => {
    const s = session(REDACT_ALL);
    assert.equal(s.processResponse("the SSN is 123-45-6789"), "the SSN is <US_SSN_1>");
    assert.deepEqual([...s.blocked], []);
    assert.deepEqual(s.response, { US_SSN: { count: 1, action: "redact" } });
    assert.deepEqual(s.request, {});
  });

  it("without responses: true, output is not scanned but placeholders are still restored", () => {
    const s = session(policy(oneRule("EMAIL: redact", "      restore: true")));
    assert.equal(s.redactRequest("to a@example.com"), "to <EMAIL_1>");
    assert.equal(s.processResponse("<EMAIL_1> and b@example.com"), "a@example.com and b@example.com");
    assert.deepEqual(s.response, {});
  });

  it("unrestore turns restored request values back into their placeholders (what the audit keeps)", () => {
    const s = session(REDACT_ALL);
    const badge = s.redactRequest("a@example.com and ab@example.com, badge EMP-123456").split("badge ")[1]!;
    const client = s.processResponse(`Sent: <EMAIL_1>, <EMAIL_2> (${badge}); also c.d+x@example.net`);
    assert.equal(client, "Sent: a@example.com, ab@example.com (EMP-123456); also <EMAIL_3>");
    assert.equal(s.unrestore(client), `Sent: <EMAIL_1>, <EMAIL_2> (${badge}); also <EMAIL_3>`);
    // Regex characters in values are literal; a session that restored nothing changes nothing.
    assert.equal(session(REDACT_ALL).unrestore("a@example.com"), "a@example.com");
  });

  it("without restore, placeholders reach the client as they are", () => {
    const s = session(policy(oneRule("EMAIL: redact", "      responses: true")));
    s.redactRequest("to a@example.com");
    assert.equal(s.processResponse("<EMAIL_1> and b@example.com"), "<EMAIL_1> and <EMAIL_2>");
  });
});

describe("summaries", () => {
  it("hold counts and actions only, never the values", () => {
    const s = session(REDACT_ALL);
    const values = [
      "a@example.com",
      "+44 20 7946 0958",
      "123-45-6789",
      "4111 1111 1111 1111",
      "DE89 3704 0044 0532 0130 00",
      "10.0.0.1",
      "Bluebird",
      "EMP-123456",
    ];
    s.redactRequest(`Request: ${values.join(", ")}`);
    s.processResponse(`Response: ${values.join("; ")} and z@example.org`);
    const json = JSON.stringify({ request: s.request, response: s.response, blocked: [...s.blocked] });
    for (const value of [...values, "z@example.org", "example", "1111", "6789"]) {
      assert.ok(!json.includes(value), `summary contains ${value}: ${json}`);
    }
    assert.deepEqual(Object.keys(s.request).sort(), [
      "CREDIT_CARD",
      "EMAIL",
      "EMPLOYEE_ID",
      "IBAN",
      "IPV4",
      "PHONE",
      "PROJECT_CODENAME",
      "US_SSN",
    ]);
    for (const entry of [...Object.values(s.request), ...Object.values(s.response)]) {
      assert.deepEqual(Object.keys(entry).sort(), ["action", "count"]);
    }
  });
});
