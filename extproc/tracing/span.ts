import type { ExchangeSummary } from "./attributes.js";
import { newSpanId, type SpanContext } from "./context.js";

/** An attribute's value: a string, an integer or a flag (every number extproc records is an integer). */
export type AttributeValue = string | number | boolean;

/** Span attributes by name; undefined and null values are left out. */
export type Attributes = Readonly<Record<string, AttributeValue | null | undefined>>;

/** OTLP's span kinds (opentelemetry.proto.trace.v1.Span.SpanKind). */
export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

/** OTLP's status codes (opentelemetry.proto.trace.v1.Status.StatusCode). */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

/** A span once it has ended: what the exporter sends. */
export interface FinishedSpan {
  readonly traceId: Buffer;
  readonly spanId: Buffer;
  readonly parentSpanId: Buffer;
  readonly name: string;
  readonly kind: number;
  /** Epoch nanoseconds (a double: 256 ns steps at today's epoch, finer than anything measured here). */
  readonly startNs: number;
  readonly endNs: number;
  readonly attributes: Attributes;
  readonly status: number;
}

/** Where ended spans go (the batch exporter). Must not block: it is called on the request path. */
export interface SpanSink {
  add(span: FinishedSpan): void;
}

/** Epoch nanoseconds from the monotonic clock (so a span never ends before it starts). */
export const nowNs = (): number => (performance.timeOrigin + performance.now()) * 1e6;

/** A span being recorded; handed to the sink as it is once ended (no copy). */
class OpenSpan implements FinishedSpan {
  readonly spanId = newSpanId();
  endNs: number;
  attributes: Record<string, AttributeValue | null | undefined> = {};
  status: number = StatusCode.UNSET;

  constructor(
    readonly traceId: Buffer,
    public name: string,
    readonly kind: number,
    readonly parentSpanId: Buffer,
    readonly startNs = nowNs(),
  ) {
    this.endNs = startNs;
  }

  /** Marks the span failed with `errorType` (the conventions' `error.type`). */
  fail(errorType: string): void {
    this.status = StatusCode.ERROR;
    this.attributes["error.type"] = errorType;
  }
}

/** The `error.type` of a thrown value: a GatewayError's stable code, else the error's class name. */
function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : err instanceof Error ? err.name : "Error";
}

/**
 * One request's spans in extproc, children of the span Envoy passed in the ext_proc stream's metadata: the
 * exchange's own span (kind SERVER: extproc serves Envoy's ext_proc stream), under it one span per ext_proc
 * phase (from its first message to the end of its last: a streamed body is one span, not one per chunk),
 * under the open phase (or the exchange, after the last phase) one span per costly step, and for a GenAI
 * API the inference span (kind CLIENT, as the conventions ask of a call to a model over the network), from
 * the moment extproc let the request go upstream (or refused it: then an error) to the exchange's end.
 */
export class RequestTrace {
  private readonly exchange: OpenSpan;
  private phase: OpenSpan | undefined;
  private phaseMessages = 0;
  private phaseBusyNs = 0;
  private messageStartNs = 0;
  /** When extproc last handled a request message: it then let the request go upstream, or refused it. */
  private requestHandledNs: number;
  private readonly inferenceAttributes: Record<string, AttributeValue | null | undefined> = {};
  private ended = false;

  constructor(
    private readonly sink: SpanSink,
    private readonly parent: SpanContext,
  ) {
    this.exchange = new OpenSpan(parent.traceId, "ext_proc", SpanKind.SERVER, parent.spanId);
    this.requestHandledNs = this.exchange.startNs;
  }

  /** Adds `attributes` to the inference span (what is known before the end, e.g. the host asked for). */
  annotate(attributes: Attributes): void {
    Object.assign(this.inferenceAttributes, attributes);
  }

  /** The trace's id (Envoy's). */
  get traceId(): Buffer {
    return this.parent.traceId;
  }

  /** A message of `phase` (snake_case ext_proc name) is being handled: its phase's span starts or goes on. */
  enterPhase(phase: string): void {
    const name = `ext_proc ${phase}`;
    if (this.phase?.name !== name) {
      this.closePhase();
      this.phase = new OpenSpan(this.traceId, name, SpanKind.INTERNAL, this.exchange.spanId);
      this.messageStartNs = this.phase.startNs;
    } else this.messageStartNs = nowNs();
  }

  /** The message {@link enterPhase} announced is handled. */
  leavePhase(): void {
    const phase = this.phase;
    if (!phase) return;
    phase.endNs = nowNs();
    if (phase.name.startsWith("ext_proc request")) this.requestHandledNs = phase.endNs;
    this.phaseMessages++;
    this.phaseBusyNs += phase.endNs - this.messageStartNs;
  }

  /**
   * Runs `step` inside a span named `name` (a child of the phase being handled), which records a thrown
   * error's type; resolves or rejects as `step` does.
   */
  async step<T>(name: string, step: () => T | Promise<T>): Promise<T> {
    const span = new OpenSpan(this.traceId, name, SpanKind.INTERNAL, (this.phase ?? this.exchange).spanId);
    try {
      return await step();
    } catch (err) {
      span.fail(errorType(err));
      throw err;
    } finally {
      span.endNs = nowNs();
      if (!this.ended) this.sink.add(span);
    }
  }

  /**
   * Ends the exchange's span and the last phase's with what `summary` says (errors when it gives an error
   * type), and records the inference span when the summary has one. Once only; spans of steps still
   * running then are dropped.
   */
  end(summary: ExchangeSummary): void {
    if (this.ended) return;
    this.closePhase();
    this.ended = true;
    const { exchange } = this;
    exchange.endNs = nowNs();
    Object.assign(exchange.attributes, summary.attributes);
    if (summary.errorType !== undefined) exchange.fail(summary.errorType);
    const { inference } = summary;
    if (inference) {
      const span = new OpenSpan(
        this.traceId,
        inference.name,
        SpanKind.CLIENT,
        exchange.spanId,
        this.requestHandledNs,
      );
      span.endNs = exchange.endNs;
      Object.assign(span.attributes, this.inferenceAttributes, inference.attributes);
      if (summary.errorType !== undefined) span.fail(summary.errorType);
      this.sink.add(span);
    }
    this.sink.add(exchange);
  }

  private closePhase(): void {
    const phase = this.phase;
    if (!phase) return;
    phase.attributes["llm_gateway.ext_proc.messages"] = this.phaseMessages;
    // Time extproc spent on the phase's messages, without the waits between them (a stream's gaps).
    phase.attributes["llm_gateway.ext_proc.busy_us"] = Math.round(this.phaseBusyNs / 1000);
    this.sink.add(phase);
    this.phase = undefined;
    this.phaseMessages = 0;
    this.phaseBusyNs = 0;
  }
}

/**
 * Runs `step` in a span of `trace`, or just runs it when the request is not traced: the one call site
 * form for every costly step, costing one closure when tracing is off.
 */
export function traced<T>(trace: RequestTrace | undefined, name: string, step: () => Promise<T>): Promise<T> {
  return trace ? trace.step(name, step) : step();
}
