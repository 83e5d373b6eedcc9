/**
 * OpenTelemetry traces through real Envoy and extproc to a real OTLP/HTTP receiver (test/harness): one trace
 * per request (Envoy's server span → its ext_proc call → extproc's exchange, phase and step spans; the model
 * server gets the trace in `traceparent`), GenAI attributes equal to what the client and the audit log saw,
 * never the prompt, nothing from extproc unless it is configured, and requests unaffected by a collector
 * that refuses or stalls.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TRACES_CLUSTER } from "../../deploy/render/tracing.js";
import { renderEnvoyConfig } from "../harness/envoy-config.js";
import { DEFAULT_PORTS, DEMO_KEYS, ROOT, startStack, waitFor, type Stack } from "../harness/index.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../harness/otlp-receiver.js";
import { writePolicy } from "../harness/policy.js";
import { auditRecordOf, client, extprocMetrics, markForwarded, sampleValue, userChat } from "./helpers.js";

const ENVOY = "llm-gateway-envoy";
const EXTPROC = "llm-gateway-extproc";
const EXT_PROC_CALL = "async envoy.service.ext_proc.v3.ExternalProcessor.Process egress";
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
/** In every prompt: it must never reach a span (and the demo server echoes it into the answer, too). */
const MARKER = "zanzibar-marker-7731";

/**
 * The spans of the request `requestId`, once Envoy's server span and extproc's exchange span are both in:
 * `exchange` is extproc's ext_proc exchange (SERVER), `inference` the GenAI span under it (CLIENT).
 */
async function traceOf(receiver: OtlpReceiver, requestId: string | null) {
  assert.ok(requestId, "response has no x-request-id");
  const find = () => ({
    ingress: receiver.spans.find(
      (s) => s.service === ENVOY && s.attributes["guid:x-request-id"] === requestId,
    ),
    exchange: receiver.spans.find(
      (s) =>
        s.service === EXTPROC && s.kind === SERVER && s.attributes["llm_gateway.request_id"] === requestId,
    ),
  });
  await waitFor(`spans of ${requestId}`, async () => {
    const { ingress, exchange } = find();
    return ingress !== undefined && exchange !== undefined;
  });
  const { ingress, exchange } = find() as { ingress: ReceivedSpan; exchange: ReceivedSpan };
  const inference = receiver.spans.find((s) => s.kind === CLIENT && s.parentSpanId === exchange.spanId);
  // Envoy's router span ends after the response is sent: wait for it too when the request was forwarded.
  if (inference?.attributes["llm_gateway.pool"] !== undefined) {
    await waitFor("the router span", async () =>
      receiver.spans.some((s) => s.traceId === ingress.traceId && s.name.startsWith("router ")),
    );
  }
  const spans = receiver.spans.filter((s) => s.traceId === ingress.traceId);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = (parent: ReceivedSpan) => spans.filter((s) => s.parentSpanId === parent.spanId);
  const named = (name: string) => {
    const found = spans.filter((s) => s.service === EXTPROC && s.name === name);
    assert.equal(found.length, 1, `one ${name} span, got ${found.length}`);
    return found[0]!;
  };
  assert.ok(inference, "an inference span under the exchange");
  return { ingress, exchange, inference, spans, byId, children, named };
}

