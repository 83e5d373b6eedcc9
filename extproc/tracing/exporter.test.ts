import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { parseTraceparent } from "./context.js";
import { BATCH_SPANS, BatchSpanExporter, httpPost, type DropReason, type Post } from "./exporter.js";
import { ExportTraceServiceRequest, SCOPE_NAME } from "./otlp.js";
import { SpanKind, type FinishedSpan } from "./span.js";

const PARENT = parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")!;

const span = (i: number): FinishedSpan => ({
  traceId: PARENT.traceId,
  spanId: Buffer.from(`0000000${i}`.slice(-8).padStart(8, "x")),
  parentSpanId: PARENT.spanId,
  name: `span ${i}`,
  kind: SpanKind.INTERNAL,
  startNs: 1_700_000_000_000_000_000,
  endNs: 1_700_000_000_000_001_024,
  attributes: {
    "gen_ai.usage.input_tokens": i,
    "llm_gateway.team": "research",
    "llm_gateway.stream": false,
    none: undefined,
  },
  status: 0,
});

function counting() {
  const counts = { exported: 0, queue_full: 0, export_failed: 0 };
  return {
    counts,
    counters: {
      exported: (n: number) => (counts.exported += n),
      dropped: (reason: DropReason, n: number) => (counts[reason] += n),
    },
  };
}

type Decoded = {
  resourceSpans: Array<{
    resource: { attributes: unknown[] };
    scopeSpans: Array<{ scope: { name: string }; spans: Array<Record<string, unknown>> }>;
  }>;
};
const decode = (body: Uint8Array) =>
  ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), {
    longs: String,
    bytes: String,
  }) as Decoded;

describe("BatchSpanExporter", () => {
  it("sends what is queued as OTLP protobuf, in batches, one request at a time", async () => {
    const bodies: Uint8Array[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const post: Post = async (body) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      bodies.push(body);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      return 200;
    };
    const { counts, counters } = counting();
    const exporter = new BatchSpanExporter({
      post,
      resource: { "service.name": "svc" },
      queueSpans: 10_000,
      flushMs: 60_000,
      counters,
    });
    const total = BATCH_SPANS * 2 + 3;
    for (let i = 0; i < total; i++) exporter.add(span(i));
    await exporter.shutdown();
    assert.equal(counts.exported, total);
    assert.equal(maxInFlight, 1);
    assert.deepEqual(
      bodies.map((b) => decode(b).resourceSpans[0]!.scopeSpans[0]!.spans.length),
      [BATCH_SPANS, BATCH_SPANS, 3],
    );
    const first = decode(bodies[0]!);
    assert.deepEqual(first.resourceSpans[0]!.resource.attributes, [
      { key: "service.name", value: { stringValue: "svc" } },
    ]);
    assert.equal(first.resourceSpans[0]!.scopeSpans[0]!.scope.name, SCOPE_NAME);
    const decoded = first.resourceSpans[0]!.scopeSpans[0]!.spans[1]!;
    assert.equal(
      Buffer.from(decoded.traceId as string, "base64").toString("hex"),
      "4bf92f3577b34da6a3ce929d0e0e4736",
    );
    assert.equal(decoded.name, "span 1");
    assert.equal(decoded.endTimeUnixNano, "1700000000000001024");
    assert.deepEqual(decoded.attributes, [
      { key: "gen_ai.usage.input_tokens", value: { intValue: "1" } },
      { key: "llm_gateway.team", value: { stringValue: "research" } },
      { key: "llm_gateway.stream", value: { boolValue: false } },
    ]);
  });

  it("drops and counts spans beyond its queue while the collector does not answer, without waiting for it", async () => {
    let release!: (status: number) => void;
    let stalled = true;
    const post: Post = () => (stalled ? new Promise((resolve) => (release = resolve)) : Promise.resolve(200));
    const { counts, counters } = counting();
    const exporter = new BatchSpanExporter({ post, resource: {}, queueSpans: 4, flushMs: 10, counters });
    exporter.add(span(0));
    await new Promise((resolve) => setTimeout(resolve, 30)); // the first export is on its way, and hangs
    for (let i = 1; i <= 10; i++) exporter.add(span(i));
    assert.equal(exporter.queued, 4);
    assert.equal(counts.queue_full, 6);
    stalled = false;
    release(200);
    await exporter.shutdown();
    assert.equal(counts.exported, 1 + 4);
  });

  it("drops and counts a batch the collector refuses or cannot take", async () => {
    const answers: Array<() => Promise<number>> = [
      async () => 503,
      async () => Promise.reject(new Error("ECONNREFUSED")),
      async () => 200,
    ];
    const { counts, counters } = counting();
    const exporter = new BatchSpanExporter({
      post: () => answers.shift()!(),
      resource: {},
      queueSpans: 100,
      flushMs: 60_000,
      counters,
    });
    for (const n of [2, 3, 1]) {
      for (let i = 0; i < n; i++) exporter.add(span(i));
      await exporter.shutdown();
    }
    assert.deepEqual(counts, { exported: 1, queue_full: 0, export_failed: 5 });
  });
});

describe("httpPost", () => {
  it("posts protobuf to the collector and gives up on one that does not answer in time", async () => {
    const seen: Array<{ type: string | undefined; length: number }> = [];
    const stalled: ServerResponse[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ type: req.headers["content-type"], length: Buffer.concat(chunks).length });
        if (seen.length === 1) res.writeHead(200).end();
        else stalled.push(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const post = httpPost(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, 200);
      assert.equal(await post(new Uint8Array([1, 2, 3])), 200);
      await assert.rejects(post(new Uint8Array([4])), /no answer .* in 200 ms/);
      assert.deepEqual(seen, [
        { type: "application/x-protobuf", length: 3 },
        { type: "application/x-protobuf", length: 1 },
      ]);
    } finally {
      stalled.forEach((res) => res.destroy());
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("sends the configured headers, over TLS verified against the configured CA", async () => {
    // The repository's self-signed development certificate (localhost, 127.0.0.1) is its own CA.
    const certs = path.resolve(import.meta.dirname, "../../../envoy/certs");
    const cert = readFileSync(path.join(certs, "dev.crt"));
    const seen: string[] = [];
    const server = createTlsServer({ cert, key: readFileSync(path.join(certs, "dev.key")) }, (req, res) => {
      seen.push(`${req.headers.authorization}; ${req.headers["content-type"]}`);
      req.resume().on("end", () => res.writeHead(200).end());
    });
    server.on("tlsClientError", () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
      const headers = { authorization: "Bearer t0ken", "content-type": "text/plain" };
      assert.equal(await httpPost(endpoint, 2000, { headers, ca: cert })(new Uint8Array([1])), 200);
      assert.deepEqual(seen, ["Bearer t0ken; application/x-protobuf"], "no header overrides the protocol's");
      await assert.rejects(httpPost(endpoint, 2000, { headers })(new Uint8Array([1])), {
        code: "DEPTH_ZERO_SELF_SIGNED_CERT",
      });
      assert.equal(seen.length, 1, "nothing sent to a collector whose certificate does not verify");
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
