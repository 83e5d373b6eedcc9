import { randomFillSync } from "node:crypto";

/** A span's place in a trace, as W3C Trace Context carries it. */
export interface SpanContext {
  /** 16 bytes, not all zero. */
  readonly traceId: Buffer;
  /** 8 bytes, not all zero. */
  readonly spanId: Buffer;
  /** Whether the caller records this trace (the `sampled` flag). */
  readonly sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/**
 * The span context in a W3C `traceparent` header, or undefined when it is absent or malformed (then the
 * request is not traced: extproc follows the caller's decision and never starts a trace of its own).
 * Versions after 00 are read as 00, as the specification asks; version ff is invalid.
 */
export function parseTraceparent(header: string | undefined): SpanContext | undefined {
  if (header === undefined) return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (ZEROS.test(traceId) || ZEROS.test(spanId)) return undefined;
  return {
    traceId: Buffer.from(traceId, "hex"),
    spanId: Buffer.from(spanId, "hex"),
    sampled: (Number.parseInt(flags, 16) & 1) === 1,
  };
}

/** `context` as a `traceparent` header value. */
export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId.toString("hex")}-${context.spanId.toString("hex")}-${context.sampled ? "01" : "00"}`;
}

/** Random bytes drawn in blocks: one system call per 512 span ids, not one per span. */
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/** A new random span id (8 bytes, never all zero). */
export function newSpanId(): Buffer {
  for (;;) {
    if (poolOffset + 8 > pool.length) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const id = Buffer.from(pool.subarray(poolOffset, (poolOffset += 8)));
    if (id.readBigUInt64BE() !== 0n) return id;
  }
}
