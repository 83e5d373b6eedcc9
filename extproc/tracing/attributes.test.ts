import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AuditRecord } from "../audit/index.js";
import { summarize } from "./attributes.js";

const RECORD: AuditRecord = {
  request_id: "req-1",
  key_id: "research-notebooks",
  team: "research",
  environment: "prod",
  api: "chat.completions",
  method: "POST",
  path: "/v1/chat/completions",
  requested_model: "chat-default",
  served_model: "llama-3.1-8b-instruct",
  pool: "pool-a",
  status: 200,
  decision: "allow",
  reason: "ok",
  stream: true,
  usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  usage_source: "server",
  latency_ms: { total: 1, gateway: 0.5, upstream: 0.4 },
  policy_digest: "0123456789abcdef",
  request_body: { messages: [{ role: "user", content: "a secret prompt" }] },
  completion: "a secret answer",
};

describe("summarize", () => {
  it("gives the GenAI attributes and the gateway's own, from the audit record", () => {
    assert.deepEqual(summarize(RECORD), {
      attributes: {
        "http.response.status_code": 200,
        "llm_gateway.request_id": "req-1",
        "llm_gateway.reason": "ok",
      },
      inference: {
        name: "chat chat-default",
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "vllm",
          "gen_ai.request.model": "chat-default",
          "gen_ai.response.model": "llama-3.1-8b-instruct",
          "gen_ai.usage.input_tokens": 12,
          "gen_ai.usage.output_tokens": 5,
          "http.response.status_code": 200,
          "llm_gateway.request_id": "req-1",
          "llm_gateway.key_id": "research-notebooks",
          "llm_gateway.team": "research",
          "llm_gateway.environment": "prod",
          "llm_gateway.pool": "pool-a",
          "llm_gateway.reason": "ok",
          "llm_gateway.usage_source": "server",
          "llm_gateway.stream": true,
        },
      },
      errorType: undefined,
    });
  });

  it("never carries the prompt or the answer, even when the policy logs them", () => {
    assert.doesNotMatch(JSON.stringify(summarize(RECORD)), /secret/);
  });

  it("names each API's operation as the conventions do", () => {
    const operation = (api: string | null) =>
      summarize({ ...RECORD, api }).inference?.attributes["gen_ai.operation.name"];
    assert.equal(operation("completions"), "text_completion");
    assert.equal(operation("embeddings"), "embeddings");
    assert.equal(summarize({ ...RECORD, api: "models" }).inference, undefined, "no GenAI operation");
    assert.equal(summarize({ ...RECORD, api: null }).inference, undefined);
  });

  it("makes a refusal an error of its audit reason, naming no model policy does not know", () => {
    const refused = summarize({
      ...RECORD,
      requested_model: "made-up-model-name",
      served_model: null,
      pool: null,
      status: 404,
      decision: "deny",
      reason: "model_not_found",
      usage: null,
      usage_source: undefined,
    });
    assert.equal(refused.inference?.name, "chat");
    assert.equal(refused.errorType, "model_not_found");
    assert.equal(refused.inference.attributes["gen_ai.usage.input_tokens"], undefined);
    assert.equal(refused.inference.attributes["gen_ai.request.model"], "made-up-model-name");
  });
});
