/*
 * Request bodies of the Anthropic Messages API the gateway serves (vLLM serves it natively). As in
 * openai/schemas.ts, every string is text the model reads unless its schema is marked with control().
 */
import { z } from "zod";
import { control, jsonObject, outputTokens, word } from "../openai/schemas.js";

/** Prompt caching hints: read by the server, not the model. */
const cacheControl = control(z.looseObject({ type: word })).nullish();

/** An image or document source: its bytes or URL are data for the model (scanned as text). */
const source = z.looseObject({ type: control(word), media_type: control(z.string()).optional() });

/** A block inside a `tool_result`'s content: text or an image. */
const toolResultBlock = z.looseObject({
  type: control(word),
  text: z.string().optional(),
  source: source.optional(),
  cache_control: cacheControl,
});

/** One content block of a message: text, image, tool_use, tool_result, thinking, redacted_thinking… */
const contentBlock = z.looseObject({
  type: control(word),
  text: z.string().optional(),
  source: source.optional(),
  // tool_use: the model's call, sent back in later turns.
  id: control(z.string()).optional(),
  name: z.string().optional(),
  input: jsonObject.optional(),
  // tool_result: what the tool answered.
  tool_use_id: control(z.string()).optional(),
  content: z.union([z.string(), z.array(toolResultBlock)]).optional(),
  is_error: z.boolean().optional(),
  thinking: z.string().optional(),
  // A thinking block's signature and a redacted block's data are opaque to the model's reading.
  signature: control(z.string()).optional(),
  cache_control: cacheControl,
});

const message = z.looseObject({
  role: control(word),
  content: z.union([z.string(), z.array(contentBlock)]),
});

const systemBlock = z.looseObject({ type: control(word), text: z.string(), cache_control: cacheControl });

const tool = z.looseObject({
  type: control(word).optional(),
  name: z.string(),
  description: z.string().optional(),
  input_schema: jsonObject.optional(),
  cache_control: cacheControl,
});

const toolChoice = z.looseObject({
  type: control(word),
  name: z.string().optional(),
  disable_parallel_tool_use: z.boolean().optional(),
});

/** Fields the model reads in both POST /v1/messages and POST /v1/messages/count_tokens. */
const prompt = {
  model: control(z.string().min(1)),
  messages: z.array(message).min(1),
  system: z.union([z.string(), z.array(systemBlock)]).optional(),
  tools: z.array(tool).optional(),
  tool_choice: toolChoice.optional(),
  thinking: z.looseObject({ type: control(word), budget_tokens: outputTokens.optional() }).optional(),
};

/**
 * POST /v1/messages. `max_tokens` is required (as Anthropic's API and vLLM require it) and validated as vLLM
 * reads it: a whole number from 1 to 2^31-1. A thinking budget counts within it.
 */
export const messagesRequest = z
  .looseObject({
    ...prompt,
    max_tokens: outputTokens,
    stream: z.boolean().optional(),
    stop_sequences: z.array(z.string()).optional(),
    temperature: z.number().optional(),
    top_p: z.number().optional(),
    top_k: z.number().int().min(-1).optional(),
    metadata: control(z.looseObject({ user_id: z.string().nullish() })).optional(),
    service_tier: control(word).optional(),
  })
  .refine((r) => r.thinking?.budget_tokens === undefined || r.thinking.budget_tokens < r.max_tokens, {
    message: "thinking.budget_tokens must be less than max_tokens",
    path: ["thinking", "budget_tokens"],
  });

/** POST /v1/messages/count_tokens: the prompt of a messages request, nothing generated. */
export const countTokensRequest = z.looseObject(prompt);

/** The request schema of each Anthropic endpoint, by path. */
export const ANTHROPIC_REQUEST_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  "/v1/messages": messagesRequest,
  "/v1/messages/count_tokens": countTokensRequest,
};
