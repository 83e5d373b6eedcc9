import { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { formatPath } from "../errors/document.js";

/*
 * Request bodies of the OpenAI endpoints the gateway serves. Only the fields the gateway reads or that must
 * have the right type are described; every other field passes through to the model server untouched.
 *
 * Every string in a body is text the model reads (and is scanned for PII and by the guardrails), unless its
 * schema is marked with control(): see model-text.ts. Numbers and booleans carry no text and need no mark.
 */

/** Schemas whose values (and everything inside them) the model does not read. */
export const controlFields = z.registry();

/** Marks a copy of `schema` as a control field: model name, role, ids, `type` discriminators, knobs. */
export function control<T extends z.ZodType>(schema: T): T {
  const marked = schema.clone() as T;
  controlFields.add(marked);
  return marked;
}

/**
 * A `type` discriminator or a role: lower-case letters and underscores only, so a control field cannot carry
 * a number, an address or a key past the scan.
 */
export const word = z.string().regex(/^[a-z_]{1,64}$/, "must be lower-case letters and underscores");

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
export const outputTokens = z.number().int().min(1).max(MAX_OUTPUT_TOKENS);
const choiceCount = z.number().int().min(1).max(MAX_CHOICES);

const contentPart = z.looseObject({ type: control(word), text: z.string().optional() });

const toolCall = z.looseObject({
  id: control(z.string()).optional(),
  type: control(word).optional(),
  function: z.looseObject({ name: z.string().optional(), arguments: z.string().optional() }).optional(),
});

const chatMessage = z.looseObject({
  role: control(word),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_call_id: control(z.string()).optional(),
  tool_calls: z.array(toolCall).nullish(),
});

/** A JSON value the model reads whole (a JSON schema): every string and every property name in it. */
export const jsonObject = z.record(z.string(), z.unknown());

const tool = z.looseObject({
  type: control(word).optional(),
  function: z
    .looseObject({ name: z.string(), description: z.string().optional(), parameters: jsonObject.optional() })
    .optional(),
});

/** `none`/`auto`/`required`, or the tool to call (its name is the tool's, and scanned like it). */
const toolChoice = z.union([
  control(word),
  z.looseObject({
    type: control(word).optional(),
    function: z.looseObject({ name: z.string() }).optional(),
  }),
]);

const responseFormat = z.looseObject({
  type: control(word),
  json_schema: z
    .looseObject({
      name: z.string().optional(),
      description: z.string().optional(),
      schema: jsonObject.optional(),
    })
    .optional(),
});

/** Token id → bias: keys are token ids, not text. */
const logitBias = control(z.record(z.string().regex(/^[0-9]{1,7}$/, "must be a token id"), z.number()));

const streamOptions = z.looseObject({ include_usage: z.boolean().optional() });

const common = {
  model: control(z.string().min(1)),
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
  tools: z.array(tool).nullish(),
  tool_choice: toolChoice.nullish(),
  response_format: responseFormat.nullish(),
  logit_bias: logitBias.nullish(),
});

/** POST /v1/completions */
export const completionRequest = z
  .looseObject({
    ...common,
    prompt: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
    suffix: z.string().nullish(),
    response_format: responseFormat.nullish(),
    logit_bias: logitBias.nullish(),
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
  model: control(z.string().min(1)),
  input: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
  encoding_format: control(z.enum(["float", "base64"])).optional(),
  dimensions: positiveInt.optional(),
});

/** A part of a Responses input or output message: `input_text`, `output_text`, `refusal`, `input_image`… */
const responsesContentPart = z.looseObject({
  type: control(word),
  text: z.string().optional(),
  refusal: z.string().optional(),
  annotations: control(z.array(z.unknown())).optional(),
  logprobs: control(z.array(z.unknown())).nullish(),
});

/**
 * One item of a Responses `input`: a message (`role` + `content`), a `function_call` the model made, the
 * `function_call_output` sent back, or a `reasoning` item. One loose schema for all: every field the model
 * reads is text unless marked control (ids, statuses, roles, types).
 */
const responsesItem = z.looseObject({
  type: control(word).optional(),
  role: control(word).optional(),
  id: control(z.string()).nullish(),
  call_id: control(z.string()).optional(),
  status: control(word).nullish(),
  content: z.union([z.string(), z.array(responsesContentPart), z.null()]).optional(),
  name: z.string().optional(),
  arguments: z.string().optional(),
  output: z.union([z.string(), z.array(responsesContentPart)]).optional(),
  summary: z.array(responsesContentPart).optional(),
});

const responsesTool = z.looseObject({
  type: control(word),
  name: z.string().optional(),
  description: z.string().nullish(),
  parameters: jsonObject.nullish(),
  strict: z.boolean().nullish(),
});

/** POST /v1/responses (OpenAI Responses API). The stateful fields are refused by the processor (docs/agents.md). */
export const responsesRequest = z.looseObject({
  model: control(z.string().min(1)),
  input: z.union([z.string(), z.array(responsesItem)]),
  instructions: z.string().nullish(),
  tools: z.array(responsesTool).nullish(),
  tool_choice: z
    .union([control(word), z.looseObject({ type: control(word), name: z.string().optional() })])
    .nullish(),
  max_output_tokens: outputTokens.nullish(),
  max_tool_calls: positiveInt.nullish(),
  stream: z.boolean().nullish(),
  store: z.boolean().nullish(),
  background: z.boolean().nullish(),
  previous_response_id: control(z.string()).nullish(),
  conversation: control(z.unknown()).optional(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z
    .looseObject({
      format: z
        .looseObject({
          type: control(word),
          name: z.string().optional(),
          description: z.string().optional(),
          schema: jsonObject.optional(),
          strict: z.boolean().nullish(),
        })
        .optional(),
      verbosity: control(word).nullish(),
    })
    .nullish(),
  reasoning: z.looseObject({ effort: control(word).nullish(), summary: control(word).nullish() }).nullish(),
  // Not shown to the model: request bookkeeping.
  metadata: control(z.record(z.string(), z.string())).nullish(),
  user: control(z.string()).nullish(),
  include: control(z.array(z.string())).nullish(),
  truncation: control(word).nullish(),
  service_tier: control(word).nullish(),
  prompt_cache_key: control(z.string()).nullish(),
  safety_identifier: control(z.string()).nullish(),
});

/** The request schema of each OpenAI inference endpoint, by path. */
export const REQUEST_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  "/v1/chat/completions": chatCompletionRequest,
  "/v1/completions": completionRequest,
  "/v1/embeddings": embeddingRequest,
  "/v1/responses": responsesRequest,
};

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
  const result = schema.safeParse(json);
  if (result.success) return result.data as InferenceRequest;
  // Parsed again for the message only: reportInput (which tells a missing field from a wrong one) makes
  // every parse 2-3 times slower, and only a refused body needs it.
  const issue = schema.safeParse(json, { reportInput: true }).error!.issues[0]!;
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
