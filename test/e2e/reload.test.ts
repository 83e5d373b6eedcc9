/**
 * Policy as code, live: extproc reloads its policy when the file changes (and on SIGHUP) while requests
 * keep flowing — none dropped, none refused because of the reload — a new key works and a revoked one is
 * refused within a second, and a broken file is rejected with the last good policy kept in force.
 */
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as yaml from "js-yaml";
import { sha256Hex } from "../../extproc/policy/index.js";
import { DEMO_KEYS, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { extprocMetrics, rawRequest, sampleValue } from "./helpers.js";

const NEW_KEY = "sk-test-rotated-in";
let stack: Stack;
let dir: string;
let policyFile: string;
let doc: PolicyDoc;

/** Replaces the policy file atomically (write + rename), as a deploy tool or ConfigMap update does. */
function publish(next: PolicyDoc | string): void {
  const tmp = path.join(dir, ".policy.yaml.tmp");
  writeFileSync(tmp, typeof next === "string" ? next : yaml.dump(next));
  renameSync(tmp, policyFile);
}

const chat = (key: string) =>
  rawRequest(stack, "/v1/chat/completions", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "chat-default",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    }),
  });

/** Time until `key` gets `status`, in ms. */
async function timeUntil(key: string, status: number): Promise<number> {
  const started = Date.now();
  await waitFor(`${key} → ${status}`, async () => (await chat(key)).status === status, 5000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 1000, `${key} got ${status} only after ${elapsed} ms`);
  return elapsed;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-reload-"));
  policyFile = writePolicy(dir, (d) => {
    doc = d;
  });
  stack = await startStack({ policyFile, workDir: dir });
});
after(() => stack?.stop());

describe("policy hot reload", () => {
  it("applies changes under load without dropping a request, and keeps the last good policy", async () => {
    const statuses: Record<number, number> = {};
    let running = true;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (running) {
          const { status } = await chat(DEMO_KEYS.research);
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
      }),
    );

    try {
      // A new key, and the support key revoked: both take effect within a second.
      doc.keys.push({ id: "rotated-in", team: "support", sha256: sha256Hex(NEW_KEY) });
      doc.keys.find((k: { id: string }) => k.id === "support-bot").revoked = true;
      publish(doc);
      await timeUntil(NEW_KEY, 200);
      await timeUntil(DEMO_KEYS.support, 401);

      // A broken file: rejected, counted, and the policy in force does not change.
      const failuresBefore = sampleValue(await extprocMetrics(stack), "llm_gateway_policy_reloads_total", {
        result: "failure",
      });
      publish(
        yaml.dump({ ...doc, keys: [...doc.keys, { id: "x", team: "no-such-team", sha256: sha256Hex("k") }] }),
      );
      await waitFor("reload rejected", async () => {
        const metrics = await extprocMetrics(stack);
        return (
          sampleValue(metrics, "llm_gateway_policy_reloads_total", { result: "failure" }) > failuresBefore
        );
      });
      assert.equal((await chat(NEW_KEY)).status, 200);
      assert.equal((await chat(DEMO_KEYS.support)).status, 401);

      // SIGHUP reloads too (here: the fixed file, with the support key active again).
      doc.keys.find((k: { id: string }) => k.id === "support-bot").revoked = false;
      writeFileSync(policyFile, yaml.dump(doc));
      stack.signalExtProc("SIGHUP");
      await timeUntil(DEMO_KEYS.support, 200);
    } finally {
      running = false;
      await load;
    }
    assert.deepEqual(Object.keys(statuses), ["200"], `load saw ${JSON.stringify(statuses)}`);
    assert.ok(statuses[200]! > 50);
    const metrics = await extprocMetrics(stack);
    assert.ok(sampleValue(metrics, "llm_gateway_policy_reloads_total", { result: "success" }) >= 3);
    assert.ok(
      sampleValue(metrics, "llm_gateway_policy_last_success_timestamp_seconds") > Date.now() / 1000 - 60,
    );
  });
});
