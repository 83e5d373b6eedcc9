/**
 * What a request costs in tokens: the prompt as estimated before it is forwarded, and the rule for what it
 * is charged once it ends (see {@link QuotaService.settleExchange}).
 */
import type { UsageSource } from "../audit/index.js";
import { promptText, TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, type PromptText } from "../openai/prompt.js";
import type { InferenceRequest } from "../openai/schemas.js";
import type { Usage } from "../openai/usage.js";
import type { Model } from "../policy/index.js";
import type { EncodingName } from "../tokens/count.js";

/** Tokens in `texts` under `encoding`: inline or on a worker thread. */
export type CountTokens = (texts: readonly string[], encoding: EncodingName) => Promise<number>;

/**
 * Prompt tokens as the model will see them: text by the model's tokenizer, token ids, chat framing. `prompt`
 * is the request's text as its API reads it (chat, completions and embeddings by default).
 */
export async function countPromptTokens(
  request: InferenceRequest,
  model: Model,
  countTokens: CountTokens,
  prompt: PromptText = promptText(request),
): Promise<number> {
  const counted = await countTokens(prompt.texts, model.tokenizer);
  const framing = prompt.messages > 0 ? prompt.messages * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY : 0;
  return counted + prompt.tokenIds + framing;
}

/** What was seen of a request's answer by the time its exchange ended. */
export interface AnswerSeen {
  /** The model server's usage, when it reported one. */
  readonly usage: Usage | undefined;
  /** The response's HTTP status; undefined when the exchange ended before response headers. */
  readonly status: number | undefined;
  /** The generated text of each streamed event seen before any usage (empty without a stream). */
  readonly streamedTexts: readonly string[];
}

/** What a request was charged, and where that figure comes from. */
export interface Charged {
  readonly usage: Usage;
  readonly source: UsageSource;
}

/** Tokens to charge, before the store is told. */
export interface Chargeable {
  readonly input: number;
  readonly output: number;
  /** Undefined: an upstream error, charged nothing (the audit record keeps `usage: null`). */
  readonly source: UsageSource | undefined;
}

/**
 * The charging rule: the model server's usage; else nothing for an upstream error; else the prompt as
 * estimated at admission plus the streamed text counted with the model's tokenizer (a cut stream, a server
 * that reports no usage). Rejects only when counting fails (the caller charges the reservation then).
 */
export async function chargeable(
  reserved: { readonly input: number; readonly tokenizer: EncodingName },
  seen: AnswerSeen,
  countTokens: CountTokens,
): Promise<Chargeable> {
  if (seen.usage)
    return { input: seen.usage.prompt_tokens, output: seen.usage.completion_tokens, source: "server" };
  if (seen.status !== undefined && (seen.status < 200 || seen.status >= 300))
    return { input: 0, output: 0, source: undefined };
  const output =
    seen.streamedTexts.length > 0 ? await countTokens(seen.streamedTexts, reserved.tokenizer) : 0;
  return { input: reserved.input, output, source: "counted" };
}
