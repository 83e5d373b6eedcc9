import { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { formatPath } from "../policy/index.js";

/*
 * Request bodies of the OpenAI endpoints the gateway serves. Only the fields the gateway reads or that must
 * have the right type are described; every other field passes through to the model server untouched.
 */

const positiveInt = z.number().int().min(1);
const tokenIds = z.array(z.number().int());

/**
 * Largest output cap accepted per choice (vLLM keeps token counts in 32-bit integers). Every field that sets
 * how much a request may generate is validated here as the model server reads it: a whole number in range,
 * never a string, a fraction or a negative number that could turn a reservation into a refund.
 */
export const MAX_OUTPUT_TOKENS = 2 ** 31 - 1;
/** Most choices (`n`, `best_of`) per request, as OpenAI allows. */
export const MAX_CHOICES = 128;
const outputTokens = z.number().int().min(1).max(MAX_OUTPUT_TOKENS);
const choiceCount = z.number().int().min(1).max(MAX_CHOICES);

const contentPart = z.looseObject({ type: z.string().min(1) });

const chatMessage = z.looseObject({
  role: z.string().min(1),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});

const streamOptions = z.looseObject({ include_usage: z.boolean().optional() });

const common = {
  model: z.string().min(1),
  stream: z.boolean().nullish(),
  stream_options: streamOptions.nullish(),
  max_tokens: outputTokens.nullish(),
  n: choiceCount.nullish(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
};

/** POST /v1/chat/completions */
export const chatCompletionRequest = z.looseObject({
  ...common,
  messages: z.array(chatMessage).min(1),
  max_completion_tokens: outputTokens.nullish(),
});

/** POST /v1/completions */
export const completionRequest = z
  .looseObject({
    ...common,
    prompt: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
    // The completions API reads max_tokens only; a mistyped max_completion_tokens is refused all the same.
    max_completion_tokens: outputTokens.nullish(),
    /** Sequences generated per prompt; the best n are returned (vLLM: at least n). */
    best_of: choiceCount.nullish(),
  })
  .refine((r) => r.best_of == null || r.best_of >= (r.n ?? 1), {
    message: "best_of must be at least n",
    path: ["best_of"],
  });

/** POST /v1/embeddings */
export const embeddingRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: positiveInt.optional(),
});

/** Strict decoder: invalid UTF-8 is refused rather than silently replaced (the model would see other bytes). */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Deepest JSON nesting accepted: OpenAI bodies need a handful of levels; thousands only crash serializers. */
export const MAX_DEPTH = 64;

/** Deepest `[`/`{` nesting in JSON text, outside strings (a linear scan; stops once past MAX_DEPTH). */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) deepest = depth;
      if (deepest > MAX_DEPTH) return deepest;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** Fields every inference request shares after validation. */
export interface InferenceRequest {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  [field: string]: unknown;
}

/**
 * Parses and validates a JSON request body against `schema`. Throws a 400 {@link GatewayError} naming the
 * offending parameter (`messages[0].content`) on malformed JSON, a missing field or a wrong type.
 */
export function parseRequestBody(body: Buffer, schema: z.ZodType): InferenceRequest {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw new GatewayError("invalid_json", "The request body is not valid UTF-8 (JSON must be).");
  }
  const depth = nestingDepth(text);
  if (depth > MAX_DEPTH) {
    throw new GatewayError(
      "invalid_json",
      `The JSON body nests ${depth} levels deep; at most ${MAX_DEPTH} are allowed.`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayError(
      "invalid_json",
      `We could not parse the JSON body of your request: ${(err as Error).message}.`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new GatewayError("invalid_json", "The request body must be a JSON object.");
  }
  const result = schema.safeParse(json, { reportInput: true });
  if (result.success) return result.data as InferenceRequest;
  const issue = result.error.issues[0]!;
  const param = formatPath(issue.path);
  // A missing union field (prompt, input) is reported as invalid_union rather than invalid_type.
  const missing =
    issue.input === undefined && (issue.code === "invalid_type" || issue.code === "invalid_union");
  throw new GatewayError(
    "invalid_request",
    missing ? `Missing required parameter: '${param}'.` : `Invalid value for '${param}': ${issue.message}.`,
    param,
  );
}
