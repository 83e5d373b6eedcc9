import type { Logger } from "pino";
import type { AuditReason, AuditRecord, AuditSink } from "../audit/index.js";
import type { RevocationList } from "../auth/revocations.js";
import type { Identity } from "../auth/index.js";
import type { GatewayMetrics } from "../metrics/index.js";
import type { Usage } from "../openai/usage.js";
import type { Model, Policy } from "../policy/index.js";
import type { MetadataValues } from "../envoy/messages.js";
import type { GatewayError } from "../errors/index.js";
import {
  GuardrailBlocked,
  reportedTriggers,
  type GuardrailReport,
  type GuardrailTrigger,
} from "../guardrails/index.js";
import type { PiiSession } from "../pii/index.js";
import type { Admission, QuotaService } from "../quota/index.js";
import type { PoolQueues, Scheduler, Slot } from "../scheduling/index.js";
import type { WorkerPool } from "../workers/index.js";
import type { RequestTrace, Tracer } from "../tracing/index.js";

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
  /** Starts requests' traces; absent when tracing is off. */
  readonly tracer?: Tracer;
  /** Endpoint choice for pools with `scheduling` (absent: Envoy balances every pool alone). */
  readonly scheduler?: Scheduler;
  /** Admission to pools with a queue (absent: no pool queues). */
  readonly queues?: PoolQueues;
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
  /** The endpoint the scheduler hinted to Envoy, if it chose one. */
  endpoint: string | undefined;
  /** The priority class of a request to a pool with a queue. */
  priorityClass: string | undefined;
  /** The pool slot the request holds (pools with a queue), freed when the exchange ends. */
  slot: Slot | undefined;
  /** Aborted when the ext_proc stream ends before the exchange completed (the client left). */
  readonly closed = new AbortController();
  stream = false;
  status: number | undefined;
  decision: "allow" | "deny" = "allow";
  reason: AuditReason = "ok";
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
  /** The guardrail that refused the request, if one did. */
  private guardrailBlock: GuardrailTrigger | undefined;
  /** Quota reservation to settle when the exchange ends. */
  admission: Admission | undefined;
  /**
   * The generated text of each stream event seen before any usage chunk, kept only while a reservation
   * waits for usage: if the server never sends usage, this text is counted instead.
   */
  readonly streamedTexts: string[] = [];
  /** This request's spans, when it is traced (steps record theirs with `traced(ctx.trace, …)`). */
  trace: RequestTrace | undefined;
  /** Set once the response has been fully seen (or refused): the exchange can be audited. */
  complete = false;

  /** `askForTime`: asks Envoy to wait longer for the answer in hand (see Exchange). */
  constructor(
    readonly policy: Policy,
    readonly askForTime: () => void = () => {},
  ) {}

  /** Marks the request refused by the gateway with `status` and a stable `reason` code. */
  deny(status: number, reason: AuditReason): void {
    this.decision = "deny";
    this.status = status;
    this.reason = reason;
    this.complete = true;
  }

  /** Marks the request refused with `error`, remembering the guardrail that refused it, if one did. */
  refuse(error: GatewayError): void {
    this.deny(error.status, error.code);
    if (error instanceof GuardrailBlocked) this.guardrailBlock = error.trigger;
  }

  /** Marks the request authenticated as `identity`: the phases that follow get a context that has one. */
  authenticated(identity: Identity): AuthenticatedContext {
    this.identity = identity;
    return this as AuthenticatedContext;
  }

  /** Whether a reservation still waits for the model server's usage (streamed text is kept until then). */
  get metering(): boolean {
    return this.admission !== undefined && this.usage === undefined;
  }

  /** Guardrails that fired, the refusing one included, for the trigger metric. */
  guardrailTriggers(): GuardrailTrigger[] {
    const triggers = reportedTriggers(this.guardrails);
    if (this.guardrailBlock) triggers.push(this.guardrailBlock);
    return triggers;
  }

  /**
   * What Envoy's access log shows of this request (dynamic metadata): who asked for which model; where it
   * was sent, once forwarded (the fallback pool that answered, when one did); the tokens the server reported.
   */
  accessLog(): MetadataValues {
    const forwarded = this.forwardedAt !== undefined;
    return {
      key_id: this.identity?.keyId,
      team: this.identity?.team,
      requested_model: this.requestedModel,
      served_model: forwarded ? this.model?.name : undefined,
      pool: forwarded ? (this.fallbackPool ?? this.model?.pool.name) : undefined,
      prompt_tokens: this.usage?.prompt_tokens,
      completion_tokens: this.usage?.completion_tokens,
      total_tokens: this.usage?.total_tokens,
    };
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
    if (this.endpoint) record.endpoint = this.endpoint;
    if (this.priorityClass) record.class = this.priorityClass;
    if (this.slot) record.queued_ms = round(this.slot.queuedMs);
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

/** A request context once the caller is known: every phase after request headers gets one. */
export type AuthenticatedContext = RequestContext & { readonly identity: Identity };

const round = (ms: number): number => Math.round(ms * 1000) / 1000;
