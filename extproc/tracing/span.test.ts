import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseTraceparent } from "./context.js";
import { Tracer } from "./index.js";
import { RequestTrace, SpanKind, StatusCode, traced, type FinishedSpan } from "./span.js";

const PARENT = parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")!;

function recording() {
  const spans: FinishedSpan[] = [];
  const trace = new RequestTrace({ add: (span) => spans.push(span) }, PARENT);
  const named = (name: string) => spans.filter((s) => s.name === name);
  return { spans, trace, named };
}

describe("RequestTrace", () => {
  it("records the exchange under Envoy's span, one span per phase under it, steps under the open phase", async () => {
    const { spans, trace, named } = recording();
    trace.annotate({ "server.address": "gateway.example" });
    trace.enterPhase("request_headers");
    trace.leavePhase();
    trace.enterPhase("request_body");
    trace.leavePhase();
    trace.enterPhase("request_body");
    assert.equal(await trace.step("quota.admit", async () => 42), 42);
    trace.leavePhase();
    trace.enterPhase("response_body");
    trace.leavePhase();
    trace.end({
      attributes: { "llm_gateway.request_id": "r" },
      inference: { name: "chat m", attributes: { "gen_ai.operation.name": "chat" } },
      errorType: undefined,
    });
    await trace.step("late", async () => undefined);

    const [exchange] = named("ext_proc");
    assert.ok(exchange);
    assert.equal(exchange.kind, SpanKind.SERVER);
    assert.deepEqual(exchange.parentSpanId, PARENT.spanId);
    assert.deepEqual(exchange.attributes, { "llm_gateway.request_id": "r" });
    assert.equal(exchange.status, StatusCode.UNSET);
    const [inference] = named("chat m");
    assert.ok(inference);
    assert.equal(inference.kind, SpanKind.CLIENT);
    assert.deepEqual(inference.parentSpanId, exchange.spanId);
    assert.deepEqual(inference.attributes, {
      "server.address": "gateway.example",
      "gen_ai.operation.name": "chat",
    });
    const requestBody = named("ext_proc request_body")[0]!;
    assert.equal(inference.startNs, requestBody.endNs, "the inference starts once the request went upstream");
    assert.ok(inference.startNs < named("ext_proc response_body")[0]!.startNs);
    assert.equal(inference.endNs, exchange.endNs);
    const body = named("ext_proc request_body");
    assert.equal(body.length, 1, "the chunks of a body are one span");
    assert.equal(body[0]!.attributes["llm_gateway.ext_proc.messages"], 2);
    assert.equal(named("ext_proc request_headers")[0]!.attributes["llm_gateway.ext_proc.messages"], 1);
    for (const phase of ["ext_proc request_headers", "ext_proc request_body", "ext_proc response_body"]) {
      assert.deepEqual(named(phase)[0]!.parentSpanId, exchange.spanId, phase);
    }
    assert.deepEqual(named("quota.admit")[0]!.parentSpanId, body[0]!.spanId);
    assert.deepEqual(named("late"), [], "nothing is recorded once the exchange ended");
    for (const span of spans) {
      assert.deepEqual(span.traceId, PARENT.traceId);
      assert.ok(span.endNs >= span.startNs);
      assert.ok(
        exchange.startNs <= span.startNs && span.endNs <= exchange.endNs,
        `${span.name} within the exchange`,
      );
    }
    assert.equal(new Set(spans.map((s) => s.spanId.toString("hex"))).size, spans.length);
  });

  it("records a failed step as an error of its code, and rethrows", async () => {
    const { trace, named } = recording();
    const refusal = Object.assign(new Error("over quota"), { code: "rate_limit_exceeded" });
    await assert.rejects(
      trace.step("quota.admit", async () => Promise.reject(refusal)),
      (err) => err === refusal,
    );
    await assert.rejects(trace.step("tokens.count", () => Promise.reject(new TypeError("bug"))));
    const [admit] = named("quota.admit");
    assert.equal(admit!.status, StatusCode.ERROR);
    assert.equal(admit!.attributes["error.type"], "rate_limit_exceeded");
    assert.equal(named("tokens.count")[0]!.attributes["error.type"], "TypeError");
  });

  it("ends once, a refusal an error of its type on both spans", () => {
    const { spans, trace } = recording();
    const refused = { name: "chat", attributes: { "gen_ai.operation.name": "chat" } };
    trace.enterPhase("request_body");
    trace.leavePhase();
    trace.end({ attributes: {}, inference: refused, errorType: "model_not_found" });
    trace.end({ attributes: {}, inference: refused, errorType: undefined });
    assert.deepEqual(
      spans.map((s) => s.name),
      ["ext_proc request_body", "chat", "ext_proc"],
    );
    for (const span of spans.slice(1)) {
      assert.equal(span.status, StatusCode.ERROR);
      assert.equal(span.attributes["error.type"], "model_not_found");
    }
  });

  it("records no inference span for an API that is no GenAI operation", () => {
    const { spans, trace } = recording();
    trace.end({ attributes: {}, inference: undefined, errorType: undefined });
    assert.deepEqual(
      spans.map((s) => s.name),
      ["ext_proc"],
    );
  });
});

describe("traced", () => {
  it("only runs the step when the request is not traced", async () => {
    assert.equal(await traced(undefined, "x", async () => 7), 7);
  });
});

describe("Tracer", () => {
  it("traces only what Envoy traces and samples", () => {
    const tracer = new Tracer({ add: () => {} });
    assert.equal(tracer.startRequest(undefined), undefined);
    assert.equal(tracer.startRequest("garbage"), undefined);
    assert.equal(tracer.startRequest("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), undefined);
    const trace = tracer.startRequest("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert.equal(trace?.traceId.toString("hex"), "4bf92f3577b34da6a3ce929d0e0e4736");
  });
});
