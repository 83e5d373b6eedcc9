/**
 * Environments: the same gateway serves dev and prod hosts with different models and limits, chosen by the
 * host a request arrives on (here `localhost` is dev and `127.0.0.1` prod, per the sample policy).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI, { NotFoundError } from "openai";
import { DEMO_KEYS, startStack, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { auditRecordOf } from "./helpers.js";

let stack: Stack;
let dev: OpenAI;
let prod: OpenAI;

before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-env-"));
  const policyFile = writePolicy(dir, (doc) => {
    doc.models["llama-3.1-8b-instruct-v2"].environments = ["dev"]; // the canary only in dev
    doc.limits.push({
      id: "dev-tight",
      scope: { environment: "dev", key: "research-notebooks" },
      requestsPerMinute: 7,
    });
  });
  stack = await startStack({ policyFile, workDir: dir });
  const options = { apiKey: DEMO_KEYS.research, maxRetries: 0 };
  dev = new OpenAI({ ...options, baseURL: `http://localhost:${stack.ports.http}/v1` });
  prod = new OpenAI({ ...options, baseURL: `http://127.0.0.1:${stack.ports.http}/v1` });
});
after(() => stack?.stop());

describe("environments", () => {
  it("offers a dev-only model in dev and hides it in prod", async () => {
    const ids = async (c: OpenAI) => (await c.models.list()).data.map((m) => m.id);
    assert.ok((await ids(dev)).includes("llama-3.1-8b-instruct-v2"));
    assert.ok(!(await ids(prod)).includes("llama-3.1-8b-instruct-v2"));
    const ask = (c: OpenAI) =>
      c.chat.completions.create({
        model: "llama-3.1-8b-instruct-v2",
        messages: [{ role: "user", content: "hi" }],
      });
    assert.equal((await ask(dev)).model, "llama-3.1-8b-instruct-v2");
    await assert.rejects(ask(prod), NotFoundError);
  });

  it("routes an alias only to targets of the environment, and applies environment-scoped limits", async () => {
    const { data, response } = await prod.chat.completions
      .create({ model: "chat-default", messages: [{ role: "user", content: "hi" }], max_tokens: 1 })
      .withResponse();
    assert.equal(data.model, "llama-3.1-8b-instruct");
    assert.equal(response.headers.get("x-ratelimit-limit-requests"), null);
    // 40 more draws: with the 10 % canary excluded in prod, every one lands on the production model.
    for (let i = 0; i < 40; i++) {
      const again = await prod.chat.completions.create({
        model: "chat-default",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
      });
      assert.equal(again.model, "llama-3.1-8b-instruct");
    }
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.equal(record.environment, "prod");
    const { response: devResponse } = await dev.chat.completions
      .create({ model: "chat-default", messages: [{ role: "user", content: "hi" }], max_tokens: 1 })
      .withResponse();
    assert.equal(devResponse.headers.get("x-ratelimit-limit-requests"), "7");
  });
});
