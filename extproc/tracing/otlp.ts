import path from "node:path";
import protobuf from "protobufjs";
import { protoDirectory } from "../config/index.js";
import type { Attributes, FinishedSpan } from "./span.js";

/**
 * OTLP's trace messages, loaded with protobufjs from the official opentelemetry-proto files vendored under
 * proto/opentelemetry/ (proto/README.md): the tests' receiver decodes with them; the exporter writes their
 * field numbers directly (below), and its tests read what it wrote back with them.
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

const { Writer } = protobuf;

/*
 * Field tags (field number << 3 | wire type) of the messages written, from the vendored .proto files:
 * written directly, without building an object per span and attribute for protobufjs to walk.
 */
const LEN = 2;
const tag = (field: number, wireType: number) => (field << 3) | wireType;
const T = {
  resourceSpans: tag(1, LEN), // ExportTraceServiceRequest.resource_spans
  resource: tag(1, LEN), // ResourceSpans.resource
  scopeSpans: tag(2, LEN), // ResourceSpans.scope_spans
  resourceAttributes: tag(1, LEN), // Resource.attributes
  scope: tag(1, LEN), // ScopeSpans.scope
  spans: tag(2, LEN), // ScopeSpans.spans
  scopeName: tag(1, LEN), // InstrumentationScope.name
  traceId: tag(1, LEN),
  spanId: tag(2, LEN),
  parentSpanId: tag(4, LEN),
  name: tag(5, LEN),
  kind: tag(6, 0),
  startTime: tag(7, 1), // fixed64
  endTime: tag(8, 1),
  attributes: tag(9, LEN),
  status: tag(15, LEN),
  flags: tag(16, 5), // fixed32
  statusCode: tag(3, 0), // Status.code
  key: tag(1, LEN), // KeyValue.key
  value: tag(2, LEN), // KeyValue.value
  stringValue: tag(1, LEN), // AnyValue
  boolValue: tag(2, 0),
  intValue: tag(3, 0),
} as const;

/** Writes `attributes` as repeated KeyValue field `fieldTag` (numbers are integers: int_value). */
function writeAttributes(writer: protobuf.Writer, fieldTag: number, attributes: Attributes): void {
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined || value === null) continue;
    writer.uint32(fieldTag).fork().uint32(T.key).string(key).uint32(T.value).fork();
    if (typeof value === "string") writer.uint32(T.stringValue).string(value);
    else if (typeof value === "boolean") writer.uint32(T.boolValue).bool(value);
    else writer.uint32(T.intValue).int64(value);
    writer.ldelim().ldelim();
  }
}

/** One OTLP/HTTP protobuf request body (ExportTraceServiceRequest) carrying `spans` of the service with `resource` attributes. */
export function encodeSpans(resource: Attributes, spans: readonly FinishedSpan[]): Uint8Array {
  const writer = Writer.create();
  writer.uint32(T.resourceSpans).fork();
  writer.uint32(T.resource).fork();
  writeAttributes(writer, T.resourceAttributes, resource);
  writer.ldelim();
  writer.uint32(T.scopeSpans).fork();
  writer.uint32(T.scope).fork().uint32(T.scopeName).string(SCOPE_NAME).ldelim();
  for (const span of spans) {
    writer.uint32(T.spans).fork();
    writer.uint32(T.traceId).bytes(span.traceId).uint32(T.spanId).bytes(span.spanId);
    writer.uint32(T.parentSpanId).bytes(span.parentSpanId);
    writer.uint32(T.name).string(span.name).uint32(T.kind).int32(span.kind);
    writer.uint32(T.startTime).fixed64(span.startNs).uint32(T.endTime).fixed64(span.endNs);
    writeAttributes(writer, T.attributes, span.attributes);
    if (span.status !== 0) writer.uint32(T.status).fork().uint32(T.statusCode).int32(span.status).ldelim();
    // W3C trace flags: sampled (only sampled requests are recorded).
    writer.uint32(T.flags).fixed32(1);
    writer.ldelim();
  }
  writer.ldelim().ldelim();
  return writer.finish();
}
