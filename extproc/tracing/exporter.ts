import http from "node:http";
import https from "node:https";
import { encodeSpans } from "./otlp.js";
import type { Attributes, FinishedSpan, SpanSink } from "./span.js";

/** Why spans were dropped (the `reason` label of llm_gateway_trace_spans_dropped_total). */
export type DropReason = "queue_full" | "export_failed";

/** What the exporter reports (extproc's Prometheus counters). */
export interface ExportCounters {
  exported(spans: number): void;
  dropped(reason: DropReason, spans: number): void;
}

/** Sends one OTLP/HTTP request body; resolves with the HTTP status, rejects on a network error or timeout. */
export type Post = (body: Uint8Array) => Promise<number>;

/** Options for {@link BatchSpanExporter}. */
export interface ExporterOptions {
  readonly post: Post;
  /** The resource's attributes (`service.name`, …). */
  readonly resource: Attributes;
  /** Most spans held; a span that finds the queue full is dropped. */
  readonly queueSpans: number;
  /** How often queued spans are sent. */
  readonly flushMs: number;
  readonly counters: ExportCounters;
}

/** Most spans in one export request (OpenTelemetry SDKs' default batch size). */
export const BATCH_SPANS = 512;

/**
 * Queues ended spans and sends them in batches, one request at a time, every `flushMs` (sooner when a batch is
 * full). The request path only pushes onto a bounded queue: when the collector is slow or down the queue
 * fills and further spans are dropped and counted, and a failed batch is dropped and counted, not retried,
 * so memory stays bounded and requests never wait for the collector.
 */
export class BatchSpanExporter implements SpanSink {
  private queue: FinishedSpan[] = [];
  private sending: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: ExporterOptions) {
    this.timer = setInterval(() => void this.send(), options.flushMs);
    this.timer.unref();
  }

  add(span: FinishedSpan): void {
    if (this.queue.length >= this.options.queueSpans) {
      this.options.counters.dropped("queue_full", 1);
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= BATCH_SPANS && !this.sending) setImmediate(() => void this.send());
  }

  /** Spans waiting to be sent. */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends everything queued (batch after batch) and stops the timer; at shutdown. */
  async shutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.sending;
    while (this.queue.length > 0) await this.send();
  }

  /** Sends the next batch unless one is on its way. */
  private send(): Promise<void> {
    if (this.sending || this.queue.length === 0) return this.sending ?? Promise.resolve();
    const batch = this.queue.length <= BATCH_SPANS ? this.queue : this.queue.slice(0, BATCH_SPANS);
    this.queue = batch === this.queue ? [] : this.queue.slice(BATCH_SPANS);
    const { counters } = this.options;
    this.sending = this.options
      .post(encodeSpans(this.options.resource, batch))
      .then(
        (status) => {
          if (status >= 200 && status < 300) counters.exported(batch.length);
          else counters.dropped("export_failed", batch.length);
        },
        () => counters.dropped("export_failed", batch.length),
      )
      .finally(() => {
        this.sending = undefined;
        if (this.queue.length >= BATCH_SPANS) setImmediate(() => void this.send());
      });
    return this.sending;
  }
}

/** How {@link httpPost} reaches the collector beyond its URL. */
export interface PostOptions {
  /** Sent with every request (e.g. an auth token). */
  readonly headers?: Readonly<Record<string, string>>;
  /** PEM CA certificate(s) an https:// collector's certificate must chain to, instead of Node's bundled CAs. */
  readonly ca?: string | Buffer;
}

/**
 * A {@link Post} to the OTLP/HTTP `endpoint` (protobuf), over one kept-alive connection (TLS, verified,
 * for https://), each request given up after `timeoutMs`.
 */
export function httpPost(endpoint: string, timeoutMs: number, options: PostOptions = {}): Post {
  const url = new URL(endpoint);
  const agent =
    url.protocol === "https:"
      ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: options.ca })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
  const client = url.protocol === "https:" ? https : http;
  return (body) =>
    new Promise<number>((resolve, reject) => {
      const request = client.request(
        url,
        {
          method: "POST",
          agent,
          timeout: timeoutMs,
          headers: {
            ...options.headers,
            "content-type": "application/x-protobuf",
            "content-length": body.byteLength,
          },
        },
        (response) => {
          response.resume();
          response.on("end", () => resolve(response.statusCode ?? 0));
          response.on("error", reject);
        },
      );
      request.on("timeout", () =>
        request.destroy(new Error(`no answer from ${url.host} in ${timeoutMs} ms`)),
      );
      request.on("error", reject);
      request.end(body);
    });
}
