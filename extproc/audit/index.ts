import pino, { type Logger } from "pino";
import type { Usage } from "../openai/usage.js";

/** One audit record: who sent what to which model, when, and what the gateway decided. Never the key. */
export interface AuditRecord {
  request_id: string;
  key_id: string | null;
  team: string | null;
  api: string | null;
  method: string;
  path: string;
  requested_model: string | null;
  served_model: string | null;
  pool: string | null;
  status: number | null;
  decision: "allow" | "deny";
  /** Error code for denials, `ok`, or what cut the exchange short (`upstream_error`, `client_disconnected`). */
  reason: string;
  stream: boolean;
  usage: Usage | null;
  latency_ms: {
    /** First header seen → last byte of the response processed. */
    total: number;
    /** Time spent inside extproc, summed over all phases. */
    gateway: number;
    /** Request forwarded → response headers received (time to first byte for streams). */
    upstream: number | null;
  };
  policy_digest: string;
  /** Only when the policy sets `audit.logPrompts`. */
  request_body?: unknown;
  completion?: string;
}

/** Where audit records go: a JSON line per request. */
export interface AuditSink {
  write(record: AuditRecord): void;
  /** Writes out anything buffered; called on shutdown. */
  flush(): void;
}

/**
 * Audit sink writing JSON lines with pino to `destination`: a file path, or `stdout`. Writes are
 * asynchronous (buffered by pino's SonicBoom) and flushed synchronously on shutdown.
 */
export function createAuditSink(destination: string): AuditSink {
  const stream = pino.destination({
    dest: destination === "stdout" ? 1 : destination,
    sync: false,
    mkdir: true,
  });
  const logger: Logger = pino(
    {
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      // Audit records have no severity; the slot pino reserves for it names the record kind instead.
      formatters: { level: () => ({ kind: "llm_request" }) },
    },
    stream,
  );
  return {
    write: (record) => logger.info(record),
    flush: () => stream.flushSync(),
  };
}
