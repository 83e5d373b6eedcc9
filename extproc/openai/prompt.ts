import type { z } from "zod";
import { mapModelText, modelTexts } from "./model-text.js";
import type { InferenceRequest } from "./schemas.js";

/** The text a request sends to the model, ready for counting. */
export interface PromptText {
  /** Every string the model will read: roles, names, contents, text parts, tool call arguments, prompts, inputs. */
  readonly texts: string[];
  /** Tokens given as ids (completions/embeddings accept token arrays). */
  readonly tokenIds: number;
  /** Chat messages: each costs a few tokens of framing on top of its text. */
  readonly messages: number;
}

/** Chat framing per message and for priming the reply (OpenAI's published counting recipe). */
export const TOKENS_PER_MESSAGE = 3;
export const TOKENS_PER_REPLY = 3;

/** Rewrites a text field; returning the same string leaves it untouched. */
export type TextMapper = (text: string) => string;

type Json = Record<string, unknown>;

/** Applies `map` to the tool calls of a chat message or delta (their arguments are model-readable text). */
function mapToolCalls(holder: Json, map: TextMapper): void {
  if (!Array.isArray(holder.tool_calls)) return;
  for (const call of holder.tool_calls as Array<{ function?: Json }>) {
    if (call.function && typeof call.function.arguments === "string")
      call.function.arguments = map(call.function.arguments);
  }
}

/** Applies `map` to `content` as a string or as parts (`type: text`). */
function mapContent(holder: Json, map: TextMapper): void {
  const content = holder.content;
  if (typeof content === "string") holder.content = map(content);
  else if (Array.isArray(content)) {
    for (const part of content as Json[]) if (typeof part.text === "string") part.text = map(part.text);
  }
}

/**
 * Visits every model-read text of a request validated by `schema`, in place (see model-text.ts): what PII
 * detection and the guardrails scan.
 */
export function mapRequestTexts(request: InferenceRequest, schema: z.ZodType, map: TextMapper): void {
  mapModelText(request, schema, map);
}

/** Every model-read text of a request, in {@link mapRequestTexts} order. */
export function requestTexts(request: InferenceRequest, schema: z.ZodType): string[] {
  return modelTexts(request, schema);
}

/** Collects the prompt text of a validated chat, completion or embeddings request (for token counting). */
export function promptText(request: InferenceRequest): PromptText {
  const texts: string[] = [];
  let tokenIds = 0;
  const messages = Array.isArray(request.messages) ? (request.messages as Json[]) : undefined;
  for (const message of messages ?? []) if (typeof message.role === "string") texts.push(message.role);
  // Token-id inputs are counted by length.
  const countIds = (input: unknown): void => {
    if (typeof input === "number") tokenIds++;
    else if (Array.isArray(input)) input.forEach(countIds);
  };
  if (!messages) countIds(request.prompt ?? request.input);
  const collect: TextMapper = (text) => {
    texts.push(text);
    return text;
  };
  for (const message of messages ?? []) {
    if (typeof message.name === "string") texts.push(message.name);
    mapContent(message, collect);
    mapToolCalls(message, collect);
  }
  for (const input of messages ? [] : [request.prompt, request.input]) {
    if (typeof input === "string") texts.push(input);
    else if (Array.isArray(input)) for (const item of input) if (typeof item === "string") texts.push(item);
  }
  // Tool call names and tool definitions are read by the model too.
  for (const message of messages ?? []) {
    for (const call of (Array.isArray(message.tool_calls) ? message.tool_calls : []) as Array<{
      function?: Json;
    }>) {
      if (typeof call.function?.name === "string") texts.push(call.function.name);
    }
  }
  if (Array.isArray(request.tools)) texts.push(JSON.stringify(request.tools));
  return { texts, tokenIds, messages: messages?.length ?? 0 };
}

/**
 * The prompt of a request whose API has no chat-specific counting recipe (Responses, Messages): every
 * model-read text of it, framed as `messages` turns (input items, messages, a system prompt).
 */
export function modelReadPrompt(request: InferenceRequest, schema: z.ZodType, messages: number): PromptText {
  return { texts: modelTexts(request, schema), tokenIds: 0, messages };
}
