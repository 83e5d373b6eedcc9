/**
 * extproc's half of the gateway's traces (docs/operations.md#tracing). Envoy traces each request and passes
 * its span in the ext_proc stream's `traceparent` metadata; extproc records its spans under it and sends
 * them to the collector as OTLP/HTTP protobuf. Off unless a collector is configured: there is then no
 * {@link Tracer}, and a request's trace handle is undefined, so no span is ever built.
 */
import { readFileSync } from "node:fs";
import type { TraceSettings } from "../config/index.js";
import { parseTraceparent } from "./context.js";
import { BatchSpanExporter, httpPost, type ExportCounters } from "./exporter.js";
import { RequestTrace, type SpanSink } from "./span.js";

export {
  summarize,
  GEN_AI_OPERATIONS,
  GEN_AI_PROVIDER,
  type ExchangeSummary,
  type InferenceSummary,
} from "./attributes.js";
export { formatTraceparent, parseTraceparent, type SpanContext } from "./context.js";
export {
  BatchSpanExporter,
  BATCH_SPANS,
  httpPost,
  type DropReason,
  type ExportCounters,
  type Post,
  type PostOptions,
} from "./exporter.js";
export { ExportTraceServiceRequest, SCOPE_NAME } from "./otlp.js";
export {
  RequestTrace,
  SpanKind,
  StatusCode,
  traced,
  type Attributes,
  type FinishedSpan,
  type SpanSink,
} from "./span.js";

/** The gRPC metadata key Envoy's tracer puts the ext_proc call's span context in (W3C Trace Context). */
export const TRACEPARENT = "traceparent";

/** How long one export request may take before its batch is dropped. */
const EXPORT_TIMEOUT_MS = 10_000;

/** Starts the trace of each request that Envoy traces. */
export class Tracer {
  constructor(private readonly sink: SpanSink) {}

  /**
   * The trace of a request whose ext_proc stream carried `traceparent`; undefined when it carried none or
   * Envoy does not record the trace (sampled out): extproc follows Envoy's sampling decision.
   */
  startRequest(traceparent: string | undefined): RequestTrace | undefined {
    const parent = parseTraceparent(traceparent);
    return parent?.sampled ? new RequestTrace(this.sink, parent) : undefined;
  }
}

/**
 * A tracer exporting to the collector in `settings`, and what stops it (sending what is queued). Reads the
 * CA file now: a missing one fails start-up, not every export.
 */
export function createTracer(
  settings: TraceSettings,
  counters: ExportCounters,
): { readonly tracer: Tracer; shutdown(): Promise<void> } {
  const exporter = new BatchSpanExporter({
    post: httpPost(settings.endpoint, EXPORT_TIMEOUT_MS, {
      headers: settings.headers,
      ca: settings.caFile === undefined ? undefined : readFileSync(settings.caFile),
    }),
    resource: { "service.name": settings.serviceName },
    queueSpans: settings.queueSpans,
    flushMs: settings.flushMs,
    counters,
  });
  return { tracer: new Tracer(exporter), shutdown: () => exporter.shutdown() };
}
