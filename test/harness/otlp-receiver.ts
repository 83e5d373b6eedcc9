/**
 * A small OTLP/HTTP trace receiver for tests, standing in for the collector (which is outside the product):
 * it accepts `POST /v1/traces` as protobuf or JSON, decodes with the official opentelemetry-proto
 * definitions (proto/opentelemetry/), and keeps every span with its service's name. It can also refuse
 * (answer a status) or stall (never answer), to test a collector that is down or slow.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ExportTraceServiceRequest } from "../../extproc/tracing/index.js";

/** A span as received, ids in hex, attributes as plain values. */
export interface ReceivedSpan {
  /** The resource's `service.name`. */
  readonly service: string;
  readonly scope: string;
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly status: number;
}

/** How the receiver answers. */
export type ReceiverMode =
  | { readonly answer: "ok" }
  | { readonly answer: "status"; readonly status: number }
  | { readonly answer: "stall" };

/** A running receiver. */
export interface OtlpReceiver {
  readonly port: number;
  /** The spans received (the newest `keep`). */
  readonly spans: ReceivedSpan[];
  /** Spans received in all. */
  readonly received: number;
  /** Every request body as received (to look for text that must not be there). */
  readonly bodies: Buffer[];
  /** Export requests received, answered or not. */
  readonly requests: number;
  mode: ReceiverMode;
  /** Whether bodies are decoded and kept (a benchmark turns it off once checked: it only needs them taken). */
  decode: boolean;
  close(): Promise<void>;
}

type Decoded = {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{ scope?: { name?: string }; spans?: RawSpan[] }>;
  }>;
};
type KeyValue = { key: string; value?: Record<string, unknown> };
type RawSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  status?: { code?: number };
};

function value(kv: KeyValue): string | number | boolean {
  const v = kv.value ?? {};
  if ("stringValue" in v) return v.stringValue as string;
  if ("intValue" in v) return Number(v.intValue);
  if ("doubleValue" in v) return v.doubleValue as number;
  if ("boolValue" in v) return v.boolValue as boolean;
  return JSON.stringify(v);
}

const attributes = (list: KeyValue[] | undefined) =>
  Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv)]));
const hex = (base64: string | undefined) => Buffer.from(base64 ?? "", "base64").toString("hex");

/** The spans of one export request body. */
export function decodeExport(body: Buffer, contentType: string): ReceivedSpan[] {
  const message = contentType.startsWith("application/json")
    ? ExportTraceServiceRequest.fromObject(JSON.parse(body.toString("utf8")))
    : ExportTraceServiceRequest.decode(body);
  const decoded = ExportTraceServiceRequest.toObject(message, {
    longs: String,
    bytes: String,
    enums: Number,
    defaults: false,
  }) as Decoded;
  const out: ReceivedSpan[] = [];
  for (const rs of decoded.resourceSpans ?? []) {
    const service = String(attributes(rs.resource?.attributes)["service.name"] ?? "");
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        out.push({
          service,
          scope: ss.scope?.name ?? "",
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          parentSpanId: hex(span.parentSpanId),
          name: span.name,
          kind: span.kind ?? 0,
          startNs: BigInt(span.startTimeUnixNano),
          endNs: BigInt(span.endTimeUnixNano),
          attributes: attributes(span.attributes),
          status: span.status?.code ?? 0,
        });
      }
    }
  }
  return out;
}

/**
 * Starts a receiver on a free loopback port, answering as `mode` says and keeping the newest `keep` spans
 * and request bodies (a benchmark's run sends hundreds of thousands).
 */
export async function startOtlpReceiver(
  mode: ReceiverMode = { answer: "ok" },
  keep = Number.POSITIVE_INFINITY,
): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: Buffer[] = [];
  const stalled: ServerResponse[] = [];
  let requests = 0;
  let received = 0;
  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    requests++;
    if (req.method !== "POST" || req.url !== "/v1/traces") return void res.writeHead(404).end();
    if (receiver.mode.answer === "stall") return void stalled.push(res);
    if (receiver.mode.answer === "status") return void res.writeHead(receiver.mode.status).end();
    if (!receiver.decode) return void res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    bodies.push(body);
    const contentType = req.headers["content-type"] ?? "";
    try {
      const decoded = decodeExport(body, contentType);
      received += decoded.length;
      spans.push(...decoded);
    } catch (err) {
      return void res.writeHead(400, { "content-type": "text/plain" }).end(String(err));
    }
    if (spans.length > keep) spans.splice(0, spans.length - keep);
    if (bodies.length > keep) bodies.splice(0, bodies.length - keep);
    res.writeHead(200, { "content-type": contentType }).end();
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const receiver: OtlpReceiver = {
    port: (server.address() as AddressInfo).port,
    spans,
    bodies,
    get requests() {
      return requests;
    },
    get received() {
      return received;
    },
    mode,
    decode: true,
    close: () =>
      new Promise<void>((resolve) => {
        stalled.forEach((res) => res.destroy());
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
