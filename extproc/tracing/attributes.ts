import type { AuditRecord } from "../audit/index.js";
import type { Attributes } from "./span.js";

/** `gen_ai.operation.name` of each OpenAI API the gateway serves (GenAI semantic conventions' values). */
export const GEN_AI_OPERATIONS: Readonly<Record<string, string>> = {
  "chat.completions": "chat",
  completions: "text_completion",
  embeddings: "embeddings",
  // Both agent APIs are chat in the conventions' terms (a conversation in, a message out).
  responses: "chat",
  messages: "chat",
};

/** The exchange span's name, attributes and error type, as the request's audit record tells them. */
export interface ExchangeSummary {
  readonly name: string;
  readonly attributes: Attributes;
  /** The audit reason when the request did not end `ok` (a refusal, an upstream error, a cut exchange). */
  readonly errorType: string | undefined;
}

/**
 * What the exchange's span says about a request, from its audit record (one source for both, so a trace
 * and the audit trail cannot disagree): GenAI semantic-convention attributes (operation, requested and
 * served model, the usage charged), the HTTP status, and the gateway's own (`llm_gateway.*`: request id,
 * key id, team, environment, pool, audit reason). Never a prompt or a completion, whatever the policy logs.
 * The name is `{operation} {model}` as the conventions ask, with the model only once policy knew it (a
 * client's unknown model name never becomes a span name).
 */
export function summarize(record: AuditRecord): ExchangeSummary {
  const operation = record.api === null ? undefined : GEN_AI_OPERATIONS[record.api];
  const known = record.served_model !== null;
  return {
    name: operation
      ? known
        ? `${operation} ${record.requested_model}`
        : operation
      : `ext_proc ${record.api ?? "unrouted"}`,
    attributes: {
      "gen_ai.operation.name": operation,
      "gen_ai.request.model": record.requested_model,
      "gen_ai.response.model": record.served_model,
      "gen_ai.usage.input_tokens": record.usage?.prompt_tokens,
      "gen_ai.usage.output_tokens": record.usage?.completion_tokens,
      "http.response.status_code": record.status,
      "llm_gateway.request_id": record.request_id,
      "llm_gateway.key_id": record.key_id,
      "llm_gateway.team": record.team,
      "llm_gateway.environment": record.environment,
      "llm_gateway.pool": record.pool,
      "llm_gateway.reason": record.reason,
      "llm_gateway.usage_source": record.usage_source,
      "llm_gateway.stream": record.stream,
    },
    errorType: record.reason === "ok" ? undefined : record.reason,
  };
}
