/**
 * Policy as code, live: extproc reloads its policy when the file changes (and on SIGHUP) while requests
 * keep flowing — none dropped, none refused because of the reload — a new key works and a revoked one is
 * refused within a second, and a broken file is rejected with the last good policy kept in force.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as yaml from "js-yaml";
import { sha256Hex } from "../../extproc/policy/index.js";
import { DEMO_KEYS, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { extprocMetrics, policyDigest, rawRequest, sampleValue, userChat } from "./helpers.js";

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

const chat = (key: string, on: Stack = stack) =>
  rawRequest(on, "/v1/chat/completions", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(userChat("chat-default", "hi", { max_tokens: 2 })),
  });

const successfulReloads = async (on: Stack) =>
  sampleValue(await extprocMetrics(on), "llm_gateway_policy_reloads_total", { result: "success" });

/**
 * Publishes `next` and waits for extproc to swap it in; returns how long after publishing it did so, by
 * extproc's own reload timestamp, so what is measured is the reload, not how long the requests that notice
 * it queue on a loaded machine.
 */
async function reloadDelay(next: PolicyDoc): Promise<number> {
  const reloads = await successfulReloads(stack);
  const publishedAt = Date.now();
  publish(next);
  await waitFor("the policy reloaded", async () => (await successfulReloads(stack)) > reloads, 10_000);
  const reloadedAt = sampleValue(
    await extprocMetrics(stack),
    "llm_gateway_policy_last_success_timestamp_seconds",
  );
  return reloadedAt * 1000 - publishedAt;
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
      // A new key, and the support key revoked: reloaded within a second, both in force from the next request.
      doc.keys.push({ id: "rotated-in", team: "support", sha256: sha256Hex(NEW_KEY) });
      doc.keys.find((k: { id: string }) => k.id === "support-bot").revoked = true;
      const delay = await reloadDelay(doc);
      assert.ok(delay < 1000, `reloaded ${delay.toFixed(0)} ms after the file changed`);
      assert.equal((await chat(NEW_KEY)).status, 200);
      assert.equal((await chat(DEMO_KEYS.support)).status, 401);

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

      // The fixed file, with the support key active again (SIGHUP on its own is tested below).
      doc.keys.find((k: { id: string }) => k.id === "support-bot").revoked = false;
      await reloadDelay(doc);
      assert.equal((await chat(DEMO_KEYS.support)).status, 200);
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

describe("SIGHUP", () => {
  const HUP_KEY = "sk-test-after-sighup";
  let hup: Stack;
  let target: string;
  let hupDoc: PolicyDoc;
  before(async () => {
    // extproc watches the directory of the path it is given. That path is a symlink here, and the file it
    // points to, in another directory, is rewritten in place: no event reaches the watcher, so only the
    // signal can make extproc read the change.
    const hupDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-sighup-"));
    mkdirSync(path.join(hupDir, "real"));
    mkdirSync(path.join(hupDir, "watched"));
    target = writePolicy(path.join(hupDir, "real"), (d) => {
      hupDoc = d;
    });
    const given = path.join(hupDir, "watched", "policy.yaml");
    symlinkSync(target, given);
    hup = await startStack({ policyFile: given, workDir: hupDir });
  });
  after(() => hup?.stop());

  /** The digest label of llm_gateway_policy_info: the policy in force. */
  const digest = () => policyDigest(hup);
  /** extproc's "policy reloaded" log lines, with their trigger. */
  const reloadsLogged = (): string[] =>
    readFileSync(path.join(hup.workDir, "extproc.log"), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg?: string; trigger?: string })
      .filter((line) => line.msg === "policy reloaded")
      .map((line) => String(line.trigger));

  it("reloads a change the file watcher never saw, logged with trigger SIGHUP and a new policy_info", async () => {
    const before = await digest();
    assert.ok(before, "no llm_gateway_policy_info sample");
    hupDoc.keys.push({ id: "after-sighup", team: "support", sha256: sha256Hex(HUP_KEY) });
    writeFileSync(target, yaml.dump(hupDoc));
    // Ample time for a watcher (it reloads 50 ms after an event): the change must still be unseen.
    await sleep(1500);
    assert.equal((await chat(HUP_KEY, hup)).status, 401, "the change was loaded without SIGHUP");
    assert.equal(await digest(), before);
    assert.deepEqual(reloadsLogged(), []);

    hup.signalExtProc("SIGHUP");
    await waitFor("the reload SIGHUP asks for", async () => (await digest()) !== before, 10_000);
    assert.equal((await chat(HUP_KEY, hup)).status, 200);
    assert.deepEqual(reloadsLogged(), ["SIGHUP"]);
  });
});
