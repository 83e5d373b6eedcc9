/**
 * An {@link Exchange}'s spans, over the unit tier's real parts: a traced exchange records the phase and step
 * spans under the exchange's span, ended with the audit record's attributes once settled; an untraced one
 * (no tracer, or Envoy sent no sampled traceparent) answers byte for byte the same and records nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  unitDeps,
} from "../../test/unit/ext-proc.js";
import { encodeResponse } from "../envoy/protocol.js";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import { SpanKind, Tracer, type FinishedSpan } from "../tracing/index.js";
import { Exchange } from "./index.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const CHAT = { model: "m1", messages: [{ role: "user", content: "a private prompt" }], max_tokens: 20 };
const ANSWER = {
  id: "c1",
  object: "chat.completion",
  created: 1,
  model: "m1",
  choices: [{ index: 0, message: { role: "assistant", content: "a private answer" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
};
const MESSAGES: ProcessingRequestMessage[] = [
  requestHeaders(),
  requestBody(CHAT),
  responseHeaders({ ":status": "200", "content-type": "application/json" }),
  responseBody(JSON.stringify(ANSWER).slice(0, 40), false),
  responseBody(JSON.stringify(ANSWER).slice(40), true),
];

/** Runs one exchange over `MESSAGES`; its answers as bytes, its audit records and the spans it recorded. */
async function run(options: { tracer: boolean; traceparent?: string }) {
  const spans: FinishedSpan[] = [];
  const unit = unitDeps();
  const deps = options.tracer
    ? { ...unit.deps, tracer: new Tracer({ add: (s) => spans.push(s) }) }
    : unit.deps;
  const exchange = new Exchange(deps, options.traceparent);
  const answers: string[] = [];
  for (const message of MESSAGES)
    for (const reply of await exchange.handle(message)) answers.push(encodeResponse(reply).toString("hex"));
  const records = await unit.audit.records();
  await new Promise((resolve) => setImmediate(resolve));
  return { answers, records, spans };
}

describe("Exchange tracing", () => {
  it("records the exchange, its phases and its steps under Envoy's span, with the audit record's attributes", async () => {
    const { records, spans } = await run({ tracer: true, traceparent: TRACEPARENT });
    const byName = new Map(spans.map((s) => [s.name, s]));
    const exchange = byName.get("ext_proc")!;
    const inference = byName.get("chat m1")!;
    assert.ok(exchange && inference, `spans: ${spans.map((s) => s.name).join(", ")}`);
    assert.equal(exchange.kind, SpanKind.SERVER);
    assert.equal(exchange.parentSpanId.toString("hex"), "00f067aa0ba902b7");
    assert.equal(inference.kind, SpanKind.CLIENT);
    assert.deepEqual(inference.parentSpanId, exchange.spanId);
    const [record] = records;
    assert.equal(exchange.attributes["llm_gateway.request_id"], record!.request_id);
    assert.equal(inference.attributes["llm_gateway.request_id"], record!.request_id);
    assert.equal(inference.attributes["gen_ai.provider.name"], "vllm");
    assert.equal(inference.attributes["gen_ai.usage.input_tokens"], 9);
    assert.equal(inference.attributes["gen_ai.usage.output_tokens"], 3);
    assert.equal(inference.attributes["server.address"], "gateway.test");
    const body = byName.get("ext_proc request_body")!;
    const response = byName.get("ext_proc response_body")!;
    assert.equal(response.attributes["llm_gateway.ext_proc.messages"], 2);
    for (const phase of ["request_headers", "request_body", "response_headers", "response_body"])
      assert.deepEqual(byName.get(`ext_proc ${phase}`)?.parentSpanId, exchange.spanId, phase);
    for (const step of ["guardrails.scan", "pii.scan", "tokens.count", "quota.admit"])
      assert.deepEqual(byName.get(step)?.parentSpanId, body.spanId, step);
    assert.deepEqual(byName.get("quota.settle")?.parentSpanId, response.spanId);
    assert.equal(spans.length, 11);
    assert.doesNotMatch(JSON.stringify(spans), /private/);
  });

  it("answers the same, and records nothing, when the request is not traced", async () => {
    const traced = await run({ tracer: true, traceparent: TRACEPARENT });
    const off = await run({ tracer: false, traceparent: TRACEPARENT });
    const unsampled = await run({ tracer: true, traceparent: TRACEPARENT.replace(/01$/, "00") });
    const missing = await run({ tracer: true });
    assert.deepEqual(off.answers, traced.answers);
    for (const untraced of [off, unsampled, missing]) {
      assert.deepEqual(untraced.answers, traced.answers);
      assert.deepEqual(untraced.spans, []);
      assert.equal(untraced.records.length, 1);
    }
  });
});
