/** protectRequest over policy YAML, with detection inline (as a worker pool with no threads runs it). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Identity } from "../auth/index.js";
import { GatewayError } from "../errors/index.js";
import { parsePolicy, sha256Hex, type Policy } from "../policy/index.js";
import { WorkerPool } from "../workers/index.js";
import type { PiiSession } from "./index.js";
import { protectRequest, type FindPii } from "./request.js";

const workers = new WorkerPool({ workers: 0 });
const findPii: FindPii = (scanner, texts, enabled) => workers.findPii(scanner, texts, enabled);

const policy: Policy = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a }, m2: { pool: pool-a } }
teams: { t: { models: [m1, m2] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
pii:
  rules:
    - { scope: { model: m1 }, actions: { EMAIL: redact, US_SSN: block } }
`,
  "p.yaml",
);

const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1", "m2"]) };

/** protectRequest for k1 → `model`, and the session it handed over (if any). */
function protect(model: string, texts: string[]) {
  let session: PiiSession | undefined;
  const promise = protectRequest(policy.pii, { identity: K1, model, texts }, findPii, (s) => (session = s));
  return { promise, session: () => session };
}

describe("protectRequest", () => {
  it("leaves a request alone when no rule looks for anything in it", async () => {
    const { promise, session } = protect("m2", ["mail a@example.com"]);
    assert.equal(await promise, undefined);
    assert.equal(session(), undefined);
    const noPii = await protectRequest(undefined, { identity: K1, model: "m1", texts: ["x"] }, findPii, () =>
      assert.fail("no session without a pii section"),
    );
    assert.equal(noPii, undefined);
  });

  it("returns every text with the actions applied, the same value getting the same placeholder", async () => {
    const { promise, session } = protect("m1", ["mail a@example.com", "no pii", "again a@example.com"]);
    assert.deepEqual(await promise, ["mail <EMAIL_1>", "no pii", "again <EMAIL_1>"]);
    assert.deepEqual(session()?.request, { EMAIL: { count: 2, action: "redact" } });
    assert.equal(session()?.restore("<EMAIL_1>"), "a@example.com");
  });

  it("refuses a blocked entity with pii_blocked, after handing over the session that counted it", async () => {
    const { promise, session } = protect("m1", ["ssn 123-45-6789, mail a@example.com"]);
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, "pii_blocked");
      assert.equal(err.status, 400);
      assert.match(err.message, /US_SSN/);
      return true;
    });
    assert.deepEqual(session()?.request, {
      US_SSN: { count: 1, action: "block" },
      EMAIL: { count: 1, action: "redact" },
    });
  });
});
