import type { AuditRecord } from "../audit/index.js";
import type { GuardrailTrigger } from "../guardrails/index.js";
import type { GatewayMetrics } from "./index.js";

/** How one exchange ended, as recorded where each thing happened: what the request metrics count. */
export interface ExchangeOutcome {
  /** The audit record as it stood when the exchange ended (before any quota settlement). */
  readonly record: AuditRecord;
  /** The `model` label: the requested model when policy names it, else "" (clients cannot add label values). */
  readonly modelLabel: string;
  /** Guardrails that fired, the one that refused the request included. */
  readonly guardrailTriggers: readonly GuardrailTrigger[];
}

/** Counts a finished exchange: the request, the PII found, the guardrails that fired, the server-reported tokens. */
export function countExchange(
  metrics: GatewayMetrics,
  { record, modelLabel, guardrailTriggers }: ExchangeOutcome,
): void {
  metrics.requests.inc({
    api: record.api ?? "",
    model: modelLabel,
    team: record.team ?? "",
    status: String(record.status ?? 0),
    decision: record.decision,
  });
  for (const direction of ["request", "response"] as const) {
    for (const [entity, { count, action }] of Object.entries(record.pii?.[direction] ?? {})) {
      metrics.piiDetections.inc({ entity, direction, action }, count);
    }
  }
  for (const trigger of guardrailTriggers) metrics.guardrailTriggers.inc({ ...trigger });
  if (record.usage && record.served_model) {
    const labels = { model: record.served_model, team: record.team ?? "" };
    metrics.tokens.inc({ ...labels, type: "prompt" }, record.usage.prompt_tokens);
    metrics.tokens.inc({ ...labels, type: "completion" }, record.usage.completion_tokens);
  }
}
