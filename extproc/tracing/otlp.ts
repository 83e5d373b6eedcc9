import path from "node:path";
import protobuf from "protobufjs";
import { protoDirectory } from "../config/index.js";
import type { Attributes, FinishedSpan } from "./span.js";

/**
 * OTLP's trace messages, loaded with protobufjs from the official opentelemetry-proto files vendored under
 * proto/opentelemetry/ (proto/README.md): the exporter encodes with them, the tests' receiver decodes.
 */
const root = new protobuf.Root();
const protoDir = protoDirectory();
root.resolvePath = (_origin, target) => path.join(protoDir, target);
root.loadSync("opentelemetry/proto/collector/trace/v1/trace_service.proto", { keepCase: false });

/** `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest` */
export const ExportTraceServiceRequest = root.lookupType(
  "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
);

/** The instrumentation scope extproc's spans carry. */
export const SCOPE_NAME = "llm-gateway/extproc";

/** OTLP KeyValues of `attributes` (numbers are integers: intValue). */
function keyValues(attributes: Attributes): object[] {
  const out: object[] = [];
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined || value === null) continue;
    out.push({
      key,
      value:
        typeof value === "string"
          ? { stringValue: value }
          : typeof value === "boolean"
            ? { boolValue: value }
            : { intValue: value },
    });
  }
  return out;
}

/** One OTLP/HTTP protobuf request body carrying `spans` of the service with `resource` attributes. */
export function encodeSpans(resource: Attributes, spans: readonly FinishedSpan[]): Uint8Array {
  return ExportTraceServiceRequest.encode({
    resourceSpans: [
      {
        resource: { attributes: keyValues(resource) },
        scopeSpans: [
          {
            scope: { name: SCOPE_NAME },
            spans: spans.map((span) => ({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId,
              name: span.name,
              kind: span.kind,
              startTimeUnixNano: span.startNs,
              endTimeUnixNano: span.endNs,
              attributes: keyValues(span.attributes),
              // W3C trace flags: sampled (only sampled requests are recorded).
              flags: 1,
              status: { code: span.status },
            })),
          },
        ],
      },
    ],
  }).finish();
}
