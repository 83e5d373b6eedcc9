import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeSpans, ExportTraceServiceRequest, SCOPE_NAME } from "./otlp.js";
import { SpanKind, StatusCode, type FinishedSpan } from "./span.js";

const SPAN: FinishedSpan = {
  traceId: Buffer.from("4bf92f3577b34da6a3ce929d0e0e4736", "hex"),
  spanId: Buffer.from("00f067aa0ba902b7", "hex"),
  parentSpanId: Buffer.from("b7ad6b7169203331", "hex"),
  name: "chat llama-3.1-8b-instruct",
  kind: SpanKind.SERVER,
  startNs: 1_764_633_600_123_456_768,
  endNs: 1_764_633_600_223_456_768,
  attributes: { "gen_ai.usage.input_tokens": 1234, "gen_ai.operation.name": "chat", ok: true, gone: null },
  status: StatusCode.ERROR,
};

describe("encodeSpans", () => {
  it("writes what the official OTLP definitions read back, field for field", () => {
    const decoded = ExportTraceServiceRequest.toObject(
      ExportTraceServiceRequest.decode(encodeSpans({ "service.name": "llm-gateway-extproc" }, [SPAN, SPAN])),
      { longs: String, bytes: String, enums: String },
    );
    const [resourceSpans] = decoded.resourceSpans;
    assert.deepEqual(resourceSpans.resource.attributes, [
      { key: "service.name", value: { stringValue: "llm-gateway-extproc" } },
    ]);
    const [scopeSpans] = resourceSpans.scopeSpans;
    assert.equal(scopeSpans.scope.name, SCOPE_NAME);
    assert.equal(scopeSpans.spans.length, 2);
    const hex = (b64: string) => Buffer.from(b64, "base64").toString("hex");
    const span = scopeSpans.spans[0];
    assert.deepEqual(
      {
        ...span,
        traceId: hex(span.traceId),
        spanId: hex(span.spanId),
        parentSpanId: hex(span.parentSpanId),
      },
      {
        traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
        spanId: "00f067aa0ba902b7",
        parentSpanId: "b7ad6b7169203331",
        name: "chat llama-3.1-8b-instruct",
        kind: "SPAN_KIND_SERVER",
        startTimeUnixNano: BigInt(SPAN.startNs).toString(),
        endTimeUnixNano: BigInt(SPAN.endNs).toString(),
        attributes: [
          { key: "gen_ai.usage.input_tokens", value: { intValue: "1234" } },
          { key: "gen_ai.operation.name", value: { stringValue: "chat" } },
          { key: "ok", value: { boolValue: true } },
        ],
        status: { code: "STATUS_CODE_ERROR" },
        flags: 1,
      },
    );
  });
});