describe("tracing on: one trace per request across Envoy and extproc", () => {
  let receiver: OtlpReceiver;
  let stack: Stack;
  before(async () => {
    receiver = await startOtlpReceiver();
    // Prompts logged to the audit trail by policy: traces still carry none.
    const dir = mkdtempSync(path.join(tmpdir(), "tracing-policy-"));
    const policyFile = writePolicy(dir, (doc) => (doc.audit = { ...doc.audit, logPrompts: true }));
    stack = await startStack({ traces: { port: receiver.port }, policyFile });
  });
  after(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  it("builds Envoy's server span → ext_proc call → exchange → phases → steps, and the model server gets the trace", async () => {
    const since = markForwarded(stack);
    const { data, response } = await client(stack, DEMO_KEYS.research)
      .chat.completions.create(userChat("llama-3.1-8b-instruct", `hello ${MARKER}`))
      .withResponse();
    const requestId = response.headers.get("x-request-id");
    const { ingress, exchange, inference, spans, byId, children, named } = await traceOf(receiver, requestId);

    assert.equal(ingress.kind, SERVER);
    assert.equal(ingress.parentSpanId, "", "Envoy's server span starts the trace");
    const call = byId.get(exchange.parentSpanId)!;
    assert.equal(call.name, EXT_PROC_CALL, "extproc's span is a child of Envoy's ext_proc call");
    assert.equal(call.parentSpanId, ingress.spanId);
    assert.equal(exchange.name, "ext_proc");
    assert.equal(inference.name, "chat llama-3.1-8b-instruct", "{operation} {model}");
    const requestBody = named("ext_proc request_body");
    const responseHeaders = named("ext_proc response_headers");
    assert.ok(
      requestBody.endNs <= inference.startNs && inference.startNs <= responseHeaders.startNs,
      "the inference starts when the request goes upstream",
    );
    assert.equal(inference.endNs, exchange.endNs);

    const phases = children(exchange).filter((s) => s.name.startsWith("ext_proc "));
    assert.deepEqual(phases.map((s) => s.name).sort(), [
      "ext_proc request_body",
      "ext_proc request_headers",
      "ext_proc response_body",
      "ext_proc response_headers",
    ]);
    for (const step of ["guardrails.scan", "pii.scan", "tokens.count", "quota.admit"]) {
      assert.equal(named(step).parentSpanId, requestBody.spanId, `${step} runs in the request body phase`);
    }
    // The settlement follows the last response message: under the exchange, however deep.
    let at: ReceivedSpan | undefined = named("quota.settle");
    while (at && at !== exchange) at = byId.get(at.parentSpanId);
    assert.equal(at, exchange);
    for (const span of spans) {
      assert.ok(span.endNs >= span.startNs, `${span.name} ends after it starts`);
      // Every span reaches Envoy's server span through its parents: one tree.
      let node: ReceivedSpan | undefined = span;
      for (let hops = 0; node && node !== ingress && hops < 10; hops++) node = byId.get(node.parentSpanId);
      assert.equal(node, ingress, `${span.service} ${span.name} hangs off the trace`);
    }

    // The model server got the trace, as the child of Envoy's router span.
    const traceparent = since.one().req.headers.traceparent as string;
    const [, traceId, parentId] = traceparent.split("-");
    assert.equal(traceId, ingress.traceId);
    assert.equal(byId.get(parentId!)?.name, "router pool-a egress");

    // GenAI attributes: what the client saw and the audit log says.
    const record = await auditRecordOf(stack, requestId);
    assert.deepEqual(
      {
        operation: inference.attributes["gen_ai.operation.name"],
        provider: inference.attributes["gen_ai.provider.name"],
        requestModel: inference.attributes["gen_ai.request.model"],
        responseModel: inference.attributes["gen_ai.response.model"],
        input: inference.attributes["gen_ai.usage.input_tokens"],
        output: inference.attributes["gen_ai.usage.output_tokens"],
        server: inference.attributes["server.address"],
        status: inference.attributes["http.response.status_code"],
        team: inference.attributes["llm_gateway.team"],
        key: inference.attributes["llm_gateway.key_id"],
        reason: inference.attributes["llm_gateway.reason"],
        error: inference.attributes["error.type"],
      },
      {
        operation: "chat",
        provider: "vllm",
        requestModel: "llama-3.1-8b-instruct",
        responseModel: data.model,
        input: data.usage!.prompt_tokens,
        output: data.usage!.completion_tokens,
        server: "127.0.0.1",
        status: 200,
        team: record.team,
        key: record.key_id,
        reason: "ok",
        error: undefined,
      },
    );
    assert.equal(exchange.attributes["http.response.status_code"], 200);
    assert.equal(exchange.status, 0, "no error");
    assert.equal(inference.status, 0, "no error");
    assert.ok(record.request_body !== undefined, "the policy logs prompts to the audit trail");
    for (const body of receiver.bodies)
      assert.ok(!body.includes(MARKER), "a prompt or answer reached a span");
  });

  it("continues a client's trace, and follows its sampling decision", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const sampled = client(stack, DEMO_KEYS.research, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    const { response } = await sampled.chat.completions.create(userChat("chat-default", "hi")).withResponse();
    const { ingress, exchange, inference } = await traceOf(receiver, response.headers.get("x-request-id"));
    assert.equal(ingress.traceId, traceId);
    assert.equal(ingress.parentSpanId, "00f067aa0ba902b7");
    assert.equal(exchange.traceId, traceId);
    assert.equal(inference.attributes["gen_ai.request.model"], "chat-default");
    assert.match(String(inference.attributes["gen_ai.response.model"]), /^llama-3\.1-8b-instruct/);

    const unsampledId = "5bf92f3577b34da6a3ce929d0e0e4736";
    const since = markForwarded(stack);
    const unsampled = client(stack, DEMO_KEYS.research, {
      traceparent: `00-${unsampledId}-00f067aa0ba902b7-00`,
    });
    await unsampled.chat.completions.create(userChat("chat-default", "hi"));
    assert.match(
      since.one().req.headers.traceparent as string,
      new RegExp(`^00-${unsampledId}-[0-9a-f]{16}-00$`),
    );
    // A sampled request after it: once its spans are in, the unsampled one's would have been too.
    const { response: next } = await sampled.chat.completions
      .create(userChat("chat-default", "hi"))
      .withResponse();
    await traceOf(receiver, next.headers.get("x-request-id"));
    assert.deepEqual(
      receiver.spans.filter((s) => s.traceId === unsampledId),
      [],
      "nothing recorded for a trace the client does not sample",
    );
  });

  it("names each API's operation, streams included, with the usage the audit log charged", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const stream = await research.chat.completions
      .create(userChat("llama-3.1-8b-instruct", `stream ${MARKER} please`, { stream: true }))
      .withResponse();
    for await (const _ of stream.data);
    const completion = await research.completions
      .create({ model: "llama-3.1-8b-instruct", prompt: `complete ${MARKER}`, max_tokens: 5 })
      .withResponse();
    const embedding = await research.embeddings
      .create({ model: "bge-small-en-v1.5", input: `embed ${MARKER}` })
      .withResponse();
    const cases = [
      [stream.response, "chat"],
      [completion.response, "text_completion"],
      [embedding.response, "embeddings"],
    ] as const;
    for (const [response, operation] of cases) {
      const requestId = response.headers.get("x-request-id");
      const { inference, named } = await traceOf(receiver, requestId);
      const record = await auditRecordOf(stack, requestId);
      assert.equal(inference.attributes["gen_ai.operation.name"], operation);
      assert.equal(inference.name, `${operation} ${record.requested_model}`);
      assert.equal(inference.attributes["gen_ai.usage.input_tokens"], record.usage!.prompt_tokens);
      assert.equal(inference.attributes["gen_ai.usage.output_tokens"], record.usage!.completion_tokens);
      assert.equal(inference.attributes["llm_gateway.stream"], record.stream);
      if (record.stream) {
        const body = named("ext_proc response_body");
        assert.ok(
          Number(body.attributes["llm_gateway.ext_proc.messages"]) > 1,
          "a stream's chunks are one span",
        );
      }
    }
    for (const body of receiver.bodies)
      assert.ok(!body.includes(MARKER), "a prompt or answer reached a span");
  });

  it("marks a refusal as an error with its audit reason, and names no unknown model", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const error = await research.chat.completions.create(userChat("no-such-model", "hi")).then(
      () => assert.fail("an unknown model was answered"),
      (err: unknown) => err as { status: number; headers: Headers },
    );
    assert.equal(error.status, 404);
    const requestId = error.headers.get("x-request-id");
    const { exchange, inference, named } = await traceOf(receiver, requestId);
    const record = await auditRecordOf(stack, requestId);
    assert.equal(inference.name, "chat");
    for (const span of [exchange, inference]) {
      assert.equal(span.status, ERROR);
      assert.equal(span.attributes["error.type"], record.reason);
      assert.equal(span.attributes["llm_gateway.reason"], record.reason);
      assert.equal(span.attributes["http.response.status_code"], 404);
    }
    assert.equal(inference.attributes["gen_ai.response.model"], undefined);
    named("ext_proc request_body");
  });
});

