/*
 * The Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens) as the gateway governs it: its
 * output cap, its usage, and the texts a client reads in an answer and in each stream event.
 */
import {
  isCount,
  mapJsonStrings,
  type AnswerShape,
  type EventStreamShape,
  type TypedEvent,
} from "../openai/events.js";
import type { Usage } from "../openai/usage.js";

export { ANTHROPIC_REQUEST_SCHEMAS, countTokensRequest, messagesRequest } from "./schemas.js";

type Json = Record<string, unknown>;

/**
 * Usage as Anthropic reports it: `input_tokens` (plus cache reads and writes, which are input the model
 * read) and `output_tokens`.
 */
function usageFrom(usage: unknown, input?: number): Usage | undefined {
  if (typeof usage !== "object" || usage === null) return undefined;
  const u = usage as Json;
  const cached = [u.cache_creation_input_tokens, u.cache_read_input_tokens].reduce<number>(
    (sum, n) => sum + (isCount(n) ? n : 0),
    0,
  );
  const prompt = isCount(u.input_tokens) ? u.input_tokens + cached : input;
  if (prompt === undefined || !isCount(u.output_tokens)) return undefined;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output_tokens,
    total_tokens: prompt + u.output_tokens,
  };
}

/** Applies `map` to every text a client reads in a content block: text, thinking, a tool call's name and input. */
function mapBlock(block: unknown, map: (text: string) => string): void {
  if (!block || typeof block !== "object") return;
  const holder = block as Json;
  for (const name of ["text", "thinking", "name"] as const)
    if (typeof holder[name] === "string") holder[name] = map(holder[name]);
  if (holder.input !== undefined) holder.input = mapJsonStrings(holder.input, map);
}

function mapMessage(message: unknown, map: (text: string) => string): void {
  const content = (message as { content?: unknown } | null)?.content;
  if (Array.isArray(content)) for (const block of content) mapBlock(block, map);
}

/** A whole Messages answer. */
export const messagesAnswer: AnswerShape = {
  usageOf: (answer) => usageFrom((answer as { usage?: unknown } | null)?.usage),
  generatedText(answer) {
    let out = "";
    mapMessage(structuredClone(answer), (text) => ((out += text), text));
    return out;
  },
  mapTexts: mapMessage,
};

/** The count_tokens answer generates nothing and costs no tokens (it counts against request limits only). */
export const countTokensAnswer: AnswerShape = {
  usageOf: (answer) =>
    answer && typeof answer === "object" && isCount((answer as Json).input_tokens)
      ? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }
      : undefined,
  generatedText: () => "",
  mapTexts: () => undefined,
};

/** The field of each content delta type that carries a fragment of generated text. */
const DELTA_TEXT_FIELD: Readonly<Record<string, string>> = {
  text_delta: "text",
  input_json_delta: "partial_json",
  thinking_delta: "thinking",
};

/**
 * A Messages stream: `content_block_delta` fragments (text, tool-input JSON, thinking) by block index,
 * ended by `content_block_stop`; whole texts in `content_block_start`; usage from `message_start` (input)
 * and `message_delta` (output, with the input again in vLLM's).
 */
export const messagesEvents: EventStreamShape = {
  mapTexts({ name, data }, map) {
    if (data.type === "content_block_delta") {
      const delta = data.delta as Json | undefined;
      const field = delta && typeof delta.type === "string" ? DELTA_TEXT_FIELD[delta.type] : undefined;
      if (!delta || !field || typeof delta[field] !== "string") return;
      const stream = String(data.index);
      delta[field] = map(delta[field], {
        kind: "delta",
        stream,
        carry: (text): TypedEvent => ({
          name,
          // vLLM's field order.
          data: {
            type: "content_block_delta",
            delta: { type: delta.type, [field]: text },
            index: data.index,
          },
        }),
      });
      return;
    }
    const whole = (text: string) => map(text, { kind: "whole" });
    if (data.type === "content_block_start") mapBlock(data.content_block, whole);
    if (data.type === "message_start") mapMessage(data.message, whole);
  },
  ends({ data }) {
    if (data.type === "content_block_stop") {
      const stream = String(data.index);
      return (s) => s === stream;
    }
    if (data.type === "message_delta" || data.type === "message_stop") return () => true;
    return () => false;
  },
  usageReader() {
    let input: number | undefined;
    return ({ data }) => {
      if (data.type === "message_start") {
        const usage = (data.message as { usage?: Json } | undefined)?.usage;
        if (usage && isCount(usage.input_tokens))
          input = usageFrom({ ...usage, output_tokens: 0 })?.prompt_tokens;
        return undefined;
      }
      return data.type === "message_delta" ? usageFrom(data.usage, input) : undefined;
    };
  },
  generatedText({ data }) {
    if (data.type !== "content_block_delta") return "";
    const delta = data.delta as Json | undefined;
    const field = delta && typeof delta.type === "string" ? DELTA_TEXT_FIELD[delta.type] : undefined;
    const text = field ? delta![field] : undefined;
    return typeof text === "string" ? text : "";
  },
};
