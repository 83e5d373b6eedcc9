/**
 * The ext_proc unit tier's parts: the processor's dependencies over real in-process parts (the in-memory
 * quota store, a worker pool with no threads, which runs every task inline, a real metrics registry) with
 * an audit sink that keeps records in memory; ext_proc messages as the server decodes them, and replies
 * decoded from the bytes the server would send.
 */
import pino from "pino";
import type { AuditRecord, AuditSink } from "../../extproc/audit/index.js";
import { RevocationList } from "../../extproc/auth/revocations.js";
import {
  structToJson,
  type ProcessingRequestMessage,
  type StructMessage,
} from "../../extproc/envoy/messages.js";
import { ProcessingRequest, ProcessingResponse } from "../../extproc/envoy/protocol.js";
import { createMetrics, type GatewayMetrics } from "../../extproc/metrics/index.js";
import { parsePolicy, sha256Hex, type Policy } from "../../extproc/policy/index.js";
import type { ProcessorDeps } from "../../extproc/processor/index.js";
import { MemoryQuotaStore, QuotaService } from "../../extproc/quota/index.js";
import type { QuotaStore } from "../../extproc/quota/store.js";
import { WorkerPool } from "../../extproc/workers/index.js";

/** The API key of key `k1` (team `t`, model `m1`). */
export const API_KEY = "sk-unit-test";
/** A fixed clock: the token bucket does not refill between a request and the probe that reads it. */
export const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
/** Key k1's per-minute token limit. */
export const TOKENS_PER_MINUTE = 100_000;

/** Pool `pool-a` (falling back to `pool-b`) serves `m1`, `pool-b` serves `m2`; key k1 may use m1; `extra` is appended. */
export function unitPolicy(extra = ""): Policy {
  return parsePolicy(
    `
version: 1
pools:
  pool-a: { fallback: [pool-b] }
  pool-b: {}
models:
  m1: { pool: pool-a }
  m2: { pool: pool-b }
teams: { t: { models: [m1] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex(API_KEY)} }
limits:
  - { id: tpm, scope: { key: k1 }, tokensPerMinute: ${TOKENS_PER_MINUTE} }
${extra}
`,
    "unit.yaml",
  );
}

/** Keeps every record written, promises (records waiting for settlement) included. */
export class MemoryAuditSink implements AuditSink {
  readonly written: Array<AuditRecord | Promise<AuditRecord>> = [];
  ready(): Promise<void> {
    return Promise.resolve();
  }
  write(record: AuditRecord | Promise<AuditRecord>): void {
    this.written.push(record);
  }
  async flush(): Promise<void> {
    await Promise.all(this.written);
  }
  durabilityLagSeconds(): number {
    return 0;
  }
  reopen(): void {}
  close(): void {}
  records(): Promise<AuditRecord[]> {
    return Promise.all(this.written);
  }
}

/** Processor dependencies, with handles on the parts tests read. */
export interface UnitDeps {
  readonly deps: ProcessorDeps;
  readonly audit: MemoryAuditSink;
  readonly metrics: GatewayMetrics;
  readonly policy: Policy;
}

/** Dependencies on a fixed clock (T0) over `policy` and `store`. */
export function unitDeps(policy = unitPolicy(), store: QuotaStore = new MemoryQuotaStore()): UnitDeps {
  const metrics = createMetrics();
  const audit = new MemoryAuditSink();
  const logger = pino({ level: "silent" });
  const deps: ProcessorDeps = {
    policy: () => policy,
    audit,
    metrics,
    random: () => 0,
    now: () => T0,
    quota: new QuotaService({ store, shared: false, metrics, logger, now: () => T0 }),
    workers: new WorkerPool({ workers: 0 }),
    logger,
    revocations: new RevocationList(),
  };
  return { deps, audit, metrics, policy };
}

/** A ProcessingRequest as the server hands it over: encoded, then decoded by protobufjs. */
export function decoded(object: Record<string, unknown>): ProcessingRequestMessage {
  const bytes = ProcessingRequest.encode(ProcessingRequest.fromObject(object)).finish();
  return ProcessingRequest.decode(bytes) as unknown as ProcessingRequestMessage;
}

const headerMap = (headers: Record<string, string>) => ({
  headers: Object.entries(headers).map(([key, value]) => ({ key, rawValue: Buffer.from(value, "latin1") })),
});

export const requestHeaders = (path = "/v1/chat/completions", extra: Record<string, string> = {}) =>
  decoded({
    requestHeaders: {
      headers: headerMap({
        ":method": "POST",
        ":path": path,
        ":authority": "gateway.test",
        "x-request-id": "req-1",
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        ...extra,
      }),
      endOfStream: false,
    },
  });

export const requestBody = (json: unknown) =>
  decoded({ requestBody: { body: Buffer.from(JSON.stringify(json), "utf8"), endOfStream: true } });

export const responseHeaders = (headers: Record<string, string>, endOfStream = false) =>
  decoded({ responseHeaders: { headers: headerMap(headers), endOfStream } });

export const responseBody = (text: string, endOfStream: boolean) =>
  decoded({ responseBody: { body: Buffer.from(text, "utf8"), endOfStream } });

export interface WireHeader {
  header?: { key?: string; rawValue?: Uint8Array };
}
interface CommonReply {
  headerMutation?: { setHeaders?: WireHeader[]; removeHeaders?: string[] };
  bodyMutation?: { body?: Uint8Array; clearBody?: boolean };
}
/** The parts of a ProcessingResponse these tests read, as Envoy would decode it. */
export interface Reply {
  requestHeaders?: { response?: CommonReply };
  requestBody?: { response?: CommonReply };
  responseHeaders?: { response?: CommonReply };
  responseBody?: { response?: CommonReply };
  immediateResponse?: {
    status?: { code?: number };
    headers?: { setHeaders?: WireHeader[] };
    body?: Uint8Array;
    details?: string;
  };
  dynamicMetadata?: StructMessage;
  modeOverride?: { responseBodyMode?: number };
}

/** Decodes a ProcessingResponse from the bytes `reply` encodes to. */
export const decodeReply = (reply: object): Reply =>
  ProcessingResponse.decode(ProcessingResponse.encode(reply).finish()) as unknown as Reply;

/** The access-log metadata a reply carries (undefined: none). */
export function accessLog(reply: Reply): Record<string, unknown> | undefined {
  if (!reply.dynamicMetadata) return undefined;
  return structToJson(reply.dynamicMetadata).llm_gateway as Record<string, unknown>;
}

/** Bytes as UTF-8 text. */
export const text = (bytes: Uint8Array | undefined | null): string =>
  Buffer.from(bytes ?? []).toString("utf8");

/** A header's value in a header mutation. */
export const headerValue = (headers: WireHeader[] | undefined, name: string): string | undefined => {
  const found = headers?.find((h) => h.header?.key === name)?.header?.rawValue;
  return found && Buffer.from(found).toString("latin1");
};