describe("tracing off by default", () => {
  it("has no tracer and no collector in envoy/envoy.yaml, nor in what the harness renders from it", () => {
    const source = readFileSync(path.join(ROOT, "envoy/envoy.yaml"), "utf8");
    const rendered = renderEnvoyConfig(path.join(ROOT, "envoy/envoy.yaml"), {
      ports: DEFAULT_PORTS,
      root: ROOT,
      extprocSockets: [".run/extproc.sock"],
    });
    for (const text of [source, rendered]) {
      assert.doesNotMatch(text, /^\s*tracing:/m);
      assert.ok(!text.includes("envoy.tracers.") && !text.includes(TRACES_CLUSTER));
    }
  });
});

describe("tracing off in extproc (its default) while Envoy traces", () => {
  let receiver: OtlpReceiver;
  let stack: Stack;
  before(async () => {
    receiver = await startOtlpReceiver();
    stack = await startStack({ traces: { port: receiver.port, extproc: false } });
  });
  after(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  it("sends nothing from extproc: Envoy's spans only", async () => {
    const { response } = await client(stack, DEMO_KEYS.research)
      .chat.completions.create(userChat("llama-3.1-8b-instruct", "hi"))
      .withResponse();
    const requestId = response.headers.get("x-request-id");
    await waitFor("Envoy's spans", async () =>
      receiver.spans.some(
        (s) => s.name.startsWith("router ") && s.attributes["upstream_cluster"] === "pool-a",
      ),
    );
    await auditRecordOf(stack, requestId);
    assert.ok(receiver.spans.some((s) => s.attributes["guid:x-request-id"] === requestId));
    assert.deepEqual(
      receiver.spans.filter((s) => s.service !== ENVOY),
      [],
    );
    const metrics = await extprocMetrics(stack);
    assert.equal(sampleValue(metrics, "llm_gateway_trace_spans_exported_total"), 0);
  });
});

describe("a collector that refuses or stalls", () => {
  let receiver: OtlpReceiver;
  let stack: Stack;
  before(async () => {
    receiver = await startOtlpReceiver({ answer: "status", status: 503 });
    stack = await startStack({
      traces: { port: receiver.port, flushIntervalMs: 50 },
      extprocEnv: { EXTPROC_TRACES_QUEUE_SPANS: "8" },
    });
  });
  after(async () => {
    // Closing the receiver first ends the stalled export, so extproc's shutdown need not wait for its timeout.
    await receiver?.close();
    await stack?.stop();
  });

  const dropped = async (reason: string) =>
    sampleValue(await extprocMetrics(stack), "llm_gateway_trace_spans_dropped_total", { reason });

  it("answers every request while the spans are dropped and counted", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const answers = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const answer = await research.chat.completions.create(userChat("llama-3.1-8b-instruct", "hi"));
        assert.ok(answer.choices[0]?.message.content);
      }
    };
    await answers(3);
    await waitFor("export failures counted", async () => (await dropped("export_failed")) > 0);

    // Stalled: one export hangs (up to its 10 s timeout), the 8-span queue fills, later spans are dropped.
    receiver.mode = { answer: "stall" };
    const before = await dropped("queue_full");
    await answers(5);
    await waitFor("queue overflows counted", async () => (await dropped("queue_full")) > before);
    assert.equal(sampleValue(await extprocMetrics(stack), "llm_gateway_trace_spans_exported_total"), 0);
  });
});
