import type { Logger } from "pino";
import type { AuditRecord, AuditSink } from "../audit/index.js";
import type { RevocationList } from "../auth/revocations.js";
import type { Identity } from "../auth/index.js";
import type { GatewayMetrics } from "../metrics/index.js";
import type { Usage } from "../openai/usage.js";
import type { Model, Policy } from "../policy/index.js";
import type { GuardrailReport } from "../guardrails/index.js";
import type { PiiSession } from "../pii/index.js";
import type { Admission, QuotaService } from "../quota/index.js";
import type { WorkerPool } from "../workers/index.js";

/** What every request processor needs from the running service. */
export interface ProcessorDeps {
  /** The policy in force right now (read once per request, so a request never sees two policies). */
  readonly policy: () => Policy;
  readonly audit: AuditSink;
  readonly metrics: GatewayMetrics;
  /** Uniform in [0, 1); weighted alias choice. */
  readonly random: () => number;
  /** Wall clock in epoch milliseconds (key expiry). */
  readonly now: () => number;
  readonly quota: QuotaService;
  /** Token counting and text scans, on worker threads for large inputs. */
  readonly workers: WorkerPool;
  readonly logger: Logger;
  /** Identities revoked through Redis (empty without a Redis quota store). */
  readonly revocations: RevocationList;
}

/** Monotonic milliseconds, for latencies. */
export const monotonicMs = (): number => performance.now();

/**
 * Everything known about one HTTP request as it moves through the ext_proc phases; becomes the audit
 * record when the exchange ends.
 */
export class RequestContext {
  readonly startedAt = monotonicMs();
  requestId = "";
  method = "";
  path = "";
  identity: Identity | undefined;
  api: string | undefined;
  requestedModel: string | undefined;
  model: Model | undefined;
  /** The fallback pool that answered instead of the model's own pool, as Envoy reported it. */
  fallbackPool: string | undefined;
  stream = false;
  status: number | undefined;
  decision: "allow" | "deny" = "allow";
  reason = "ok";
  usage: Usage | undefined;
  /** Milliseconds spent inside extproc for this request, all phases. */
  gatewayMs = 0;
  forwardedAt: number | undefined;
  upstreamMs: number | undefined;
  requestBody: unknown;
  completion: string | undefined;
  /** PII handling for this request, if policy looks for any entity. */
  pii: PiiSession | undefined;
  guardrails: GuardrailReport | undefined;
  /** Quota reservation to settle when the exchange ends. */
  admission: Admission | undefined;
  /**
   * Stream events seen before any usage chunk, kept only while a reservation waits for usage: if the
   * server never sends usage, the streamed text is counted instead.
   */
  readonly unmeteredEvents: string[] = [];
  /** Set once the response has been fully seen (or refused): the exchange can be audited. */
  complete = false;

  constructor(readonly policy: Policy) {}

  /** Marks the request refused by the gateway with `status` and a stable `reason` code. */
  deny(status: number, reason: string): void {
    this.decision = "deny";
    this.status = status;
    this.reason = reason;
    this.complete = true;
  }

  /** The audit record for this request. */
  toAuditRecord(): AuditRecord {
    const record: AuditRecord = {
      request_id: this.requestId,
      key_id: this.identity?.keyId ?? null,
      team: this.identity?.team ?? null,
      environment: this.identity?.environment ?? null,
      api: this.api ?? null,
      method: this.method,
      path: this.path,
      requested_model: this.requestedModel ?? null,
      served_model: this.model?.name ?? null,
      pool: this.fallbackPool ?? this.model?.pool.name ?? null,
      status: this.status ?? null,
      decision: this.decision,
      reason: this.reason,
      stream: this.stream,
      usage: this.usage ?? null,
      ...(this.usage && { usage_source: "server" as const }),
      latency_ms: {
        total: round(monotonicMs() - this.startedAt),
        gateway: round(this.gatewayMs),
        upstream: this.upstreamMs === undefined ? null : round(this.upstreamMs),
      },
      policy_digest: this.policy.digest.slice(0, 16),
    };
    if (this.fallbackPool) record.fallback_from = this.model!.pool.name;
    if (this.pii) record.pii = { request: this.pii.request, response: this.pii.response };
    const guardrails = this.guardrails;
    if (guardrails && (guardrails.injection || Object.keys(guardrails.denied).length > 0)) {
      record.guardrails = {
        denied: guardrails.denied,
        ...(guardrails.injection && { injection: guardrails.injection }),
      };
    }
    if (this.policy.logPrompts) {
      record.request_body = this.requestBody;
      // The client may get restored originals; the audit keeps the redacted text the model saw.
      record.completion =
        this.pii?.resolved.restore && this.completion !== undefined
          ? this.pii.unrestore(this.completion)
          : this.completion;
    }
    return record;
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;
