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

function mapInput(input: unknown, map: TextMapper): unknown {
  if (typeof input === "string") return map(input);
  if (Array.isArray(input)) return input.map((item) => (typeof item === "string" ? map(item) : item));
  return input;
}

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
 * Visits every free-text field of a validated chat, completion or embeddings request, in place:
 * `messages[].content` (string or text parts), `messages[].name`, tool call arguments, `prompt`, `input`.
 */
export function mapRequestTexts(request: InferenceRequest, map: TextMapper): void {
  if (Array.isArray(request.messages)) {
    for (const message of request.messages as Json[]) {
      if (typeof message.name === "string") message.name = map(message.name);
      mapContent(message, map);
      mapToolCalls(message, map);
    }
    return;
  }
  if (request.prompt !== undefined) request.prompt = mapInput(request.prompt, map);
  if (request.input !== undefined) request.input = mapInput(request.input, map);
}

/** Every free-text field of a request, in {@link mapRequestTexts} order. */
export function requestTexts(request: InferenceRequest): string[] {
  const texts: string[] = [];
  mapRequestTexts(request, (text) => {
    texts.push(text);
    return text;
  });
  return texts;
}

/** Collects the prompt text of a validated chat, completion or embeddings request (for token counting). */
export function promptText(request: InferenceRequest): PromptText {
  const texts: string[] = [];
  let tokenIds = 0;
  const messages = Array.isArray(request.messages) ? (request.messages as Json[]) : undefined;
  for (const message of messages ?? []) if (typeof message.role === "string") texts.push(message.role);
  // Token-id inputs are counted by length; mapRequestTexts only visits strings.
  const countIds = (input: unknown): void => {
    if (typeof input === "number") tokenIds++;
    else if (Array.isArray(input)) input.forEach(countIds);
  };
  if (!messages) countIds(request.prompt ?? request.input);
  mapRequestTexts(request, (text) => {
    texts.push(text);
    return text;
  });
  // Tool call names and tool definitions are read by the model too (they are not scanned for PII).
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
