import type { InferenceRequest } from "./schemas.js";

/** How much a request may generate, read as the model server reads it. */
export interface OutputCap {
  /** Completion tokens per generated sequence. */
  readonly perSequence: number;
  /** Sequences the server generates (completions' `best_of` generates more than it returns). */
  readonly sequences: number;
  /** Completion tokens the request may generate in all: what admission reserves. */
  readonly total: number;
}

/** The endpoints that generate text, by the `api` name the processor records. */
export type GeneratingApi = "chat.completions" | "completions";

/**
 * The output cap of a validated request as vLLM reads it: chat uses `max_completion_tokens`, else
 * `max_tokens`; completions read `max_tokens` only (they ignore `max_completion_tokens`) and generate
 * `best_of` sequences when it is above `n`. Without a cap, the model's `defaultMaxTokens` applies (and is
 * forwarded by {@link applyOutputCap}, so the server never generates more than was reserved).
 */
export function outputCap(
  api: GeneratingApi,
  request: InferenceRequest,
  defaultMaxTokens: number,
): OutputCap {
  const field = (name: string): number | undefined => {
    const value = request[name];
    return typeof value === "number" ? value : undefined;
  };
  const perSequence =
    (api === "chat.completions" ? field("max_completion_tokens") : undefined) ??
    field("max_tokens") ??
    defaultMaxTokens;
  const n = field("n") ?? 1;
  const sequences = api === "completions" ? Math.max(n, field("best_of") ?? 1) : n;
  return { perSequence, sequences, total: perSequence * sequences };
}

/**
 * Writes the cap admission assumed into the forwarded body, in every field the server may read: `max_tokens`
 * always (every OpenAI-compatible server reads it), and chat's `max_completion_tokens` when the client sent
 * one (vLLM prefers it; both then say the same).
 */
export function applyOutputCap(api: GeneratingApi, request: InferenceRequest, cap: OutputCap): void {
  request.max_tokens = cap.perSequence;
  if (api === "chat.completions" && request.max_completion_tokens != null) {
    request.max_completion_tokens = cap.perSequence;
  }
}

/**
 * The output cap of an API that generates one sequence, capped by one field (Responses'
 * `max_output_tokens`, Messages' `max_tokens`, within which a thinking budget is spent; validated by its
 * schema): the field, else the model's default, forwarded in that field so the server never generates more
 * than was reserved.
 */
export function singleFieldCap(field: "max_output_tokens" | "max_tokens"): {
  readonly cap: (request: InferenceRequest, defaultMaxTokens: number) => OutputCap;
  readonly apply: (request: InferenceRequest, cap: OutputCap) => void;
} {
  return {
    cap: (request, defaultMaxTokens) => {
      const value = request[field];
      const cap = typeof value === "number" ? value : defaultMaxTokens;
      return { perSequence: cap, sequences: 1, total: cap };
    },
    apply: (request, cap) => {
      request[field] = cap.perSequence;
    },
  };
}
