/** Token counts as OpenAI reports them in `usage`. */
export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;

/** A token count as a quota may be charged it: a whole, finite, non-negative number. */
const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/**
 * Reads `usage` from a parsed response object, if it has a well-formed one. Counts that are not whole
 * non-negative numbers (a model server answering oddly) make it absent: the text is counted instead, so a
 * negative or fractional count never reaches a quota.
 */
export function usageOf(body: unknown): Usage | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const usage = (body as { usage?: unknown }).usage;
  if (typeof usage !== "object" || usage === null) return undefined;
  const { prompt_tokens, completion_tokens, total_tokens } = usage as Record<string, unknown>;
  if (!isCount(prompt_tokens)) return undefined;
  // A completion count that is not a number at all reads as 0; a number that is no count voids the usage.
  if (typeof completion_tokens === "number" && !isCount(completion_tokens)) return undefined;
  const completion = isCount(completion_tokens) ? completion_tokens : 0;
  return {
    prompt_tokens,
    completion_tokens: completion,
    total_tokens: isCount(total_tokens) ? total_tokens : prompt_tokens + completion,
  };
}

/** Cheap pre-check before JSON-parsing a stream event: only events with a usage object are parsed. */
export function mayCarryUsage(json: string): boolean {
  return USAGE_OBJECT.test(json);
}

/** Concatenates the generated text in a response or stream chunk (message/delta content or text). */
export function generatedText(body: unknown): string {
  const choices = (body as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(choices)) return "";
  let out = "";
  for (const choice of choices) {
    const c = choice as {
      text?: unknown;
      message?: { content?: unknown };
      delta?: { content?: unknown };
    } | null;
    const text = c?.text ?? c?.message?.content ?? c?.delta?.content;
    if (typeof text === "string") out += text;
  }
  return out;
}
