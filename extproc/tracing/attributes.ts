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

/**
 * `gen_ai.provider.name` of every inference span. The registry has no value for a self-hosted server, and
 * the conventions allow a custom one; every pool the gateway routes to is a vLLM server (routing reads
 * vLLM's metrics), and `openai` would claim OpenAI's service and its `openai.*` attributes.
 */
export const GEN_AI_PROVIDER = "vllm";

/** The GenAI inference span of a request: its name and attributes. */
export interface InferenceSummary {
  readonly name: string;
  readonly attributes: Attributes;
}

/** What a request's spans say, as its audit record tells it. */
export interface ExchangeSummary {
  /** The ext_proc exchange span's attributes (the gateway's request id, the HTTP status, the audit reason). */
  readonly attributes: Attributes;
  /** The inference span; undefined for an API that is no GenAI operation (models, an unrouted path). */
  readonly inference: InferenceSummary | undefined;
  /** The audit reason when the request did not end `ok` (a refusal, an upstream error, a cut exchange). */
  readonly errorType: string | undefined;
}

/**
 * What a request's spans say about it, from its audit record (one source for both, so a trace and the
 * audit trail cannot disagree). The inference span gets the GenAI semantic-convention attributes
 * (operation, provider, requested and served model, the usage charged) and the gateway's own
 * (`llm_gateway.*`: request id, key id, team, environment, pool, audit reason); never a prompt or a
 * completion, whatever the policy logs. Its name is `{operation} {model}` as the conventions ask, with the
 * model only once policy knew it (a client's unknown model name never becomes a span name).
 * `gen_ai.response.id` and `gen_ai.response.finish_reasons` are left out: the audit record keeps neither.
 */
export function summarize(record: AuditRecord): ExchangeSummary {
  const operation = record.api === null ? undefined : GEN_AI_OPERATIONS[record.api];
  const known = record.served_model !== null;
  return {
    attributes: {
      "http.response.status_code": record.status,
      "llm_gateway.request_id": record.request_id,
      "llm_gateway.reason": record.reason,
    },
    inference: operation
      ? {
          name: known ? `${operation} ${record.requested_model}` : operation,
          attributes: {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": GEN_AI_PROVIDER,
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
        }
      : undefined,
    errorType: record.reason === "ok" ? undefined : record.reason,
  };
}
